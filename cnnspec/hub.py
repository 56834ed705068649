"""Named weight sources: ``transfer: from torchvision resnet50 [IMAGENET1K_V2]``.

What a name means comes from torchvision's own weights registry
(:func:`torchvision.models.get_model_weights`): the file's URL, its categories, its
preprocessing (resize and crop sizes, interpolation, mean and std) and its reference
numbers (parameters, GFLOPS, ImageNet-1K acc@1), never from a list kept here. No tag means
torchvision's ``DEFAULT``, and the tag it resolves to is what a run records.

The file goes where torchvision puts it, ``$TORCH_HOME/hub/checkpoints`` (``torch.hub.
get_dir()``), so an existing copy is reused. It is downloaded once, with a progress bar,
through a temporary file renamed into place (a failure leaves nothing under the final
name), with a 30 s timeout on every read, and its SHA-256 is checked against the prefix
in its name (torchvision's naming rule ``<name>-<first hex digits of SHA-256>.pth``) at
every load, not only when it is downloaded (torch checks only then: pytorch/pytorch#191432).
A run records the file's full SHA-256 in ``run.json``.

Offline (``CNNSPEC_OFFLINE=1``, or ``offline=True``) nothing opens a connection; a file
that is not there yet is an error naming the file, the folder to put it in and the URL to
fetch it from on another machine. ``CNNSPEC_WEIGHTS_MIRROR=URL/`` fetches every file from
a mirror (``URL/<file name>``) instead of download.pytorch.org.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsError

LIBRARIES = ("torchvision",)
"""Where named weights can come from."""
TIMEOUT_S = 30.0
"""Seconds a connection or a read may stall before the download is abandoned."""
_HASH = re.compile(r"-([0-9a-f]{6,64})\.\w+$")


@dataclass(frozen=True)
class Preprocessing:
    """How the weights' training images were prepared (torchvision's
    ``ImageClassification`` preset): resize the shorter side to ``resize`` pixels with
    ``interpolation`` (antialiased), crop ``crop`` x ``crop`` at the centre, scale to
    [0, 1], then (x - mean) / std per RGB channel."""

    crop: int
    resize: int
    interpolation: str
    antialias: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: int = 3


@dataclass(frozen=True)
class Named:
    """A resolved named source: which file, what it holds, how its images were prepared."""

    library: str
    model: str
    tag: str
    """The weights' tag, resolved (``DEFAULT`` -> ``IMAGENET1K_V2``)."""
    url: str
    categories: tuple[str, ...]
    preprocessing: Preprocessing
    params: int | None = None
    gflops: float | None = None
    acc1: float | None = None
    """ImageNet-1K top-1 accuracy in percent, as the registry gives it."""

    @property
    def name(self) -> str:
        """``torchvision resnet50 IMAGENET1K_V2``: as written in a spec."""
        return f"{self.library} {self.model} {self.tag}"

    @property
    def file(self) -> Path:
        """Where the file is kept: torch's hub cache, under the URL's file name."""
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / self.url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str | None:
        m = _HASH.search(self.url.rsplit("/", 1)[-1])
        return m.group(1) if m else None

    def download_url(self) -> str:
        """The URL to fetch from (``CNNSPEC_WEIGHTS_MIRROR`` replaces the host and folder)."""
        mirror = os.environ.get("CNNSPEC_WEIGHTS_MIRROR", "").strip()
        if mirror:
            return mirror.rstrip("/") + "/" + self.url.rsplit("/", 1)[-1]
        return self.url


def resolve(library: str, model: str, tag: str | None = None) -> Named:
    """The named source ``library model [tag]``, from torchvision's weights registry.

    Raises:
        WeightsError: an unknown library, model or tag (the message lists what there is).
    """
    from .errors import did_you_mean

    if library not in LIBRARIES:
        raise WeightsError(f"from {library} {model}: named weights come from "
                           f"{', '.join(LIBRARIES)} (timm is not supported yet); or give a "
                           'file: from "path/to/weights.pth"')
    from torchvision import models

    names = models.list_models(module=models)
    if model not in names:
        hint = did_you_mean(model, names)
        raise WeightsError(f"from torchvision {model}: torchvision has no classification "
                           f"model of that name" + (f"; {hint}" if hint else
                                                    f" (it has {', '.join(names[:8])}, ...)"))
    enum = models.get_model_weights(model)
    tags = [t for t in enum.__members__ if t != "DEFAULT"]
    if tag is None or tag == "DEFAULT":
        entry = enum.DEFAULT
    elif tag in enum.__members__:
        entry = enum[tag]
    else:
        raise WeightsError(f"from torchvision {model} {tag}: no such weights; {model} has "
                           f"{', '.join(tags)} (or write no tag for DEFAULT, "
                           f"{enum.DEFAULT.name})")
    t = entry.transforms()
    prep = Preprocessing(crop=int(t.crop_size[0]), resize=int(t.resize_size[0]),
                         interpolation=str(t.interpolation.value), antialias=bool(t.antialias),
                         mean=tuple(float(v) for v in t.mean), std=tuple(float(v) for v in t.std))
    meta = entry.meta
    acc = meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    return Named("torchvision", model, entry.name, entry.url, tuple(meta.get("categories") or ()),
                 prep, meta.get("num_params"), meta.get("_ops"), acc)


