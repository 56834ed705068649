"""``cnnspec diff A.cnn B.cnn``: what a change to an architecture did, layer by layer.

Layers are aligned by structure, not by position or automatic name: each row of the two
summaries has a key (kind and window, plus the label of a layer written with ``as NAME``),
and the longest common subsequence of keys (``difflib.SequenceMatcher``) pairs them. An
inserted transition layer therefore shows as one insertion, and the convolutions after it
as the same layers with fewer parameters, not as every later layer changed. Labelled layers
only pair with the same label.

Rows carry shapes, parameters and MACs of both sides and their deltas; totals are the
sums over top-level layers. JSON schema (``--format json``)::

    {"a": {"network", "file", "totals": {...}}, "b": {...},
     "rows": [{"status": "same|changed|added|removed", "depth", "type",
               "name_a", "name_b", "args_a", "args_b", "output_a", "output_b",
               "params_a", "params_b", "params_delta", "params_pct",
               "macs_a", "macs_b", "macs_delta", "macs_pct"}],
     "totals": {"params_a", "params_b", "params_delta", "params_pct",
                "macs_a", "macs_b", "macs_delta", "macs_pct"}}

``*_pct`` is ``100 * delta / a`` (None when a is 0). MACs as in the summary (FLOPs = 2 x MACs).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass

from ..ir import Spec
from .summary import Row, Summary, summarize


@dataclass(frozen=True)
class DiffRow:
    status: str
    depth: int
    type: str
    name_a: str | None
    name_b: str | None
    args_a: str | None
    args_b: str | None
    output_a: str | None
    output_b: str | None
    params_a: int
    params_b: int
    params_delta: int
    params_pct: float | None
    macs_a: int
    macs_b: int
    macs_delta: int
    macs_pct: float | None


@dataclass(frozen=True)
class Diff:
    a: dict
    b: dict
    rows: list[DiffRow]
    totals: dict

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def changed(self) -> list[DiffRow]:
        return [r for r in self.rows if r.status != "same"]

    def __str__(self) -> str:
        """The table ``cnnspec diff`` prints, as plain text (``print(diff)``)."""
        from .render import render_diff_table
        from .tables import text

        return text(lambda console: render_diff_table(self, console))

    def _repr_html_(self) -> str:
        """An HTML table, for Jupyter."""
        from .render import diff_html

        return diff_html(self)


def _pct(a: int, delta: int) -> float | None:
    return 100.0 * delta / a if a else None


def _row(status: str, ra: Row | None, rb: Row | None) -> DiffRow:
    pa, pb = (ra.params if ra else 0), (rb.params if rb else 0)
    ma, mb = (ra.macs if ra else 0), (rb.macs if rb else 0)
    ref = ra or rb
    return DiffRow(status, ref.depth, ref.type, ra and ra.name, rb and rb.name, ra and ra.args,
                   rb and rb.args, ra and ra.output, rb and rb.output, pa, pb, pb - pa,
                   _pct(pa, pb - pa), ma, mb, mb - ma, _pct(ma, mb - ma))


def _same(ra: Row, rb: Row) -> bool:
    return (ra.args, ra.output, ra.params, ra.macs) == (rb.args, rb.output, rb.params, rb.macs)


def align(a: list[Row], b: list[Row]) -> list[DiffRow]:
    """Pair rows of two summaries by structure (see the module docstring)."""
    keys_a = [(r.depth, r.key) for r in a]
    keys_b = [(r.depth, r.key) for r in b]
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=keys_a, b=keys_b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for ra, rb in zip(a[i1:i2], b[j1:j2], strict=True):
                rows.append(_row("same" if _same(ra, rb) else "changed", ra, rb))
            continue
        # a replaced stretch: rows of the same kind still pair up (dense 1000 -> dense 3)
        left, right = list(a[i1:i2]), list(b[j1:j2])
        while left or right:
            if left and right and left[0].type == right[0].type and left[0].depth == right[0].depth:
                rows.append(_row("changed", left.pop(0), right.pop(0)))
            elif left and (not right or left[0].depth >= right[0].depth):
                rows.append(_row("removed", left.pop(0), None))
            else:
                rows.append(_row("added", None, right.pop(0)))
    return rows


def _side(spec: Spec, summary: Summary) -> dict:
    return {"network": spec.name, "file": spec.file, "totals": asdict(summary.totals)}


def diff(a: Spec, b: Spec) -> Diff:
    """The parameter and MAC diff of two validated specs, as data."""
    sa, sb = summarize(a), summarize(b)
    ta, tb = sa.totals, sb.totals
    totals = {"params_a": ta.params, "params_b": tb.params, "params_delta": tb.params - ta.params,
              "params_pct": _pct(ta.params, tb.params - ta.params),
              "macs_a": ta.macs, "macs_b": tb.macs, "macs_delta": tb.macs - ta.macs,
              "macs_pct": _pct(ta.macs, tb.macs - ta.macs)}
    return Diff(_side(a, sa), _side(b, sb), align(sa.layers, sb.layers), totals)
