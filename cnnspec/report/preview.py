"""Previews before training: the learning rate of every epoch range, with warnings.

Epochs are counted from 1, as the ``schedule step:`` thresholds are ("from epoch 20 on") and
as training prints them: a 20-epoch run has epochs 1-20. The rates come from
:func:`cnnspec.schedule.lr_at`, the function the trainer applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import TrainConfig
from ..schedule import change_epochs

MAX_RANGES = 12
"""More ranges than this (a cosine or onecycle curve) are shown as a sample of epochs."""


@dataclass(frozen=True)
class SchedulePreview:
    ranges: list[tuple[int, int, float]]
    """(first epoch, last epoch, learning rate), epochs counted from 1, both inclusive."""
    warnings: list[str]
    note: str = ""
    """What the ranges cannot show (plateau reductions), or ''."""

    def scaled(self, factor: float) -> SchedulePreview:
        """The same schedule for a parameter group whose rate is ``factor`` times the
        optimizer's (the trainer multiplies every group by lr_at(epoch) / lr)."""
        return SchedulePreview([(a, b, lr * factor) for a, b, lr in self.ranges], self.warnings,
                               self.note)

    def text(self) -> str:
        """'epochs 1-10: 0.1; 11-15: 0.01; 16-20: 0.001', or for a smooth curve a sample
        'epochs 1: 0.004, 4: 0.1, ..., 10: 4e-07 (a smooth curve: samples)'."""
        if len(self.ranges) <= MAX_RANGES:
            parts = [f"{a}-{b}: {lr:.3g}" if a != b else f"{a}: {lr:.3g}"
                     for a, b, lr in self.ranges]
            text = "epochs " + "; ".join(parts)
        else:
            n = len(self.ranges)
            peak = max(range(n), key=lambda i: self.ranges[i][2])  # the warmup's end, say
            picks = sorted({round(i * (n - 1) / 7) for i in range(8)} | {peak})
            text = "epochs " + ", ".join(f"{self.ranges[i][0]}: {self.ranges[i][2]:.3g}"
                                         for i in picks) + " (a smooth curve: samples)"
        return text + (f"; {self.note}" if self.note else "")


def schedule_preview(cfg: TrainConfig, epochs: int | None = None) -> SchedulePreview:
    """The learning rate by epoch range for ``cfg`` (``epochs`` overrides ``cfg.epochs``).

    >>> from cnnspec.ir import Milestone, Optimizer, Schedule
    >>> cfg = TrainConfig(epochs=120, optimizer=Optimizer(name="sgd", lr=0.1), schedule=Schedule(
    ...     kind="step", steps=[Milestone(epoch=20, lr=0.01), Milestone(epoch=50, lr=0.001)]))
    >>> schedule_preview(cfg).text()
    'epochs 1-19: 0.1; 20-49: 0.01; 50-120: 0.001'
    """
    n = epochs if epochs is not None else cfg.epochs
    sched, base = cfg.schedule, cfg.optimizer.lr
    changes = change_epochs(sched, n, base)
    ranges = [(e + 1, changes[i + 1][0] if i + 1 < len(changes) else n, lr)
              for i, (e, lr) in enumerate(changes)]
    warnings: list[str] = []
    note = ""
    if sched is not None and sched.warmup >= n:
        warnings.append(f"schedule: warmup {sched.warmup} is not shorter than the run ({n} epochs)")
    if sched is not None and sched.kind == "step":
        warnings += [f"schedule: epoch {m.epoch} lies beyond the last epoch ({n}); its "
                     f"learning rate {m.lr:g} never applies" for m in sched.steps if m.epoch > n]
        rates = [base] + [m.lr for m in sched.steps if m.epoch <= n]
        for m, before, after in zip(sched.steps, rates, rates[1:], strict=False):
            if after > before:
                warnings.append(f"schedule: the learning rate rises at epoch {m.epoch} "
                                f"({before:g} -> {after:g}); step schedules usually only decrease it")
    elif sched is not None and sched.kind == "multistep":
        warnings += [f"schedule: milestone {m} lies beyond the last epoch ({n}) and never "
                     "applies" for m in sched.milestones if m > n]
    elif sched is not None and sched.kind == "plateau":
        note = (f"then x{sched.factor:g} after {sched.patience} epochs without {sched.monitor} "
                f"improving" + (f" (not below {sched.min_lr:g})" if sched.min_lr else ""))
    return SchedulePreview(ranges, warnings, note)


def flag(key: str, value) -> str:
    """An override as it was typed: ``--lr 0.01``, ``--compile``, ``--no-compile``.

    >>> flag("lr", 0.01), flag("compile", False)
    ('--lr 0.01', '--no-compile')
    """
    from ..settings import OVERRIDES

    name = OVERRIDES[key].flag if key in OVERRIDES else "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return name if value else f"--no-{name[2:]}"
    return f"{name} {value}"


def override_lines(spec_cfg: TrainConfig, run_cfg: TrainConfig, given: dict) -> list[str]:
    """What command-line overrides (``given``, turning ``spec_cfg`` into ``run_cfg``) do to
    the learning rates: the new rates by epoch, a note when ``--epochs`` ends the run before
    changes of its schedule, and warnings the spec's own preview did not already give."""
    if not given:
        return []
    preview = schedule_preview(run_cfg)
    lines = [(f"With {' '.join(flag(k, v) for k, v in given.items())}, learning rate by "
             f"epoch: {preview.text().removeprefix('epochs ')}")]
    own = set(schedule_preview(spec_cfg).warnings)  # shown with the summary already
    beyond = [w for w in preview.warnings if w not in own and "beyond the last" in w]
    if beyond and "epochs" in given:  # the user shortened the run on purpose
        lines.append(f"note: with --epochs {given['epochs']} the run ends before "
                     f"{len(beyond)} change(s) of its schedule")
    return lines + [f"warning: {w}" for w in preview.warnings if w not in own and w not in beyond]
