"""Callbacks: what happens around the steps, behind one small interface.

A callback implements any of the hooks of :class:`Callback` (as Keras' and Lightning's do);
the loop calls them in order. A user's own callback is passed to ``cnnspec.train(spec,
callbacks=[...])`` and sees the same :class:`~cnnspec.training.loop.Trainer` the built-in
ones do (``trainer.model``, ``trainer.optimizer``, ``trainer.metrics``, ``trainer.stop``).

The built-in ones: :class:`NaNGuard` (a NaN or infinite loss stops training within the step
it appears, the last good checkpoint kept), :class:`Checkpoint` (last/best/every-N weights,
the resumable ``last.ckpt`` and the metrics files, each epoch), :class:`EarlyStopping`
(Keras' rule, computed from the metrics history so a resumed run stops where an
uninterrupted one would) and :class:`ProgressLog` (the rich progress bar and epoch lines).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch

from .. import ir
from ..errors import TrainingError

if TYPE_CHECKING:
    from .loop import Trainer


class Callback:
    """The hooks a callback may implement; each default does nothing."""

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """``epoch`` 0-based."""

    def on_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        """After the optimizer step; ``loss`` is the batch's mean loss, a 0-dim tensor on the
        device (reading it with ``.item()`` waits for the device)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict) -> None:
        """After validation; ``metrics`` is the epoch's record (also ``trainer.metrics[-1]``)."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last epoch, and also when training stops with an error."""


