"""Render report data as a rich table, markdown, CSV or JSON (the data lives in summary.py)."""

from __future__ import annotations

import csv
import io
import json

from rich.console import Console
from rich.table import Table

from .summary import Summary

FORMATS = ("table", "markdown", "csv", "json")
COLUMNS = ("Layer", "Type", "Arguments", "Output (HxWxC)", "Params", "% params", "MACs")


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M'; for MACs, parameters and FLOPs (powers of 1000).

    >>> human(15_470_264_320, "MACs"), human(61_706)
    ('15.47 GMACs', '61.71 K')
    """
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{n:g} {unit}".rstrip()


def _cells(summary: Summary) -> list[tuple[str, ...]]:
    """One tuple of cells per row; nested layers are indented under their concat/residual."""
    return [("  " * r.depth + ("└ " if r.depth else "") + r.name, r.type, r.args, r.output,
             f"{r.params:,}", f"{100 * r.share:.1f}", f"{r.macs:,}") for r in summary.layers]


def footer(summary: Summary) -> list[str]:
    t = summary.totals
    return [
        f"Total params: {t.params:,} ({human(t.params)}), {t.params_mb:.2f} MB as float32",
        f"Trainable params: {t.trainable_params:,}",
        f"Non-trainable params: {t.non_trainable_params:,}",
        f"Buffers (batch-norm running statistics, not parameters): {t.buffers:,}",
        (f"MACs per image: {t.macs:,} ({human(t.macs, 'MACs')}); "
        f"FLOPs = 2 x MACs = {t.flops:,} ({human(t.flops, 'FLOPs')})"),
    ]


def render_table(summary: Summary, console: Console) -> None:
    table = Table(title=f"{summary.network}: input {summary.input} -> output {summary.output}",
                  title_justify="left")
    for i, col in enumerate(COLUMNS):
        table.add_column(col, justify="right" if i >= 4 else "left", no_wrap=i != 2)
    for cells in _cells(summary):
        table.add_row(*cells)
    console.print(table)
    for line in footer(summary):
        console.print(line, highlight=False)


def render_markdown(summary: Summary) -> str:
    lines = [f"**{summary.network}**: input {summary.input} -> output {summary.output}", "",
             "| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---:" if i >= 4 else "---" for i in range(len(COLUMNS))) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in _cells(summary)]
    return "\n".join(lines + [""] + [f"- {f}" for f in footer(summary)]) + "\n"


def render_csv(summary: Summary) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "path", "depth", "type", "args", "output", "params", "share", "macs",
                "trainable"])
    for r in summary.layers:
        w.writerow([r.name, r.path, r.depth, r.type, r.args, r.output, r.params, f"{r.share:.6f}",
                    r.macs, r.trainable])
    return buf.getvalue()


def render_json(summary: Summary) -> str:
    return json.dumps(summary.to_dict(), indent=2) + "\n"


def render(summary: Summary, fmt: str, console: Console) -> None:
    """Print ``summary`` in one of :data:`FORMATS` to ``console``."""
    if fmt == "table":
        render_table(summary, console)
        return
    text = {"markdown": render_markdown, "csv": render_csv, "json": render_json}[fmt](summary)
    console.file.write(text)
