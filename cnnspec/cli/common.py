"""What the command modules share: the error line on stderr (with the torchrun rank prefix)
and the help of the --wide option. :func:`cnnspec.cli.main` prints its errors through the
same :func:`_error`; it lives here so that a command module need not import the package
that registers it (no import cycle)."""

from __future__ import annotations

import os

from rich.console import Console

from ..consoles import err

WIDE_HELP = "Print the table at its full width (no wrapping), whatever the terminal's width."


def _error(text: str) -> None:
    """An error on stderr; in a torchrun group, from every rank, each saying which."""
    try:  # WORLD_SIZE=abc must not turn every error into a traceback
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        world = 1
    prefix = f"rank {os.environ.get('RANK', '0')}: " if world > 1 else ""
    # soft_wrap: a long path stays on one line (the terminal wraps it; a copy is whole)
    Console(stderr=True, highlight=False, width=err.width).print(
        prefix + text, markup=False, highlight=False, soft_wrap=True)
