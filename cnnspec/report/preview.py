"""Previews before training: the learning rate of every epoch range, with warnings.

Epochs are counted from 0, as the ``schedule step:`` thresholds are ("from epoch 20 on"),
so a 20-epoch run has epochs 0-19 (the progress bar counts them 1-20).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import TrainConfig


@dataclass(frozen=True)
class SchedulePreview:
    ranges: list[tuple[int, int, float]]
    """(first epoch, last epoch, learning rate), epochs counted from 0, both inclusive."""
    warnings: list[str]

    def text(self) -> str:
        """'epochs 0-9: 0.1; 10-14: 0.01; 15-19: 0.001'."""
        parts = [f"{a}-{b}: {lr:g}" if a != b else f"{a}: {lr:g}" for a, b, lr in self.ranges]
        return "epochs " + "; ".join(parts)


def schedule_preview(cfg: TrainConfig, epochs: int | None = None) -> SchedulePreview:
    """The learning rate by epoch range for ``cfg`` (``epochs`` overrides ``cfg.epochs``).

    >>> from cnnspec.ir import Milestone, Optimizer
    >>> cfg = TrainConfig(epochs=120, optimizer=Optimizer(name="sgd", lr=0.1),
    ...                   schedule=[Milestone(epoch=20, lr=0.01), Milestone(epoch=50, lr=0.001)])
    >>> schedule_preview(cfg).text()
    'epochs 0-19: 0.1; 20-49: 0.01; 50-119: 0.001'
    """
    n = epochs if epochs is not None else cfg.epochs
    # the rate only changes at milestones: one range per milestone, whatever the epoch count
    starts = [0] + [m.epoch for m in cfg.schedule if 0 < m.epoch < n]
    ranges: list[tuple[int, int, float]] = []
    for a, b in zip(starts, [*starts[1:], n], strict=True):
        lr = cfg.lr_at(a)
        if ranges and ranges[-1][2] == lr:
            ranges[-1] = (ranges[-1][0], b - 1, lr)
        else:
            ranges.append((a, b - 1, lr))
    warnings = [f"schedule: epoch {m.epoch} lies beyond the last epoch ({n - 1}); its learning "
                f"rate {m.lr:g} never applies" for m in cfg.schedule if m.epoch >= n]
    rates = [cfg.optimizer.lr] + [m.lr for m in cfg.schedule if m.epoch < n]
    for m, before, after in zip(cfg.schedule, rates, rates[1:], strict=False):
        if after > before:
            warnings.append(f"schedule: the learning rate rises at epoch {m.epoch} "
                            f"({before:g} -> {after:g}); step schedules usually only decrease it")
    return SchedulePreview(ranges, warnings)