def improved(value: float, best: float | None, monitor: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` of metric ``monitor`` beats ``best`` by more than ``min_delta``
    (losses improve downwards, accuracies upwards).

    >>> improved(0.5, 0.6, "val_loss"), improved(0.59, 0.6, "val_loss", 0.05)
    (True, False)
    """
    if best is None:
        return True
    return value < best - min_delta if monitor.endswith("loss") else value > best + min_delta


def early_stop_due(metrics: list[dict], rule: ir.EarlyStop | None) -> bool:
    """Keras ``EarlyStopping``: True once ``rule.monitor`` has gone ``rule.patience`` epochs
    without improving on its best by more than ``min_delta``.

    >>> rule = ir.EarlyStop(monitor="val_loss", patience=2)
    >>> [early_stop_due([{"val_loss": v} for v in [1, .5, .6, .7][:n]], rule) for n in (3, 4)]
    [False, True]
    """
    if rule is None:
        return False
    best, wait = None, 0
    for m in metrics:
        if improved(m[rule.monitor], best, rule.monitor, rule.min_delta):
            best, wait = m[rule.monitor], 0
        else:
            wait += 1
    return wait >= rule.patience


def kept(trainer: Trainer, epoch: int) -> str:
    """What a run stopped in 0-based ``epoch`` keeps."""
    if epoch:  # at least one epoch completed: it wrote last.ckpt
        return (f"The last good checkpoint ({trainer.folder.weights_file('last')}, epoch "
                f"{epoch}) is kept.")
    return "No epoch had completed, so there is no checkpoint and the run folder is removed."


class NaNGuard(Callback):
    """Stops training when a step's loss is NaN or infinite, or explodes (above
    :meth:`limit`: a cross-entropy loss starts near ln(classes) and only a diverging run
    reaches a hundred), and after an epoch whose validation loss is not finite.

    The check stays on the device: each step folds the loss into the index of the first bad
    step, and that is read every ``every`` steps and at the epoch's end, so training stops
    within ``every`` steps of the first bad loss (in a torchrun group, in every process at
    the same step) and the message names that step and the learning rate."""

    NONE = 2**62

    def __init__(self, every: int = 10):
        self.every = every

    @staticmethod
    def limit(classes: int) -> float:
        """The loss that counts as exploded: 50 x ln(classes), at least 100.

        >>> NaNGuard.limit(2), round(NaNGuard.limit(10), 1), round(NaNGuard.limit(1000), 1)
        (100.0, 115.1, 345.4)
        """
        return max(100.0, 50 * math.log(max(classes, 2)))

    def on_epoch_start(self, trainer, epoch):
        self.max_loss = self.limit(len(trainer.classes))
        self.first_bad = torch.full((), self.NONE, dtype=torch.long, device=trainer.device)
        self.first_loss = torch.zeros((), device=trainer.device)

    def on_step_end(self, trainer, step, loss):
        bad = ~torch.isfinite(loss) | (loss > self.max_loss)
        first = bad & (self.first_bad == self.NONE)
        self.first_loss = torch.where(first, loss.float(), self.first_loss)
        self.first_bad = torch.minimum(self.first_bad, torch.where(bad, step, self.NONE))
        if (step + 1) % self.every and step + 1 != trainer.steps_per_epoch:
            return
        first_step = trainer.group.minimum(self.first_bad.clone())
        if first_step < self.NONE:
            value, lr = float(self.first_loss), trainer.step_lr
            where = f"at epoch {trainer.epoch + 1}, step {first_step + 1} (learning rate {lr:g})"
            if math.isfinite(value):
                raise TrainingError(
                    f"the loss exploded to {value:.3g} {where}; a healthy start is about "
                    f"ln({len(trainer.classes)}) = {math.log(max(len(trainer.classes), 2)):.2f}. "
                    f"Training stopped. {kept(trainer, trainer.epoch)} Lower the learning rate "
                    f"(try {lr / 10:g}).")
            raise TrainingError(
                f"the loss became {'nan' if math.isnan(value) else 'inf'} {where}; training "
                f"stopped. {kept(trainer, trainer.epoch)} Lower the learning rate or add "
                "batchnorm.")

    def on_epoch_end(self, trainer, epoch, metrics):
        if not math.isfinite(metrics["val_loss"]):
            raise TrainingError(f"the validation loss became {metrics['val_loss']} after epoch "
                                f"{epoch + 1}: the weights diverged; training stopped. "
                                f"{kept(trainer, epoch)} Lower the learning rate or the weight "
                                "decay.")


class Checkpoint(Callback):
    """After every epoch: ``last.ckpt`` (everything resume needs), ``last.safetensors``,
    ``best.safetensors`` when the monitored metric improved, ``epoch-NNN.safetensors`` every
    N epochs, and the metrics files; all through the run folder, atomically."""

    def __init__(self, rule: ir.Checkpoint):
        self.rule = rule

    def on_epoch_end(self, trainer, epoch, metrics):
        folder, name = trainer.folder, trainer.spec.name
        folder.save_checkpoint(trainer.state_dict())
        folder.save_weights("last", trainer.weights, name)
        best_metric = self.rule.best
        if best_metric is not None:
            best = None
            for m in trainer.metrics[:-1]:
                best = m[best_metric] if improved(m[best_metric], best, best_metric) else best
            if improved(metrics[best_metric], best, best_metric):
                folder.save_weights("best", trainer.weights, name)
        if self.rule.every is not None and (epoch + 1) % self.rule.every == 0:
            folder.save_weights(f"epoch-{epoch + 1:03d}", trainer.weights, name)
        folder.write_metrics(name, trainer.metrics)


class EarlyStopping(Callback):
    """``early_stop METRIC patience N [min_delta D]``: sets ``trainer.stop``."""

    def __init__(self, rule: ir.EarlyStop):
        self.rule = rule

    def on_train_start(self, trainer):
        trainer.stop = early_stop_due(trainer.metrics, self.rule)  # resumed after it stopped

    def on_epoch_end(self, trainer, epoch, metrics):
        if early_stop_due(trainer.metrics, self.rule):
            trainer.stop = True
            trainer.console.print(
                f"early stop after epoch {epoch + 1}: {self.rule.monitor} has not improved"
                + (f" by more than {self.rule.min_delta:g}" if self.rule.min_delta else "")
                + f" for {self.rule.patience} epochs", highlight=False)


class ProgressLog(Callback):
    """A rich progress bar per epoch (loss, accuracy, learning rate, images/s) and a line
    with the epoch's training and validation results. The bar's running loss and accuracy
    are read from the device every ``every`` steps, not every step; in a torchrun group they
    are rank 0's share (images/s counts the group), and the epoch line is the group's."""

    def __init__(self, every: int = 10):
        self.every, self.progress, self.task = every, None, None

    @staticmethod
    def live(console) -> bool:
        """A bar can be drawn: a terminal, or Jupyter with ipywidgets (rich draws its bars
        there as an output widget; without ipywidgets it could only warn)."""
        if console.is_terminal:
            return True
        if not console.is_jupyter:
            return False  # a log file gets the epoch lines; a bar would be dumped there
        import importlib.util

        return importlib.util.find_spec("ipywidgets") is not None

    def on_train_start(self, trainer):
        if not self.live(trainer.console):
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[phase]} loss {task.fields[loss]:.4f} acc "
                       "{task.fields[acc]:.2%} lr {task.fields[lr]:.2g} "
                       "{task.fields[ips]:,.0f} img/s"),
            TimeElapsedColumn(), console=trainer.console, transient=False)
        self.progress.start()

    def on_epoch_start(self, trainer, epoch):
        self.t0 = time.perf_counter()
        if self.progress is None:
            return
        self.task = self.progress.add_task(
            "", total=trainer.steps_per_epoch, epoch=f"{epoch + 1}/{trainer.cfg.epochs}",
            loss=0.0, acc=0.0, lr=trainer.lr(), ips=0.0, phase="train")

    def on_step_end(self, trainer, step, loss):
        last = step + 1 == trainer.steps_per_epoch
        if self.progress is None or (step + 1) % self.every and not last:
            return  # the bar moves every `every` steps: redrawing it costs as much as a step
        seen, loss_sum, correct = trainer.running()  # rank 0's own, in a torchrun group
        self.progress.update(self.task, completed=step + 1, loss=loss_sum / max(seen, 1),
                             acc=correct / max(seen, 1), lr=trainer.step_lr,
                             ips=seen * trainer.group.world_size / (time.perf_counter() - self.t0))

    def on_epoch_end(self, trainer, epoch, m):
        if self.progress is not None:
            self.progress.update(self.task, loss=m["val_loss"], acc=m["val_accuracy"],
                                 phase="val")
        trainer.console.print(
            f"  epoch {epoch + 1}: train loss {m['train_loss']:.4f} acc "
            f"{m['train_accuracy']:.2%} | val loss {m['val_loss']:.4f} acc "
            f"{m['val_accuracy']:.2%} | lr {m['lr']:.3g} | {m['images_per_s']:,.0f} img/s, "
            f"{m['seconds']:.1f} s" + (f" | {m['skipped_steps']} step(s) skipped (fp16 "
                                       "overflow)" if m.get("skipped_steps") else ""),
            highlight=False)

    def on_train_end(self, trainer):
        if self.progress is not None:
            self.progress.stop()
