"""Render report data as a rich table, markdown, CSV or JSON (the data lives in summary.py)."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from rich.console import Console

from .tables import count, html, show

if TYPE_CHECKING:  # the data it renders (summary.py renders through this module)
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


def _columns(summary: Summary) -> tuple[str, ...]:
    """The table's columns; 'Trainable' only for a spec with a transfer: section."""
    return COLUMNS + (("Trainable",) if summary.transfer else ())


def _cells(summary: Summary) -> list[tuple[str, ...]]:
    """One tuple of cells per row; nested layers are indented under their concat/residual."""
    extra = (lambda r: (r.status,)) if summary.transfer else (lambda r: ())
    return [("  " * r.depth + ("└ " if r.depth else "") + r.name, r.type, r.args, r.output,
             f"{r.params:,}", f"{100 * r.share:.1f}", f"{r.macs:,}", *extra(r))
            for r in summary.layers]


def footer(summary: Summary) -> list[str]:
    t = summary.totals
    return [
        f"Total params: {t.params:,} ({human(t.params)}), {t.params_mb:.2f} MB as float32",
        f"Trainable params: {t.trainable_params:,}",
        f"Non-trainable params: {t.non_trainable_params:,}"
        + (" (frozen by transfer:, at the first epoch)" if summary.transfer else ""),
        f"Buffers (batch-norm running statistics, not parameters): {t.buffers:,}",
        (f"MACs per image: {t.macs:,} ({human(t.macs, 'MACs')}); "
         f"FLOPs = 2 x MACs = {t.flops:,} ({human(t.flops, 'FLOPs')})"),
        f"Activations per image, forward: {t.activations_mb:.2f} MB as float32",
        *training_lines(summary.training),
        *transfer_lines(summary.transfer),
    ]


def transfer_lines(tr: dict) -> list[str]:
    """The freeze preview: where the weights come from, what is frozen, the new head."""
    if not tr:
        return []
    lines = [(f"Transfer from {tr['source']}: {tr['frozen_params']:,} params frozen, "
             f"{tr['trainable_params']:,} trainable")]
    if tr["head"]:
        n = ("one output per class of the data (set when training)" if tr["classes"] == "data"
             else f"{tr['classes']} outputs")
        lines.append(f"New head {tr['head']}: {n}, freshly initialised")
    lines += [f"{', '.join(u['layers'])} unfreeze{'s' if len(u['layers']) == 1 else ''} at epoch "
              f"{u['epoch']}" for u in tr["unfreeze"]]
    if tr["bn_train"]:
        lines.append("Frozen layers' batch norms keep updating their running statistics (bn train)")
    if tr.get("bias_train"):
        lines.append("Frozen layers' biases keep training, their weights stay (bias train)")
    return lines


def training_lines(tr: dict) -> list[str]:
    """The train: section and its learning-rate schedule, as --train would run it."""
    if not tr:
        return []
    lines = [f"Training: {count(tr['epochs'], 'epoch')}, batch {tr['batch']}, {tr['optimizer']}"
             + (f", weight decay {tr['weight_decay']:g}" if tr["weight_decay"] else ""),
             (f"Learning rate by epoch{', backbone' if tr.get('schedule_head') else ''}: "
             f"{tr['schedule'].removeprefix('epochs ')}")]
    if tr.get("schedule_head"):
        lines.append(f"Learning rate by epoch, new head: "
                     f"{tr['schedule_head'].removeprefix('epochs ')}")
    if tr.get("extras"):
        lines.append("Also: " + "; ".join(tr["extras"]))
    return lines + [f"warning: {w}" for w in tr["warnings"]]


def render_table(summary: Summary, console: Console, wide: bool = False) -> None:
    """The summary as a table that fits the terminal (see :mod:`cnnspec.report.tables`)."""
    console.print(f"{summary.network}: input {summary.input} -> output {summary.output}",
                  highlight=False, markup=False)
    show(console, _columns(summary), _cells(summary), numeric=(4, 5, 6), wrap=(2,), wide=wide)
    for line in footer(summary):
        console.print(line, highlight=False, soft_wrap=not console.is_terminal)


def summary_html(summary: Summary) -> str:
    """The summary as an HTML table (Jupyter)."""
    return html(_columns(summary), _cells(summary), (4, 5, 6),
                f"{summary.network}: input {summary.input} -> output {summary.output}",
                footer(summary))


def render_markdown(summary: Summary) -> str:
    lines = [f"**{summary.network}**: input {summary.input} -> output {summary.output}", "",
             "| " + " | ".join(_columns(summary)) + " |",
             "|" + "|".join("---:" if 4 <= i < 7 else "---"
                            for i in range(len(_columns(summary)))) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in _cells(summary)]
    return "\n".join(lines + [""] + [f"- {f}" for f in footer(summary)]) + "\n"


def render_csv(summary: Summary) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "path", "depth", "type", "args", "output", "params", "share", "macs",
                "trainable", "status"])
    for r in summary.layers:
        w.writerow([r.name, r.path, r.depth, r.type, r.args, r.output, r.params, f"{r.share:.6f}",
                    r.macs, r.trainable, r.status])
    return buf.getvalue()


def render_json(summary: Summary) -> str:
    return json.dumps(summary.to_dict(), indent=2) + "\n"


