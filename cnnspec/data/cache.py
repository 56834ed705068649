"""The decoded-image cache: each image folder decoded once, at a spec's input, to uint8.

A cache entry is two files in the cache folder: ``<key>.u8`` (the pixels, uint8
(N, C, H, W), raw, memory-mapped by :class:`cnnspec.data.images.MappedArray`) and
``<key>.json`` (shape, labels, classes, files, the files that could not be decoded). The
key is a SHA-256 of the input (H, W, C), the folder's file list with each file's size and
modification time, and :data:`FORMAT`: a changed, added or removed image makes a new entry,
so a stale one is never used. The JSON is written last (atomically), so an entry without
it is unfinished and ignored.

The folder is ``$CNNSPEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/cnnspec``, else
``~/.cache/cnnspec``; ``cnnspec cache`` shows it and its size, ``cnnspec cache --clear``
empties it. Decoding runs in DataLoader workers (Pillow releases no pixels to the parent
but the fitted uint8 image), and the parent writes each batch straight into the mapped file,
so resident memory stays at a few batches whatever the folder's size.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from pathlib import Path

import numpy as np
import torch

from .. import ir
from ..errors import DataError
from ..files import write_json
from .folder import UNREADABLE, FileList, decode_with_origin
from .images import Images, MappedArray, keep_batch

FORMAT = 3
"""Bumped whenever decoding or resizing changes, so older entries are not reused."""
ENTRY = re.compile(r"\.?[0-9a-f]{32}(\.json|\.u8|\.\d+\.u8|\.json\.[a-z0-9_]{8})")
"""The names of the cache's own files: ``<key>.json``, ``<key>.u8`` and the temporary
files of an unfinished build (``.<key>.<pid>.u8``, ``.<key>.json.<random>``); ``cnnspec
cache --clear`` removes these and nothing else."""


def cache_dir() -> Path:
    """Where decoded images are kept (see the module docstring)."""
    if os.environ.get("CNNSPEC_CACHE_DIR"):
        return Path(os.environ["CNNSPEC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnnspec"


def cache_key(files: FileList, spec_input: ir.InputShape) -> str:
    """SHA-256 of the input shape and every file's path, label, size and mtime (ns); a file
    that cannot be examined (a dangling link) counts as unreadable, and is skipped later."""
    h = hashlib.sha256(f"{FORMAT} {spec_input.height} {spec_input.width} "
                       f"{spec_input.channels}\n".encode())
    for path, label in zip(files.files, files.labels, strict=True):
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}\0{st.st_mtime_ns}"
        except OSError:  # a dangling or looping link (a git-annex file not fetched): it is
            stamp = "unreadable"  # decoded as nothing, reported and skipped
        h.update(f"{path}\0{label}\0{stamp}\n".encode("utf-8", "replace"))
    return h.hexdigest()[:32]


class _Decode(torch.utils.data.Dataset):
    """File ``i`` -> (i, uint8 (C, H, W) or None, why it could not be decoded, what it was)."""

    def __init__(self, files: list[str], spec_input: ir.InputShape):
        self.files, self.spec_input = files, spec_input

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        path = self.files[i]
        try:
            if not os.path.isfile(path):
                return i, None, "not a regular file", ""
            pixels, origin = decode_with_origin(path, self.spec_input)
            return i, torch.from_numpy(pixels), "", origin
        except UNREADABLE as exc:  # corrupt, truncated or too large: reported and skipped
            return i, None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, ""
        except Exception as exc:  # noqa: BLE001 - anything else: say which file
            raise DataError(f"{path}: cannot decode: {type(exc).__name__}: {exc}") from None


def decoded(files: FileList, spec_input: ir.InputShape, workers: int = 0,
            use_cache: bool = True, progress=None) -> Images:
    """The images of ``files`` decoded at ``spec_input``: from the cache when an entry with
    the same key exists, else decoded with ``workers`` DataLoader workers into a new entry.

    ``progress(done, total)`` is called as batches are decoded. With ``use_cache`` False, or
    when the cache folder cannot be written, the entry goes to a temporary folder that is
    removed when the process ends.

    Raises:
        DataError: a class has no readable image, or no image is readable at all.
    """
    key = cache_key(files, spec_input)
    folder = cache_dir() if use_cache else None
    if folder is not None:
        hit = _open(folder, key, files)
        if hit is not None:
            return hit
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return _build(folder, key, files, spec_input, workers, progress)
        except OSError as exc:  # a note in cnnspec's words, not a Python warning
            import sys

            print(f"note: cannot write the decoded-image cache in {folder} "
                  f"({exc.strerror or exc}); using a temporary one for this run (set "
                  "CNNSPEC_CACHE_DIR to a writable folder to keep it)", file=sys.stderr)
    return _build(_temporary_folder(), key, files, spec_input, workers, progress)


def _temporary_folder() -> Path:
    import atexit
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="cnnspec-cache-"))
    atexit.register(shutil.rmtree, tmp, True)
    return tmp


def _regular(path: Path) -> bool:
    """``path`` is a regular file itself: not a link (whose target may lie outside the
    cache), a FIFO (reading it would block) or a device."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _open(folder: Path, key: str, files: FileList) -> Images | None:
    """The entry ``key`` if it is whole and well formed, else None (decoded again)."""
    meta_path, data_path = folder / f"{key}.json", folder / f"{key}.u8"
    if not (_regular(meta_path) and _regular(data_path)):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        shape = tuple(meta["shape"])
        n = len(files.files)
        ok = (len(shape) == 4 and all(type(v) is int and v > 0 for v in shape)
              and isinstance(meta["kept"], list) and len(meta["kept"]) == shape[0]
              and all(type(i) is int and 0 <= i < n for i in meta["kept"])
              and isinstance(meta["skipped"], list)
              and all(isinstance(s, list) and len(s) == 2 for s in meta["skipped"])
              and isinstance(meta.get("origins", {}), dict)
              and data_path.stat().st_size == int(np.prod(shape)))
        if not ok:
            return None  # damaged: decode again
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return _images(MappedArray(data_path, shape), meta, files, str(data_path))


