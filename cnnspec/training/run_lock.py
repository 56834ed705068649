"""A run folder's lock, for :class:`~cnnspec.training.run_folder.RunFolder`: one process
trains into a folder at a time. The lock file holds its PID, host and start time; a lock
whose process is gone is taken over."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from ..errors import CnnSpecError


def take(folder: Path, lock: Path) -> None:
    """Create ``lock`` for this process (``folder``: the run folder, for the message).

    Raises:
        CnnSpecError: another live process on this machine holds it, or one on another
            machine does (which cannot be checked from here: the message says how to
            free it).
    """
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            found = holder(lock)
            if found is not None:
                raise CnnSpecError(
                    f"{folder} is being trained by process {found.get('pid')} on "
                    f"{found.get('host')} (since {found.get('started')}); wait for it "
                    f"to end, or stop it. If it is gone, remove {lock}") from None
            lock.unlink(missing_ok=True)  # its process is gone: a stale lock
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return
    raise CnnSpecError(f"{lock}: cannot take the lock (another process keeps taking it)")


def holder(lock: Path) -> dict | None:
    """Who holds ``lock``, if that process still runs (None: stale or unreadable)."""
    try:
        if not lock.is_file():  # a FIFO would block: not a lock we wrote
            return None
        found = json.loads(lock.read_text())
        pid, host = int(found["pid"]), str(found["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host != socket.gethostname():
        return found  # cannot tell from here whether it runs
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return found  # alive, another user's
    return found
