"""``schedule step: / multistep / cosine / onecycle / plateau [warmup N]``: the learning rate
by epoch (formulas in :mod:`cnnspec.schedule`)."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from ..layers.base import IRModel
from .base import (
    FLOAT32_MAX,
    IRField,
    Metric,
    Rate,
    Setting,
    keep_word,
    simple_transform,
    with_meta,
)

SCHEDULE_OPTIONS: dict[str, set[str]] = {
    "step": {"warmup"},
    "multistep": {"milestones", "factor", "warmup"},
    "cosine": {"min_lr", "warmup"},
    "onecycle": {"warmup"},
    "plateau": {"monitor", "factor", "patience", "min_lr", "warmup"},
}
"""Settings each schedule takes (see cnnspec.schedule)."""


class Milestone(IRModel):
    """One line of ``schedule step:``: from ``epoch`` on, learning rate ``lr``. Epochs count
    from 1, as training prints them (see :mod:`cnnspec.schedule`)."""

    epoch: PositiveInt
    lr: Rate


class Schedule(IRModel):
    """``schedule KIND ...``: the learning rate by epoch (formulas in :mod:`cnnspec.schedule`)."""

    kind: Literal["step", "multistep", "cosine", "onecycle", "plateau"]
    steps: list[Milestone] = []
    """step: from each epoch on, its learning rate."""
    milestones: list[PositiveInt] = []
    """multistep: the epochs (from 1) from which the rate is multiplied by ``factor`` once
    more (PyTorch's ``MultiStepLR`` milestone m is epoch m + 1 here)."""
    factor: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    """multistep and plateau: the multiplier (PyTorch's gamma / factor)."""
    min_lr: Annotated[float, Field(ge=0.0, lt=FLOAT32_MAX)] = 0.0
    """cosine: the rate it anneals towards (eta_min); plateau: the floor."""
    monitor: Metric = "val_loss"
    """plateau: the metric watched."""
    patience: NonNegativeInt = 10
    """plateau: epochs without improvement before the rate is cut (PyTorch default 10)."""
    warmup: NonNegativeInt = 0
    """Epochs of linear warmup before the schedule proper."""


GRAMMAR = """
// `schedule step:` then lines `EPOCH: LR`: from this epoch on, this learning rate.
// The others on one line: `schedule multistep 30, 60 factor 0.1`, `schedule cosine min_lr 1e-5`,
// `schedule onecycle`, `schedule plateau val_loss patience 5 factor 0.5`; any may add `warmup N`.
schedule: "schedule" STEP schedule_opt* ":" _NL _INDENT milestone+ _DEDENT
        | "schedule" MULTISTEP int ("," int)* schedule_opt* _NL
        | "schedule" (COSINE | ONECYCLE) schedule_opt* _NL
        | "schedule" PLATEAU metric? schedule_opt* _NL
milestone: INT ":" number _NL
?schedule_opt: warmup | factor | min_lr | patience
warmup: "warmup" int
factor: "factor" number
min_lr: "min_lr" number
patience: "patience" int
STEP: "step"
MULTISTEP: "multistep"
COSINE: "cosine"
ONECYCLE: "onecycle"
PLATEAU: "plateau"
!metric: "val_loss" | "val_accuracy" | "train_loss" | "train_accuracy"
"""


def _is_token(x) -> bool:
    return isinstance(x, str) and hasattr(x, "type")  # a Lark Token (a str subclass)


@with_meta
def _schedule(self, meta, items):
    kind = items[0]
    raw = self._raw_node("schedule", self._mspan(meta), {"kind": str(kind)},
                         {"kind": self._tspan(kind)})
    rest = items[1:]
    if str(kind) == "multistep":
        ints = [t for t in rest if _is_token(t)]
        raw.set(self._opt("milestones", ints[0], tuple(self._int(t) for t in ints)))
    elif str(kind) == "plateau" and rest and _is_token(rest[0]):
        raw.set(self._opt("monitor", rest[0], str(rest[0])))
    milestones = [r for r in rest if self._is_raw(r)]
    if milestones:
        raw.fields["steps"] = milestones
    for o in rest:
        if self._is_opt(o):
            raw.set(o)
    return self._mopt("schedule", meta, raw)


def _milestone(self, items):
    epoch, lr = items
    span = self._tspan(epoch)
    return self._raw_node("milestone", span, {"epoch": self._int(epoch), "lr": self._num(lr)},
                          {"epoch": span, "lr": self._tspan(lr)})


def _milestones(v, milestones) -> list[Milestone | None]:
    out = [v.model(Milestone, m, m.fields, "schedule") for m in milestones]
    last = None
    for m in milestones:
        epoch = m.fields["epoch"]
        if last is not None and epoch is not None and epoch <= last:
            v.error(m.spans["epoch"], f"schedule: epochs must increase, got {epoch} "
                    f"after {last}", "each line reads 'from this epoch on, this learning "
                    "rate'; list them in order")
        last = epoch
    return out


def check(v, f, raw) -> None:
    """Each option belongs to its schedule; epochs increase; the warmup fits the run."""
    if "schedule" not in f:
        return
    raw, epochs = f["schedule"], f.get("epochs")
    s = dict(raw.fields)
    kind = s["kind"]
    ok = True
    for key in s:
        if key not in ("kind", "steps") and key not in SCHEDULE_OPTIONS[kind]:
            users = [k for k, opts in SCHEDULE_OPTIONS.items() if key in opts]
            v.error_at(raw, raw.spans[key], f"schedule {kind}: {key} is not a setting of "
                       f"this schedule", f"{key} belongs to schedule {' or '.join(users)}"
                       if users else "remove it")
            ok = False
    if "steps" in s:
        s["steps"] = _milestones(v, s["steps"])
        if None in s["steps"]:
            f["schedule"] = None  # a bad line: already reported
            return
    order = s.get("milestones") or ()
    for before, after in itertools.pairwise(order):
        if None not in (before, after) and after <= before:
            v.error_at(raw, raw.spans["milestones"], f"schedule multistep: epochs must "
                       f"increase, got {after} after {before}", "list them in order")
            ok = False
            break
    warmup = s.get("warmup")
    if epochs is None:  # not written: the default
        from . import BY_KEY

        epochs = BY_KEY["train", "epochs"].fields[0].default
    if isinstance(warmup, int) and isinstance(epochs, int) and 0 < epochs <= warmup:
        v.error_at(raw, raw.spans["warmup"], f"schedule {kind}: warmup {warmup} is not "
                   f"shorter than the run ({epochs} epochs)", "warm up for a few epochs, "
                   "e.g. warmup 5 of 100")
        ok = False
    if "milestones" in s:
        s["milestones"] = list(order)
    model = v.model(Schedule, raw, s, f"schedule {kind}")
    f["schedule"] = model if ok else None


def _fits(cfg) -> None:
    if cfg.schedule is not None and cfg.schedule.warmup >= cfg.epochs:
        raise ValueError(f"warmup {cfg.schedule.warmup} must be shorter than the run "
                         f"({cfg.epochs} epochs)")
    if cfg.schedule is not None and cfg.schedule.min_lr >= cfg.optimizer.lr:
        raise ValueError(f"schedule {cfg.schedule.kind}: min_lr {cfg.schedule.min_lr:g} "
                         f"must be below the optimizer's lr {cfg.optimizer.lr:g}")


SETTINGS = (
    Setting(
        "train", ("schedule",), GRAMMAR, (IRField("schedule", Schedule | None, None),),
        (("`schedule KIND ...`", "learning rate by epoch, see below", "constant"),),
        transform={"schedule": _schedule, "metric": keep_word, "milestone": _milestone,
                   **{k: simple_transform(k, v) for k, v in (
                       ("warmup", "int"), ("factor", "num"), ("min_lr", "num"),
                       ("patience", "int"))}},
        check=check, model_checks=(_fits,),
        labels={"epoch": ("the epoch", ("epochs count from 1, as training prints them: the "
                                        "first epoch is epoch 1")),
                "milestones": ("a milestone epoch", ("epochs count from 1, as training "
                                                     "prints them: the first epoch is epoch 1")),
                "factor": ("the factor", "a multiplier in (0, 1) such as 0.1 or 0.5"),
                "min_lr": ("min_lr", None), "patience": ("the patience", "a number of epochs"),
                "warmup": ("the warmup", "a number of epochs")}),
)
