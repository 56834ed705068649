"""Learning-rate schedules, as closed-form functions of (epoch, step) (no torch needed).

The summary previews them and the trainer applies the very same function through
``torch.optim.lr_scheduler.LambdaLR`` stepped after every optimizer step, so what the
preview shows is what training does. ``tests/test_schedule.py`` holds each formula to PyTorch's own scheduler
of the same name.

One numbering: a spec counts epochs from 1, as training prints them, the metrics files
record them and ``--epochs`` counts them ("from epoch 20 use 0.01": the line printed
``epoch 20`` is the first at 0.01). The functions here take the 0-based epoch *index*
``e`` (epoch e + 1), as PyTorch's schedulers and Keras's schedule function do.

- ``step``: the lecture's thresholds, ``20: 0.01`` = from epoch 20 on, lr 0.01 (absolute).
- ``multistep``: lr x factor^(number of milestones <= epoch)
  (``torch.optim.lr_scheduler.MultiStepLR`` with milestones m - 1: its epoch counter counts
  the epochs done).
- ``cosine``: ``min_lr + (lr - min_lr) (1 + cos(pi t / T)) / 2`` over the T epochs after the
  warmup (``CosineAnnealingLR``; Loshchilov & Hutter, "SGDR", ICLR 2017, eq. 5).
- ``onecycle``: cosine rise from lr/25 to lr over the first 30% of the epochs after the
  warmup, then cosine fall to lr/25/1e4 (``OneCycleLR`` defaults; Smith & Topin,
  "Super-Convergence", 2019). The optimizer's lr is the peak.
- ``plateau``: multiply by ``factor`` when the monitored metric has not improved for
  ``patience`` epochs (``ReduceLROnPlateau``); it depends on the metrics, so only its
  warmup is known in advance.
- ``warmup N`` (any schedule): epoch e < N uses (e + 1) / (N + 1) of the rate the schedule
  gives at epoch N, a linear ramp (``LinearLR(start_factor=1/(N+1), total_iters=N)``;
  Goyal et al., "Accurate, Large Minibatch SGD", 2017, section 2.2).
"""

from __future__ import annotations

import math

from .ir import Schedule, TrainConfig

ONECYCLE_PCT_START = 0.3
ONECYCLE_DIV_FACTOR = 25.0
ONECYCLE_FINAL_DIV_FACTOR = 1e4
PREVIEW_STEPS = 1000
"""Steps per epoch a preview assumes for onecycle (see :func:`change_epochs`)."""


def cosine(t: int, total: int, base: float, min_lr: float) -> float:
    """Cosine annealing from ``base`` at t = 0 towards ``min_lr`` at t = total.

    >>> cosine(0, 10, 0.1, 0.0), round(cosine(5, 10, 0.1, 0.0), 6)
    (0.1, 0.05)
    """
    return min_lr + (base - min_lr) * (1 + math.cos(math.pi * t / total)) / 2


def _anneal_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)


def onecycle(t: int, total: int, peak: float) -> float:
    """PyTorch's ``OneCycleLR(max_lr=peak, total_steps=total)`` (two phases, cosine) at step t.

    >>> round(onecycle(0, 10, 0.1), 6), round(onecycle(2, 10, 0.1), 6), onecycle(9, 10, 0.1)
    (0.004, 0.1, 4e-07)
    """
    initial = peak / ONECYCLE_DIV_FACTOR
    final = initial / ONECYCLE_FINAL_DIV_FACTOR
    end_up = ONECYCLE_PCT_START * total - 1
    if t <= end_up:
        return _anneal_cos(initial, peak, t / end_up)
    return _anneal_cos(peak, final, (t - end_up) / (total - 1 - end_up))


