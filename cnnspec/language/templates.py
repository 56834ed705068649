"""``cnnspec new``: a starter spec from one of the shipped specs (they are in the wheel as
``cnnspec.specs``), renamed, with the files it includes copied beside it."""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from ..errors import CnnSpecError
from ..files import write_text

INCLUDE = re.compile(r'^\s*include\s+"([^"]+)"', re.MULTILINE)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def templates() -> list[str]:
    """The shipped specs, by file name without ``.cnn`` (lenet5, alexnet, vgg16, ...)."""
    root = resources.files("cnnspec.specs")
    return sorted(p.name.removesuffix(".cnn") for p in root.iterdir() if p.name.endswith(".cnn"))


def template_text(template: str, relative: str | None = None) -> str:
    """The text of a shipped spec (or of ``relative``, a file it includes)."""
    root = resources.files("cnnspec.specs")
    target = root.joinpath(*(relative or f"{template}.cnn").split("/"))
    return target.read_text(encoding="utf-8")


def new_spec(name: str, template: str = "lenet5", out: str | Path | None = None,
             pretrained: bool = False, data: str | Path | None = None
             ) -> tuple[Path, list[Path]]:
    """Write ``out`` (default ``<name>.cnn``): the shipped spec ``template`` with its
    ``network`` renamed to ``name``; files it includes (``include "lib/vgg.cnn"``) are
    copied beside it. Returns (the spec written, the included files written).

    ``pretrained``: a ``transfer:`` section from torchvision's weights of the model the
    template mirrors, frozen up to the last stage but one (:func:`freeze_point`), with a new
    head for the data's classes. ``data``: a ``train: data`` line (relative to the spec).

    Raises:
        CnnSpecError: an unknown template, a name that is not an identifier, a file that
            exists already (nothing is overwritten), or ``pretrained`` for a template that
            mirrors no torchvision model.
    """
    if template not in templates():
        raise CnnSpecError(f"no shipped spec named '{template}'; choose one of "
                           f"{', '.join(templates())}")
    if not NAME.match(name):
        raise CnnSpecError(f"'{name}' cannot name a network: use letters, digits and _, "
                           "starting with a letter (e.g. MyNet)")
    path = Path(out) if out is not None else Path(f"{name}.cnn")
    text = template_text(template)
    text, n = re.subn(r"^network\s+\S+", f"network {name}", text, count=1, flags=re.MULTILINE)
    if n != 1:
        raise CnnSpecError(f"the shipped spec {template} has no network line")  # a packaging bug
    flags = (" --pretrained" if pretrained else "") + (f" --data {data}" if data else "")
    text = (f"# Started from the shipped spec {template} (cnnspec new {name} --from "
            f"{template}{flags}).\n") + text
    path_dir = path.parent
    if pretrained:
        text = text.rstrip("\n") + "\n\n" + _transfer_section(template, text)
    if data is not None:
        rel = os.path.relpath(Path(data).resolve(), path_dir.resolve())
        line = f'    data "{Path(rel).as_posix()}"\n'
        if re.search(r"^train:\s*$", text, flags=re.MULTILINE):
            text = re.sub(r"^train:\s*\n", "train:\n" + line.replace("\\", "\\\\"), text,
                          count=1, flags=re.MULTILINE)
        else:
            text = text.rstrip("\n") + "\n\ntrain:\n" + line
    written, includes = [], [(path.parent / rel, template_text(template, rel))
                             for rel in INCLUDE.findall(text)]
    clashes = [p for p in [path] + [p for p, body in includes if not _same(p, body)] if p.exists()]
    if clashes:
        raise CnnSpecError(f"{clashes[0]} exists already; choose another name or -o FILE "
                           "(cnnspec new never overwrites a file)")
    for p, body in includes:
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            write_text(p, body)
            written.append(p)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
    return path, written


def _same(path: Path, body: str) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8", errors="replace") == body


def _transfer_section(template: str, text: str) -> str:
    """``transfer:`` from torchvision's ``template`` weights, frozen up to the last stage
    but one, with a head for the data's classes.

    Raises:
        CnnSpecError: ``template`` mirrors no torchvision model.
    """
    from torchvision import models

    if template not in models.list_models(module=models):
        named = [t for t in templates() if t in models.list_models(module=models)]
        raise CnnSpecError(f"--pretrained: the shipped spec {template} mirrors no torchvision "
                           f"model; choose one that does: {', '.join(named)}")
    from .loader import loads

    root = resources.files("cnnspec.specs")
    with resources.as_file(root.joinpath(f"{template}.cnn")) as file:
        cut = freeze_point(loads(text, str(file)))
    freeze = f"    freeze up to {cut}\n" if cut else ""
    return ("transfer:\n"
            f"    from torchvision {template}    # torchvision's DEFAULT ImageNet weights\n"
            f"{freeze}    classes from data\n")


def freeze_point(spec) -> str | None:
    """The top-level layer to ``freeze up to`` so that the last stage retrains: the layers
    with convolutions (conv, residual, concat) grouped by the size of their output, the last
    layer of the group before the last (VGG-16: C10, before C11-C13 at 14x14; ResNet-18: R6,
    before R7-R8 at 7x7). None for a network with one stage."""
    from ..shapes import infer

    stages: list[tuple[tuple, list[str]]] = []
    for info in infer(spec).layers:
        if info.layer.kind not in ("conv", "residual", "concat") or len(info.out_shape) != 3:
            continue
        size = info.out_shape[1:]
        if stages and stages[-1][0] == size:
            stages[-1][1].append(info.name)
        else:
            stages.append((size, [info.name]))
    return stages[-2][1][-1] if len(stages) > 1 else None
