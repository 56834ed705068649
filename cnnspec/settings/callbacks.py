"""``early_stop`` and ``checkpoint``: when a run stops early, which weights it keeps."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, PositiveInt

from ..layers.base import IRModel
from .base import IRField, Metric, Setting, simple_transform, with_meta


class EarlyStop(IRModel):
    """``early_stop METRIC patience N [min_delta D]``: stop after N epochs in which METRIC
    did not improve on its best by more than D (Keras ``EarlyStopping``)."""

    monitor: Metric
    patience: PositiveInt
    min_delta: Annotated[float, Field(ge=0.0)] = 0.0


class Checkpoint(IRModel):
    """``checkpoint best [METRIC] | last | every N``: which weights a run keeps besides
    ``last.ckpt`` (always written, for --resume)."""

    best: Metric | None = "val_accuracy"
    """``best.safetensors`` holds the epoch best by this metric; None (``last``): not kept."""
    every: PositiveInt | None = None
    """Also keep ``epoch-NNN.safetensors`` every N epochs."""


EARLY_STOP = """
// Callbacks: stop when METRIC has not improved by more than min_delta for N epochs;
// which weights to keep (always last.ckpt for --resume; best by a metric; every N epochs).
early_stop: "early_stop" metric patience min_delta? _NL
min_delta: "min_delta" number
"""
CHECKPOINT = """
checkpoint: "checkpoint" checkpoint_item ("," checkpoint_item)* _NL
?checkpoint_item: checkpoint_best | checkpoint_last | checkpoint_every
checkpoint_best: "best" metric?
checkpoint_last: "last"
checkpoint_every: "every" int
"""


@with_meta
def _early_stop(self, meta, items):
    raw = self._raw_node("early_stop", self._mspan(meta), {"monitor": str(items[0])},
                         {"monitor": self._tspan(items[0])})
    for o in items[1:]:
        raw.set(o)
    return self._mopt("early_stop", meta, raw)


@with_meta
def _checkpoint(self, meta, items):
    raw = self._raw_node("checkpoint", self._mspan(meta))
    for o in items:
        raw.set(o)
    return self._mopt("checkpoint", meta, raw)


def _check_early_stop(v, f, raw) -> None:
    if "early_stop" in f:
        f["early_stop"] = v.model(EarlyStop, f["early_stop"], f["early_stop"].fields,
                                  "early stop")


def _check_checkpoint(v, f, raw) -> None:
    if "checkpoint" not in f:
        return
    ck = f["checkpoint"]
    fields = {k: val for k, val in ck.fields.items() if k != "last"}
    if "last" in ck.fields and "best" in fields:
        v.error_at(ck, ck.spans["last"], "checkpoint: 'last' keeps no best weights; "
                   "it cannot go with 'best'", "keep one of them")
    f["checkpoint"] = v.model(Checkpoint, ck, fields, "checkpoint")
    if f["checkpoint"] is not None and "last" in ck.fields:
        f["checkpoint"] = f["checkpoint"].model_copy(update={"best": None})


def _early_stop_line(cfg) -> str | None:
    e = cfg.early_stop
    if e is None:
        return None
    return (f"early stop on {e.monitor} after {e.patience} epochs without improvement"
            + (f" > {e.min_delta:g}" if e.min_delta else ""))


SETTINGS = (
    Setting(
        "train", ("early_stop",), EARLY_STOP, (IRField("early_stop", EarlyStop | None, None),),
        (("`early_stop METRIC patience N [min_delta D]`", "stop after N epochs without METRIC "
          "improving on its best by more than D (Keras `EarlyStopping`)", "none"),),
        transform={"early_stop": _early_stop, "min_delta": simple_transform("min_delta", "num")},
        check=_check_early_stop, labels={"min_delta": ("min_delta", None)},
        summary=_early_stop_line),
    Setting(
        "train", ("checkpoint",), CHECKPOINT, (IRField("checkpoint", Checkpoint, Checkpoint()),),
        (("`checkpoint best [METRIC] \\| last \\| every N`", "which weights to keep, see below",
          "`best val_accuracy`"),),
        transform={
            "checkpoint": _checkpoint,
            "checkpoint_best": with_meta(lambda self, meta, items: self._mopt(
                "best", meta, str(items[0]) if items else "val_accuracy")),
            "checkpoint_last": with_meta(lambda self, meta, items: self._mopt("last", meta, True)),
            "checkpoint_every": lambda self, items: self._opt("every", items[0],
                                                              self._int(items[0]))},
        check=_check_checkpoint,
        labels={"every": ("the checkpoint interval", "every N epochs, N >= 1")}),
)