def render(summary: Summary, fmt: str, console: Console, wide: bool = False) -> None:
    """Print ``summary`` in one of :data:`FORMATS` to ``console``."""
    if fmt == "table":
        render_table(summary, console, wide)
        return
    text = {"markdown": render_markdown, "csv": render_csv, "json": render_json}[fmt](summary)
    console.file.write(text)


# ---------------------------------------------------------------- diff

DIFF_COLUMNS = ("", "Layer", "Type", "Output (HxWxC)", "Params A", "Params B", "Δ params", "Δ %",
                "MACs A", "MACs B", "Δ MACs")
_MARK = {"same": "", "changed": "~", "added": "+", "removed": "-"}
_STYLE = {"same": None, "changed": "yellow", "added": "green", "removed": "red"}


def _arrow(a, b) -> str:
    if a is None:
        return str(b)
    if b is None or a == b:
        return str(a)
    return f"{a} → {b}"


def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def _pct_text(p: float | None) -> str:
    return "" if not p else f"{p:+.1f}%"


def _total_delta(delta: int, pct: float | None) -> str:
    """'-9,075,968 (-6.6%)', or 'unchanged'."""
    return f"{_signed(delta)} ({_pct_text(pct)})" if delta else "unchanged"


def _diff_cells(d) -> list[tuple[tuple[str, ...], str]]:
    out = []
    for r in d.rows:
        name = ("  " * r.depth + ("└ " if r.depth else "")) + _arrow(r.name_a, r.name_b)
        out.append(((_MARK[r.status], name, r.type, _arrow(r.output_a, r.output_b),
                     f"{r.params_a:,}" if r.name_a else "", f"{r.params_b:,}" if r.name_b else "",
                     _signed(r.params_delta), _pct_text(r.params_pct),
                     f"{r.macs_a:,}" if r.name_a else "", f"{r.macs_b:,}" if r.name_b else "",
                     _signed(r.macs_delta)), r.status))
    return out


def diff_footer(d) -> list[str]:
    t = d.totals
    na, nb = d.a["network"], d.b["network"]
    counts = {s: sum(1 for r in d.rows if r.status == s) for s in ("changed", "added", "removed")}
    return [
        (f"Total params: {t['params_a']:,} ({na}) → {t['params_b']:,} ({nb}): "
        f"{_total_delta(t['params_delta'], t['params_pct'])}"),
        (f"MACs per image: {human(t['macs_a'], 'MACs')} → {human(t['macs_b'], 'MACs')}: "
        f"{_total_delta(t['macs_delta'], t['macs_pct'])}; FLOPs = 2 x MACs"),
        (f"Layers: {counts['changed']} changed, {counts['added']} added, {counts['removed']} removed "
        "(aligned by structure; ~ changed, + added, - removed)"),
    ]


def render_diff_table(d, console: Console, changed_only: bool = False,
                      wide: bool = False) -> None:
    """The diff as a table that fits the terminal (see :mod:`cnnspec.report.tables`)."""
    console.print(f"A = {d.a['network']} ({d.a['file']})    B = {d.b['network']} ({d.b['file']})",
                  highlight=False, markup=False)
    kept = [(cells, status) for cells, status in _diff_cells(d)
            if not (changed_only and status == "same")]
    show(console, DIFF_COLUMNS, [c for c, _ in kept], numeric=tuple(range(4, 11)),
         wrap=(1, 3), styles=[_STYLE[s] for _, s in kept], wide=wide)
    for line in diff_footer(d):
        console.print(line, highlight=False, soft_wrap=not console.is_terminal)


def diff_html(d) -> str:
    """The diff as an HTML table (Jupyter)."""
    return html(DIFF_COLUMNS, [c for c, _ in _diff_cells(d)], tuple(range(4, 11)),
                f"A = {d.a['network']}, B = {d.b['network']}", diff_footer(d))


def render_diff_markdown(d, changed_only: bool = False) -> str:
    lines = [(f"A = **{d.a['network']}** (`{d.a['file']}`), B = **{d.b['network']}** "
             f"(`{d.b['file']}`)"), "",
             "| " + " | ".join(c or "±" for c in DIFF_COLUMNS) + " |",
             "|" + "|".join("---:" if i >= 4 else "---" for i in range(len(DIFF_COLUMNS))) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
              for cells, status in _diff_cells(d) if not (changed_only and status == "same")]
    return "\n".join(lines + [""] + [f"- {f}" for f in diff_footer(d)]) + "\n"


def render_diff_csv(d, changed_only: bool = False) -> str:
    buf = io.StringIO()
    rows = [asdict_row for asdict_row in d.to_dict()["rows"]
            if not (changed_only and asdict_row["status"] == "same")]
    w = csv.DictWriter(buf, fieldnames=list(d.to_dict()["rows"][0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def render_diff(d, fmt: str, console: Console, changed_only: bool = False,
                wide: bool = False) -> None:
    """Print a :class:`~cnnspec.report.diff.Diff` in one of :data:`FORMATS`."""
    if fmt == "table":
        render_diff_table(d, console, changed_only, wide)
        return
    if fmt == "json":
        console.file.write(json.dumps(d.to_dict(), indent=2) + "\n")
        return
    text = {"markdown": render_diff_markdown, "csv": render_diff_csv}[fmt](d, changed_only)
    console.file.write(text)
