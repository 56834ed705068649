"""Writing files so that a crash or a full disk never leaves a half-written one behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place
    (``os.replace`` is atomic on POSIX), so a crash or a full disk never leaves a half-written
    file under the final name, and an earlier file of that name survives a failure."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()  # rewrite the file a link points to, keep the link
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
