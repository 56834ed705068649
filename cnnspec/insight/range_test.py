"""``cnnspec lr-find``: the learning-rate range test (Smith, "Cyclical Learning Rates for
Training Neural Networks", WACV 2017, sec. 3.3).

The spec's network is set up exactly as training sets it up (data, split, normalisation,
augmentation, optimizer, precision; :func:`cnnspec.training.setup.setup`), then trained for
``steps`` steps while the learning rate grows exponentially from ``start`` to ``end``. The
loss is smoothed with an exponential moving average (factor :data:`BETA`, bias-corrected,
as fastai's ``lr_find``) and the test stops early once the smoothed loss exceeds
:data:`DIVERGED` times its minimum. Nothing is written but the plot: no run folder, and the
weights are thrown away.

Suggested rate: the rate at the smoothed loss's minimum divided by 10 (fastai's
``minimum`` rule: the minimum is already too high a rate, one order of magnitude below is
on the descending slope). The steepest descent is reported beside it.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console

from .. import ir
from ..errors import CnnSpecError

BETA = 0.98
DIVERGED = 4.0
RULE = "the learning rate at the smoothed loss's minimum, divided by 10"


class _Fixed:
    """Stands in for the schedule: the range test sets every step's rate itself."""

    def step(self) -> None: ...

    def epoch_end(self, metrics: dict) -> None: ...


def smooth(losses: list[float], beta: float = BETA) -> list[float]:
    """Bias-corrected exponential moving average: ``avg_k / (1 - beta^(k+1))``.

    >>> [round(v, 3) for v in smooth([1.0, 1.0, 4.0], beta=0.5)]
    [1.0, 1.0, 2.714]
    """
    out, avg = [], 0.0
    for k, v in enumerate(losses):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (k + 1)))
    return out


def suggestions(lrs: list[float], smoothed: list[float]) -> tuple[float | None, float | None]:
    """(minimum / 10, steepest descent) of a range test; None where the curve is too short
    (fewer than 5 steps) or never finite."""
    finite = [k for k, v in enumerate(smoothed) if math.isfinite(v)]
    if len(finite) < 5:
        return None, None
    k_min = min(finite, key=lambda k: smoothed[k])
    minimum = lrs[k_min] / 10
    upto = [k for k in finite if k <= k_min]
    if len(upto) < 3:
        return minimum, None
    slope = np.gradient(np.array([smoothed[k] for k in upto]),
                        np.log(np.array([lrs[k] for k in upto])))
    return minimum, lrs[upto[int(np.argmin(slope))]]


def lr_find(spec: ir.Spec, data: str | Path | None = None, out: str | Path | None = None, *,
            start: float = 1e-7, end: float = 10.0, steps: int = 200,
            device: str | None = None, console: Console | None = None) -> dict:
    """Run the range test on ``spec`` (``data`` as for training: an image folder, the spec's
    ``train: data`` or the embedded digits) and plot loss against learning rate to ``out``
    (default ``lr-find-<network>.png`` in the working folder).

    Returns ``{"network", "lrs", "losses", "smoothed", "suggested", "steepest", "rule",
    "steps", "stopped", "file", "note", "skipped", "transfer_rates"}``; ``stopped`` says why
    the test ended early or found nothing (no suggestion when the loss never fell below its
    first value); ``transfer_rates`` is (backbone, head) when the spec's transfer: section
    sets them (the rates swept are then the backbone's, the head keeping its ratio).

    Raises:
        CnnSpecError: ``start``/``end``/``steps`` out of range; see also
            :func:`cnnspec.train` for the data and transfer errors.
    """
    from ..report.pictures import lr_plot
    from ..training.run_folder import RunFolder
    from ..training.settings import data_path_of, pick_device
    from ..training.setup import setup

    if not (0 < start < end and math.isfinite(end)):
        raise CnnSpecError(f"lr-find: the range must grow: --start {start:g} --end {end:g}")
    if start < 1e-30 or end > 1e6:  # float32 holds them; beyond, no network trains
        raise CnnSpecError(f"lr-find: --start {start:g} --end {end:g}: learning rates are "
                           "tested between 1e-30 and 1e6 (the defaults: 1e-7 to 10)")
    if steps < 5:
        raise CnnSpecError(f"lr-find: --steps {steps} is too few; use 100 or more")
    from ..data.folder import conversion
    from ..report.pictures import picture_path

    file = picture_path(out if out is not None else f"lr-find-{spec.name}.png")
    console = console or Console(stderr=True, quiet=True)
    with tempfile.TemporaryDirectory(prefix="cnnspec-lr-find-") as scratch:
        cfg = spec.train.model_copy(update={"tensorboard": False})  # nothing is logged
        trainer, images, record = setup(spec, cfg, RunFolder(scratch),
                                        data_path_of(spec, data), pick_device(device), console,
                                        [])
    trainer.scheduler = _Fixed()
    trainer.start_epoch(0)
    groups = trainer.optimizer.param_groups
    ratios = [g["lr"] / groups[0]["lr"] for g in groups]  # a head's rate keeps its ratio
    growth = (end / start) ** (1 / (steps - 1))
    lrs, losses, stopped, epoch = [], [], None, 0
    average, lowest = 0.0, math.inf  # the moving average of smooth(), kept as it goes
    batches = iter(trainer.train_loader)
    for k in range(steps):
        lr = start * growth ** k
        for g, r in zip(groups, ratios, strict=True):
            g["lr"] = lr * r
        try:
            x, y = next(batches)
        except StopIteration:  # more steps than one epoch: the next epoch's order
            epoch += 1
            trainer.train_loader.batch_sampler.set_epoch(epoch)
            batches = iter(trainer.train_loader)
            x, y = next(batches)
        _, loss = trainer.step(k, x, y.to(trainer.device, non_blocking=True))
        lrs.append(lr)
        losses.append(float(loss))
        if not math.isfinite(losses[-1]):
            stopped = f"the loss became {losses[-1]} at lr {lr:.3g}"
            break
        average = BETA * average + (1 - BETA) * losses[-1]
        current = average / (1 - BETA ** (k + 1))
        lowest = min(lowest, current)
        if k >= 10 and current > DIVERGED * lowest:
            stopped = (f"the loss diverged at lr {lr:.3g} (smoothed loss over {DIVERGED:g} x "
                       "its minimum)")
            break
    smoothed = smooth(losses)
    minimum, steepest = suggestions(lrs, smoothed)
    finite = [v for v in smoothed if math.isfinite(v)]
    if minimum is not None and finite and smoothed[0] <= min(finite):
        minimum = steepest = None  # the first rate was already the best: nothing was found
        stopped = (stopped or "") + ("; " if stopped else "") + (
            "the loss never fell below its value at the first rate; lower --start")
    lr_plot(lrs, losses, smoothed, minimum, file,
            f"{spec.name}: learning-rate range test ({len(lrs)} steps, batch "
            f"{spec.train.batch}, {spec.train.optimizer.name})")
    return {"network": spec.name, "lrs": lrs, "losses": losses, "smoothed": smoothed,
            "suggested": minimum, "steepest": steepest, "rule": RULE, "steps": len(lrs),
            "stopped": stopped, "file": str(file),
            "note": conversion(getattr(images, "origins", None) or {}, spec.input),
            "skipped": [r["path"] for r in record["skipped"]],
            "transfer_rates": None if spec.transfer is None or spec.transfer.lr_backbone is None
            else (spec.transfer.lr_backbone, spec.transfer.lr_head)}
