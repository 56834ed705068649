"""Tables that fit the terminal and survive a pipe, for summary, diff, data and evaluate.

- On a terminal, the table takes the terminal's width: text columns that may wrap
  (``wrap``: arguments, names) fold at word boundaries; every other column keeps its
  longest cell, so numbers are never cut with "…" and no column is squeezed out of sight.
  When even those minimum widths do not fit, a note says so and the table is printed at its
  minimum width (the terminal wraps the long lines; nothing is lost).
- ``wide``, or output that is not a terminal (a pipe, a file): every column at its natural
  width, nothing wrapped, plain ASCII rules (``+---+``) and no colour.
- :func:`html` renders the same rows as an HTML table (Jupyter's ``_repr_html_``).
"""

from __future__ import annotations

import html as _html

from rich import box
from rich.console import Console
from rich.table import Table

WRAP_MIN = 12
"""The narrowest a wrapping column gets (characters)."""


def count(n: int, word: str) -> str:
    """``n word`` with the plural for n != 1: ``1 epoch``, ``2 epochs``, ``1,000 layers``.

    >>> count(1, "layer"), count(12, "epoch")
    ('1 layer', '12 epochs')
    """
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _natural(columns, rows) -> list[int]:
    return [max([len(name), *(len(r[i]) for r in rows)]) for i, name in enumerate(columns)]


def _minimum(columns, rows, wrap) -> list[int]:
    """Each column's narrowest: its longest cell, or for a wrapping column at most
    :data:`WRAP_MIN`; headers wrap at spaces (never narrower than their longest word)."""
    widths = []
    for i, name in enumerate(columns):
        longest = max([0, *(len(r[i]) for r in rows)])
        cell = min(longest, WRAP_MIN) if i in wrap else longest
        widths.append(max(cell, *(len(w) for w in name.split()), 1))
    return widths


def allocate(columns, rows, wrap, available: int) -> list[int]:
    """Column widths for ``available`` characters of cells: the natural widths if they fit,
    else the wrapping columns shrunk (widest first) towards their minimum, else the minimum
    widths (which may exceed ``available``)."""
    widths, floor = _natural(columns, rows), _minimum(columns, rows, wrap)
    excess = sum(widths) - available
    while excess > 0:
        shrinkable = [i for i in range(len(widths)) if widths[i] > floor[i]]
        if not shrinkable:
            break
        i = max(shrinkable, key=lambda k: (k in wrap, widths[k] - floor[k]))
        widths[i] -= 1
        excess -= 1
    return widths


def _table(console: Console, columns, rows, widths, numeric, wrap, styles, title) -> Table:
    table = Table(title=title, box=box.HEAVY_HEAD if console.is_terminal else box.ASCII)
    for i, name in enumerate(columns):
        # every cell of a column that does not wrap fits its width, so only headers (at
        # spaces) and the wrapping columns' cells ever break
        table.add_column(name, justify="right" if i in numeric else "left", width=widths[i],
                         overflow="fold")
    for k, row in enumerate(rows):
        table.add_row(*row, style=styles[k] if styles else None)
    return table


def show(console: Console, columns: tuple[str, ...], rows: list[tuple[str, ...]], *,
         numeric: tuple[int, ...] = (), wrap: tuple[int, ...] = (),
         styles: list[str | None] | None = None, title: str | None = None,
         wide: bool = False) -> None:
    """Print ``rows`` (strings, one per column) under ``columns`` on ``console`` (see the
    module docstring); ``numeric`` columns are right-aligned, ``wrap`` columns may wrap."""
    rules = 3 * len(columns) + 1  # a space either side of each cell, a rule between
    natural = wide or not console.is_terminal
    widths = _natural(columns, rows) if natural else allocate(columns, rows, wrap,
                                                               console.width - rules)
    table = _table(console, columns, rows, widths, numeric, wrap, styles, title)
    needed = sum(widths) + rules
    if needed > console.width and not natural:
        console.print(f"(this table needs {needed} columns and the terminal has "
                      f"{console.width}: its lines wrap; widen the window, or use --wide or "
                      "--format csv)", style="dim", highlight=False, markup=False)
    if needed <= console.width:
        console.print(table)
        return
    # rich never prints wider than its console: a console as wide as the table, same output
    Console(file=console.file, width=needed, force_terminal=console.is_terminal,
            force_jupyter=console.is_jupyter, color_system=console.color_system, no_color=console.no_color,
            highlight=False).print(table, crop=False)


def text(render, width: int = 120) -> str:
    """What ``render(console)`` prints, as plain text (no terminal: natural widths)."""
    import io

    buf = io.StringIO()
    # force_jupyter off: in a notebook rich would display the text instead of returning it
    render(Console(file=buf, width=width, force_terminal=False, force_jupyter=False,
                   color_system=None,
                   highlight=False, markup=False))
    return buf.getvalue()


def html(columns: tuple[str, ...], rows: list[tuple[str, ...]], numeric: tuple[int, ...] = (),
         caption: str = "", notes: list[str] = ()) -> str:
    """An HTML table of the same rows (numbers right-aligned), with a caption and notes."""
    esc = _html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:{'right' if i in numeric else 'left'};"
                         f"white-space:pre'>{esc(v)}</td>" for i, v in enumerate(r)) + "</tr>"
        for r in rows)
    foot = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return (f"<table><caption>{esc(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>" + (f"<ul>{foot}</ul>" if foot else ""))
