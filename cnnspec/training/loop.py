"""The step loop: batches in, loss, backward, optimizer and schedule step, callbacks around.

Read it top to bottom: :meth:`Trainer.fit` runs the epochs, :meth:`Trainer.train_epoch` the
steps of one. Loss and accuracy are summed on the device and read only where a callback
asks (:meth:`Trainer.running`) and at the epoch's end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from rich.console import Console
from torch import nn

from .. import ir
from ..build import Network
from ..transfer import FreezePlan, apply_plan, freeze_batchnorm
from .callbacks import Callback
from .inference import Standardize, evaluate, predicted
from .optim import StepScheduler
from .run_folder import RunFolder


@dataclass
class Trainer:
    """Everything one training run needs, built once (fresh or from a run folder) by
    :func:`cnnspec.training.api.train` / ``resume``; callbacks read and steer it."""

    spec: ir.Spec
    cfg: ir.TrainConfig
    folder: RunFolder
    device: torch.device
    model: Network
    norm: Standardize
    optimizer: torch.optim.Optimizer
    scheduler: StepScheduler
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader
    classes: list[str]
    gen: torch.Generator
    """Draws the order of the training images (its state is checkpointed)."""
    mix: object | None = None
    """mixup/cutmix on float batches (soft labels), or None."""
    plan: FreezePlan | None = None
    callbacks: list[Callback] = field(default_factory=list)
    console: Console = field(default_factory=lambda: Console(stderr=True))
    metrics: list[dict] = field(default_factory=list)
    first_epoch: int = 0
    epoch: int = 0
    stop: bool = False
    """Set by a callback to end training after the current epoch."""

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    def lr(self) -> float:
        """The current learning rate of the first parameter group (the backbone's)."""
        return self.optimizer.param_groups[0]["lr"]

    def running(self) -> tuple[int, float, int]:
        """(images seen, summed loss, correct predictions) of the epoch so far (reads the
        device: call it at log intervals, not every step)."""
        return self._seen, float(self._loss_sum), int(self._correct)

    def fit(self) -> None:
        """Train from ``first_epoch`` to ``cfg.epochs`` (or until a callback sets ``stop``)."""
        try:
            for cb in self.callbacks:
                cb.on_train_start(self)
            for epoch in range(self.first_epoch, self.cfg.epochs):
                if self.stop:
                    break
                self.epoch = epoch
                self.train_epoch(epoch)
        finally:
            for cb in self.callbacks:
                cb.on_train_end(self)

    def train_epoch(self, epoch: int) -> dict:
        """One epoch of steps, then validation; returns (and appends) its metrics record."""
        lr = self.lr()
        head_lr = next((g["lr"] for g in self.optimizer.param_groups
                        if g.get("name", "").startswith("head")), None)
        for cb in self.callbacks:
            cb.on_epoch_start(self, epoch)
        if self.plan is not None:
            apply_plan(self.model, self.plan, epoch)
        self.model.train()
        if self.plan is not None and not self.spec.transfer.bn_train:
            freeze_batchnorm(self.model, self.plan, epoch)
        logits, n_classes = self.model.logits(), len(self.classes)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=self.cfg.label_smoothing)
        self.train_loader.batch_sampler.set_epoch(epoch)
        self._seen = 0
        self._loss_sum = torch.zeros((), device=self.device)
        self._correct = torch.zeros((), dtype=torch.long, device=self.device)
        t0 = time.perf_counter()
        for step, (x, y) in enumerate(self.train_loader):
            x = self.norm(x.to(self.device, non_blocking=True).float().div_(255))
            y = y.to(self.device, non_blocking=True)
            target = y
            if self.mix is not None:  # soft labels (B, classes); accuracy still counts y
                x, target = self.mix(x, y)
            out = logits(x)
            loss = loss_fn(out, target)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            loss = loss.detach()
            self._seen += len(y)
            self._loss_sum += loss * len(y)
            self._correct += (predicted(out.detach(), n_classes) == y).sum()
            for cb in self.callbacks:
                cb.on_step_end(self, step, loss)
        seconds = time.perf_counter() - t0
        seen, loss_sum, correct = self.running()
        val_loss, val_acc = evaluate(logits, self.val_loader, self.norm, self.device, n_classes)
        m = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / seen,
             "train_accuracy": correct / seen, "val_loss": val_loss, "val_accuracy": val_acc,
             "images_per_s": seen / seconds, "seconds": seconds}
        if self.spec.transfer is not None and self.spec.transfer.lr_head is not None:
            m["lr_head"] = head_lr  # lr is then the backbone's
        self.metrics.append(m)
        self.scheduler.epoch_end(m)
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, m)
        return m

    def state_dict(self) -> dict:
        """What ``last.ckpt`` holds: the epochs done, weights, optimizer, schedule and random
        states (torch's global one and the order generator's)."""
        rng = {"torch": torch.get_rng_state(), "generator": self.gen.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"epoch": self.epoch + 1,
                "model": {k: v.detach().cpu().contiguous()
                          for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``last.ckpt`` (see :meth:`state_dict`)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scheduler.refresh()
        torch.set_rng_state(state["rng"]["torch"])
        self.gen.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.first_epoch = self.epoch = state["epoch"]