def offline() -> bool:
    """``CNNSPEC_OFFLINE`` is set (to anything but 0 or empty): open no connection."""
    return os.environ.get("CNNSPEC_OFFLINE", "") not in ("", "0")


def _instructions(named: Named) -> str:
    return (f"put {named.file.name} into {named.file.parent} (fetch it from "
            f"{named.download_url()} on a machine that has a connection, or run `cnnspec fetch "
            f"{named.library} {named.model} {named.tag}` there and copy the file)")


def sha256(path: Path) -> str:
    """The file's SHA-256 as hex (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(named: Named, *, offline_only: bool | None = None, progress: bool = True,
          say=None) -> tuple[Path, str]:
    """The local file of ``named`` and its full SHA-256: the cached copy if its hash matches
    its name, else downloaded (once). ``say(text)`` gets one-line notes (a corrupt copy
    replaced).

    Raises:
        WeightsError: offline and not cached; the download failed (no route, a timeout, an
            SSL or proxy error, an HTTP error, a truncated body) or its hash does not match;
            a cached copy is damaged and cannot be fetched again. Each says what to do, and
            nothing is left under the file's name.
    """
    path = named.file
    offline_only = offline() if offline_only is None else offline_only
    if path.is_file():
        digest = sha256(path)
        if named.hash_prefix is None or digest.startswith(named.hash_prefix):
            return path, digest
        if offline_only:
            raise WeightsError(f"{path}: damaged (its SHA-256 {digest[:12]}... does not start "
                               f"with {named.hash_prefix}, as its name says); delete it and "
                               + _instructions(named))
        if say is not None:
            say(f"{path}: damaged (SHA-256 {digest[:12]}..., not {named.hash_prefix}...); "
                "fetching it again")
        path.unlink()
    elif path.exists():
        raise WeightsError(f"{path}: not a regular file; remove it, then "
                           + _instructions(named))
    if offline_only:
        raise WeightsError(f"{named.name}: not downloaded yet, and offline (--offline or "
                           "CNNSPEC_OFFLINE=1); "
                           + _instructions(named))
    digest = _download(named, path, progress)
    return path, digest


def _download(named: Named, path: Path, progress: bool) -> str:
    """Download to a temporary file beside ``path``, check its hash, rename it into place."""
    import urllib.error
    import urllib.request

    url = named.download_url()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    got = _copy(response, out, h, total, progress, path.name)
            except urllib.error.HTTPError as exc:
                raise _failed(named, f"the server answered HTTP {exc.code} {exc.reason}")
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise _failed(named, f"{type(reason).__name__}: {reason}")
            if total is not None and got != total:
                raise _failed(named, f"the download ended after {got:,} of {total:,} bytes")
        digest = h.hexdigest()
        if named.hash_prefix is not None and not digest.startswith(named.hash_prefix):
            raise _failed(named, f"the file's SHA-256 {digest[:12]}... does not start with "
                          f"{named.hash_prefix}, as its name says (a damaged download, or a "
                          "page that is not the file)")
        os.replace(tmp, path)
        return digest
    finally:
        Path(tmp).unlink(missing_ok=True)


def _copy(response, out, h, total, progress: bool, label: str) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    got = 0
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), disable=not progress, transient=True) as bar:
        task = bar.add_task(f"downloading {label}", total=total)
        for block in iter(lambda: response.read(1 << 20), b""):
            out.write(block)
            h.update(block)
            got += len(block)
            bar.update(task, advance=len(block))
    return got


def _failed(named: Named, why: str) -> WeightsError:
    return WeightsError(f"{named.name}: cannot download {named.download_url()}: {why}. Nothing "
                        "was written; try again, or " + _instructions(named))


def of_spec(spec) -> Named | None:
    """The named source of ``spec``'s ``transfer:`` section, resolved (None: a file or none).

    Raises:
        WeightsError: see :func:`resolve`.
    """
    t = spec.transfer
    if t is None or t.named is None:
        return None
    return resolve(t.named.library, t.named.model, t.named.tag)


def listing(specs_dir: Path) -> list[dict]:
    """The named weights a shipped spec mirrors (a spec in ``specs_dir`` named as a
    torchvision model): model, tag, parameters, GMACs and ImageNet-1K acc@1 from the
    registry, whether the file is downloaded, and the spec. torchvision's column "GFLOPS"
    (``meta["_ops"]``) counts multiply-accumulates: resnet50's 4.089 is cnnspec's 4.089 GMACs."""
    from torchvision import models

    names = set(models.list_models(module=models))
    rows = []
    for spec in sorted(specs_dir.glob("*.cnn")):
        if spec.stem not in names:
            continue
        enum = models.get_model_weights(spec.stem)
        for tag in (t for t in enum.__members__ if t != "DEFAULT"):
            named = resolve("torchvision", spec.stem, tag)
            rows.append({"source": f"torchvision {spec.stem} {tag}",
                         "default": enum[tag] == enum.DEFAULT, "params": named.params,
                         "gmacs": named.gflops, "acc1": named.acc1,
                         "downloaded": named.file.is_file(), "spec": spec.name})
    return rows
