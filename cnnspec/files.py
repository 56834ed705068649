"""Writing files so that a crash or a full disk never leaves a half-written one behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import CnnSpecError


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, flush it to disk
    (``fsync``), then rename it into place (``os.replace`` is atomic on POSIX) and flush the
    folder's entry, so a crash, a power cut or a full disk never leaves a half-written file
    under the final name, and an earlier file of that name survives a failure. Temporary
    files are named ``.<name>.<random>`` (:data:`TEMP_PREFIX` + name)."""
    path = check_target(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, file_mode(path))
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, Exception) and not isinstance(exc, CnnSpecError):
            raise write_error(path, exc) from exc
        raise


def check_target(path: str | Path) -> Path:
    """The file to write for ``path`` (a link's target; the folder made), checked before any
    work: a device, a FIFO, a folder, an empty name or a symbolic-link loop is refused
    (renaming over ``/dev/null`` would replace the device with a file).

    Raises:
        CnnSpecError: ``path`` cannot be written as a regular file; the message says why.
    """
    if str(path).strip() == "":
        raise CnnSpecError("an output path is empty; give a file name")
    path = Path(path)
    try:
        if path.is_symlink():
            path = path.resolve(strict=False)  # rewrite the file a link points to, keep it
    except (RuntimeError, OSError) as exc:  # a loop of links
        raise CnnSpecError(f"cannot write {path}: {exc}") from None
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a device or a FIFO)"
        raise CnnSpecError(f"cannot write {path}: it is {kind}; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CnnSpecError(f"cannot write {path}: a file stands where its folder should be "
                           f"({next((p for p in path.parents if p.is_file()), path.parent)})"
                           ) from None
    except OSError as exc:
        raise CnnSpecError(f"cannot create the folder of {path}: {exc.strerror or exc}") from None
    return path


def write_error(path: Path, exc: Exception) -> CnnSpecError:
    """A failed write as a user's error: which file, why, and how much space is left (torch
    and safetensors report a full disk or a file size limit as RuntimeError / their own)."""
    import shutil

    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else (
        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    return CnnSpecError(f"cannot write {path}: {why} ({free}); the disk may be full or a file "
                        "size limit reached. Nothing was written under that name; an earlier "
                        "file of that name is kept")


def _fsync(path) -> None:
    """Flush a file's (or a folder's) data to disk; a no-op where the system cannot."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # e.g. a folder on Windows, or a file system without fsync
    finally:
        os.close(fd)


def file_mode(path: Path) -> int:
    """An existing file keeps its permissions; a new one gets 0o666 less the umask, as
    ``open()`` would give it (mkstemp's own files are 0o600)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def load_tensors(path) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain data, never a
    pickle of code; torch's own warnings (an unusual pickle protocol) are not shown.

    Raises:
        CnnSpecError: the file holds other Python objects. The message never suggests
            ``weights_only=False``, which would run whatever the file contains.
    """
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        import re

        if "Unsupported global" in str(exc):
            raise CnnSpecError(f"{path}: cannot read weights: UnpicklingError: it holds Python "
                               "objects besides tensors (a pickle that would run code when "
                               "loaded), which cnnspec never loads; save weights as "
                               "torch.save(model.state_dict(), path) or as a .safetensors file"
                               ) from None
        why = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        raise CnnSpecError(f"{path}: cannot read weights: UnpicklingError: not a file of "
                           f"tensors ({why.group(1).strip() if why else 'damaged'})") from None