def _images(store, meta: dict, files: FileList, cache: str) -> Images:
    kept = np.asarray(meta["kept"], dtype=np.int64)
    labels = np.asarray(files.labels, dtype=np.int64)[kept]
    val = (np.asarray(files.val, dtype=bool)[kept] if files.val is not None else None)
    return Images(store, labels, files.classes, files.source,
                  [tuple(s) for s in meta["skipped"]], val, [files.files[i] for i in kept], cache,
                  dict(meta.get("origins", {})))


def _build(folder: Path, key: str, files: FileList, spec_input: ir.InputShape, workers: int,
           progress) -> Images:
    shape = (spec_input.channels, spec_input.height, spec_input.width)
    item = int(np.prod(shape))
    data_path = folder / f"{key}.u8"
    tmp = folder / f".{key}.{os.getpid()}.u8"
    kept, skipped, origins = [], [], {}
    try:
        if tmp.is_symlink() or (tmp.exists() and not tmp.is_dir()):
            tmp.unlink()  # a leftover of this PID's, or a link: never written through
        with open(tmp, "wb") as f:
            f.truncate(item * len(files.files))  # sparse until written
        out = np.memmap(tmp, dtype=np.uint8, mode="r+", shape=(len(files.files), *shape))
        loader = torch.utils.data.DataLoader(
            _Decode(files.files, spec_input), batch_size=32, num_workers=workers,
            collate_fn=keep_batch, prefetch_factor=4 if workers else None)
        for batch in loader:
            for i, img, reason, origin in batch:
                if img is None:
                    skipped.append((files.files[i], reason))
                else:
                    out[len(kept)] = img.numpy()
                    kept.append(i)
                    origins[origin] = origins.get(origin, 0) + 1
            if progress is not None:
                progress(len(kept) + len(skipped), len(files.files))
        out.flush()
        del out
        _check_classes(files, kept, skipped)
        os.truncate(tmp, item * len(kept))
        os.replace(tmp, data_path)
    finally:
        tmp.unlink(missing_ok=True)
    meta = {"format": FORMAT, "source": files.source, "shape": [len(kept), *shape],
            "kept": kept, "skipped": [list(s) for s in skipped], "origins": origins}
    meta_path = folder / f"{key}.json"
    if meta_path.is_symlink() or (meta_path.exists() and not meta_path.is_dir()
                                  and not _regular(meta_path)):
        meta_path.unlink()  # a link or a FIFO in the entry's place: replaced, never followed
    write_json(meta_path, meta)
    return _images(MappedArray(data_path, (len(kept), *shape)), meta, files, str(data_path))


def _check_classes(files: FileList, kept: list[int], skipped: list) -> None:
    present = {files.labels[i] for i in kept}
    for label, name in enumerate(files.classes):
        if label not in present:
            n = files.labels.count(label)
            where = next(p for p, lab in zip(files.files, files.labels, strict=True) if lab == label)
            raise DataError(f"{Path(where).parent}: class folder '{name}' has no readable images "
                            f"(all {n} failed to decode)"
                            + "".join(f"\n  {p}: {r}" for p, r in skipped[:5]))
    if not kept:
        raise DataError(f"{files.source}: no readable images")


def cache_info() -> dict:
    """The cache folder, its entries and their total size in bytes."""
    folder = cache_dir()
    own = [p for p in folder.iterdir() if ENTRY.fullmatch(p.name)] if folder.is_dir() else []
    entries = [p for p in own if p.name.endswith(".json") and not p.name.startswith(".")]
    size = sum(p.lstat().st_size for p in own if _regular(p))
    return {"folder": str(folder), "entries": len(entries), "bytes": size}


def clear_cache() -> dict:
    """Remove every entry of the cache folder (only the files it writes); returns what was
    there (see :func:`cache_info`)."""
    info = cache_info()
    folder = cache_dir()
    if folder.is_dir():
        for p in folder.iterdir():
            if ENTRY.fullmatch(p.name) and (p.is_symlink() or p.is_file()):
                p.unlink(missing_ok=True)  # a link itself, never its target
    return info
