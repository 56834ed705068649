"""The CLI's two consoles: results on stdout, messages on stderr.

In a pipe rich would wrap tables at 80 columns; a wide page keeps each row on one line.
Markup is off: a file named ``x[/y].png`` or ``[red]x.png`` is printed as it is.
"""

from __future__ import annotations

import sys

from rich.console import Console

out = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