def lr_at(schedule: Schedule | None, epoch: int, epochs: int, base: float, step: int = 0,
          steps_per_epoch: int = 1) -> float:
    """The learning rate at optimizer ``step`` (0-based) of the epoch with 0-based index
    ``epoch`` (printed as epoch + 1, the numbering of the spec's thresholds) in a run of
    ``epochs`` epochs of ``steps_per_epoch`` steps whose optimizer lr is ``base``. For
    ``plateau`` this is the rate before any reduction.

    The trainer calls it before every step; the summary previews the first step of each
    epoch (``step=0``), where every schedule but onecycle gives the same rate whatever
    ``steps_per_epoch`` is. ``step`` and ``multistep`` change only at epoch boundaries (the
    lecture's "from epoch 20 use 0.01" holds from that epoch's first step); cosine, onecycle
    and the warmup move every step, as PyTorch's schedulers stepped per batch
    (``CosineAnnealingLR(T_max=(epochs - warmup) * S)``, ``OneCycleLR(total_steps=(epochs -
    warmup) * S)``, ``LinearLR(start_factor=1 / (warmup + 1), total_iters=warmup * S)``).

    >>> from cnnspec.ir import Schedule
    >>> s = Schedule(kind="multistep", milestones=[3, 5], factor=0.5, warmup=1)
    >>> [lr_at(s, e, 6, 0.1) for e in range(6)]
    [0.05, 0.1, 0.05, 0.05, 0.025, 0.025]
    >>> round(lr_at(s, 0, 6, 0.1, step=5, steps_per_epoch=10), 6)  # halfway through the warmup
    0.075
    """
    if schedule is None:
        return base
    warmup, per = schedule.warmup, steps_per_epoch
    k = epoch * per + step  # the global step
    e, ke = max(epoch, warmup), max(k, warmup * per)  # in the warmup: the rate at its end
    if schedule.kind == "step":
        lr = base
        for m in schedule.steps:
            if e + 1 >= m.epoch:
                lr = m.lr
    elif schedule.kind == "multistep":
        lr = base * schedule.factor ** sum(e + 1 >= m for m in schedule.milestones)
    elif schedule.kind == "cosine":
        lr = cosine(ke - warmup * per, (epochs - warmup) * per, base, schedule.min_lr)
    elif schedule.kind == "onecycle":
        lr = onecycle(ke - warmup * per, (epochs - warmup) * per, base)
    else:  # plateau: the base rate until the metrics say otherwise
        lr = base
    if k < warmup * per:
        lr *= (k / per + 1) / (warmup + 1)
    return lr


def epoch_lr(train: TrainConfig, epoch: int) -> float:
    """Learning rate of ``epoch`` of a run with these settings, counted from 1 as training
    prints it (:func:`lr_at` at the epoch's first step).

    >>> from cnnspec.ir import Milestone, Optimizer
    >>> t = TrainConfig(optimizer=Optimizer(lr=0.1), schedule=Schedule(
    ...     kind="step", steps=[Milestone(epoch=20, lr=0.01)]), epochs=30)
    >>> epoch_lr(t, 19), epoch_lr(t, 20)
    (0.1, 0.01)
    """
    return lr_at(train.schedule, epoch - 1, train.epochs, train.optimizer.lr)


def change_epochs(schedule: Schedule | None, epochs: int, base: float) -> list[tuple[int, float]]:
    """(epoch index, lr), 0-based, at index 0 and wherever the rate changes, in O(changes) for the piecewise
    constant schedules (a preview of ``epochs 99999999`` must not loop over every epoch);
    smooth schedules (cosine, onecycle, warmup) list every epoch up to 1,000 and then a
    sample of 200 epochs evenly spread.
    """
    if schedule is None:
        return [(0, base)]
    if schedule.kind in ("step", "multistep", "plateau") and schedule.warmup < 1000:
        edges = {0, *range(schedule.warmup + 1)}
        edges |= {m.epoch - 1 for m in schedule.steps} | {m - 1 for m in schedule.milestones}
        epochs_ = sorted(e for e in edges if e < epochs)
    elif epochs <= 1000:
        epochs_ = list(range(epochs))
    else:
        epochs_ = sorted({round(i * (epochs - 1) / 199) for i in range(200)})
    out: list[tuple[int, float]] = []
    # onecycle's phases are counted in steps (its rise ends at step 0.3 T - 1), so its rate
    # at an epoch's first step depends on the steps per epoch; previews assume many (the
    # rates then differ from a run's by under 1% of the peak at 60 steps per epoch)
    per = PREVIEW_STEPS if schedule.kind == "onecycle" else 1
    for e in epochs_:
        lr = lr_at(schedule, e, epochs, base, 0, per)
        if not out or out[-1][1] != lr:
            out.append((e, lr))
    return out
