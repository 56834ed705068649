"""The step loop: batches in, loss, backward, optimizer and schedule step, callbacks around.

Read it top to bottom: :meth:`Trainer.fit` runs the epochs, :meth:`Trainer.train_epoch` the
steps of one. Loss and accuracy are summed on the device and read only where a callback
asks (:meth:`Trainer.running`) and at the epoch's end, so a step never waits for the
device. In a torchrun group (:mod:`~cnnspec.training.distributed`) each process steps on
its share of every global batch, DistributedDataParallel averages the gradients, and the
epoch's sums are added up over the processes before they are divided.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import torch
from rich.console import Console
from torch import nn

from .. import ir
from ..builder import Network
from ..transfer import FreezePlan, apply_plan, freeze_batchnorm
from .callbacks import Callback
from .distributed import SINGLE, Group, wrap
from .inference import Standardize, evaluate_sums, predicted
from .optim import StepScheduler
from .performance import Speed, compiled, why_not
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
    group: Group = SINGLE
    val_all: torch.utils.data.DataLoader | None = None
    """In a group, every validation image (``val_loader`` holds this process's share)."""
    speed: Speed = field(default_factory=Speed)
    step_lr: float = 0.0
    """The learning rate the last step used (first parameter group); :meth:`lr` is already
    the next step's once the schedule has stepped."""
    forward: nn.Module | None = None
    """What the training step calls: the network's logits, in DistributedDataParallel in a
    group, compiled with ``compile on``; made by :meth:`prepare_forward`."""
    ema: torch.optim.swa_utils.AveragedModel | None = None
    """With ``ema D``: the moving average of the weights (made from the starting weights)."""

    def __post_init__(self):
        if self.cfg.ema is not None and self.ema is None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.cfg.ema),
                                     use_buffers=True)
            self.ema.update_parameters(self.model)  # the first call copies: w_ema(0) = w(0)

    @property
    def weights(self) -> Network:
        """The network that validation, the checkpoints and the export use: with ``ema D``
        the moving average of the weights (timm's ModelEmaV3, Keras' ``use_ema``), else
        :attr:`model` itself."""
        return self.ema.module if self.ema is not None else self.model

    def _update_ema(self) -> None:
        """After an optimizer step: w_ema = D w_ema + (1 - D) w (floating-point parameters and
        buffers; counters such as ``num_batches_tracked`` are copied, not averaged)."""
        self.ema.update_parameters(self.model)
        with torch.no_grad():
            for mine, theirs in zip(self.ema.module.buffers(), self.model.buffers(), strict=True):
                if not mine.is_floating_point():
                    mine.copy_(theirs)

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

    def prepare_forward(self) -> None:
        """(Re)make :attr:`forward` for the parameters that train now (DDP registers them
        when it wraps the module, so ``unfreeze at epoch E`` wraps it again)."""
        self._trainable = {k for k, p in self.model.named_parameters() if p.requires_grad}
        module = wrap(self.model.logits(), self.group, self.device)
        self.forward = compiled(module) if self.speed.compile in ("on", "compiled") else module

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
        self.start_epoch(epoch)
        n_classes, speed = len(self.classes), self.speed
        self._seen = 0
        self._loss_sum = torch.zeros((), device=self.device)
        self._correct = torch.zeros((), dtype=torch.long, device=self.device)
        self._skipped = torch.zeros((), dtype=torch.long, device=self.device)
        t0 = time.perf_counter()
        for step, (x, y) in enumerate(self.train_loader):
            y = y.to(self.device, non_blocking=True)
            out, loss = self.step(step, x, y)
            self._seen += len(y)
            self._loss_sum += loss * len(y)
            self._correct += (predicted(out.detach(), n_classes) == y).sum()
            for cb in self.callbacks:
                cb.on_step_end(self, step, loss)
        seconds = time.perf_counter() - t0
        sums = torch.stack([torch.tensor(float(self._seen), device=self.device),
                            self._loss_sum.double(), self._correct.double()]).double()
        seen, loss_sum, correct = self.group.all_sum(sums).tolist()
        with speed.autocast(self.device.type):
            val = evaluate_sums(self.weights.logits(), self.val_loader, self.norm, self.device,
                                n_classes, speed.to_layout)
        val_loss, val_correct, val_n = self.group.all_sum(val).tolist()
        m = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / seen,
             "train_accuracy": correct / seen, "val_loss": val_loss / max(val_n, 1),
             "val_accuracy": val_correct / max(val_n, 1), "images_per_s": seen / seconds,
             "seconds": seconds}
        if self.spec.transfer is not None and self.spec.transfer.lr_head is not None:
            m["lr_head"] = head_lr  # lr is then the backbone's
        if speed.scaler.is_enabled():  # fp16: steps skipped for inf/NaN gradients
            m["skipped_steps"] = int(self._skipped)
            speed.skipped_steps += m["skipped_steps"]
        self.metrics.append(m)
        self.scheduler.epoch_end(m)
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, m)
        return m

    def start_epoch(self, epoch: int) -> None:
        """Ready the module for ``epoch``'s steps: the freeze plan, the training forward
        (wrapped again if the trainable parameters changed), train mode, the loss."""
        if self.plan is not None:
            apply_plan(self.model, self.plan, epoch)
        trainable = {k for k, p in self.model.named_parameters() if p.requires_grad}
        if self.forward is None or trainable != self._trainable:
            self.prepare_forward()
        self.model.train()
        if self.plan is not None and not self.spec.transfer.bn_train:
            freeze_batchnorm(self.model, self.plan, epoch)
        self._loss_fn = nn.CrossEntropyLoss(label_smoothing=self.cfg.label_smoothing)
        self.train_loader.batch_sampler.set_epoch(epoch)

    def step(self, step: int, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch: uint8 images (B, C, H, W) on any device, labels (B,)
        on the training device; returns (logits (B, outputs), mean loss, detached), neither
        read back from the device."""
        speed = self.speed
        x = speed.to_layout(self.norm(x.to(self.device, non_blocking=True).float().div_(255)))
        target = y
        if self.mix is not None:  # soft labels (B, classes); accuracy still counts y
            x, target = self.mix(x, y)
        # DDP averages the processes' gradients; weighting each process's mean loss by its
        # share of the global batch makes that the global batch's mean (shares of a last,
        # smaller batch differ by one image)
        share = (len(y) * self.group.world_size
                 / self.train_loader.batch_sampler.global_size(step)
                 if self.group.distributed else 1.0)
        if speed.compile == "on":  # the first compiled step: fall back if it cannot run
            out, loss = self._first_compiled_step(x, target, share)
        else:
            out, loss = self._forward_backward(x, target, share)
        if self.cfg.clip_grad_norm is not None:
            speed.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad_norm)
        scale = speed.scaler._scale.clone() if speed.scaler.is_enabled() else None
        speed.scaler.step(self.optimizer)
        speed.scaler.update()
        if scale is not None and hasattr(self, "_skipped"):  # a lower scale: this step's
            self._skipped += (speed.scaler._scale < scale).sum()  # gradients overflowed
        if self.ema is not None:
            self._update_ema()
        self.step_lr = self.optimizer.param_groups[0]["lr"]
        with warnings.catch_warnings():  # the schedule follows the batches (as previewed),
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")  # skipped
            self.scheduler.step()  # fp16 steps included; they are counted, not hidden
        return out, loss.detach()

    def _forward_backward(self, x, target, share: float):
        """Forward (under autocast) and backward of one batch; (logits, mean loss)."""
        with self.speed.autocast(self.device.type):
            out = self.forward(x)
            loss = self._loss_fn(out.float(), target)
        self.optimizer.zero_grad(set_to_none=True)
        self.speed.scaler.scale(loss * share if share != 1.0 else loss).backward()
        return out, loss

    def _first_compiled_step(self, x, target, share: float):
        """The first step with ``compile on``, where torch.compile compiles: if it fails,
        say why in one line, undo what the attempt touched and go on in eager mode."""
        buffers = {k: b.clone() for k, b in self.model.named_buffers()}
        try:
            result = self._forward_backward(x, target, share)
            self.speed.compile = "compiled"
            return result
        except Exception as exc:  # noqa: BLE001 - any compiler failure: eager instead
            with torch.no_grad():
                for k, b in self.model.named_buffers():
                    b.copy_(buffers[k])
            self.optimizer.zero_grad(set_to_none=True)
            self.speed.compile = f"off: {why_not(exc)}"
            if self.group.main:
                self.console.print(f"compile: torch.compile cannot run here ({why_not(exc)}); "
                                   "training in eager mode", highlight=False, markup=False,
                                   soft_wrap=True)
            self.prepare_forward()
            return self._forward_backward(x, target, share)

    def state_dict(self) -> dict:
        """What ``last.ckpt`` holds: the epochs done, weights, optimizer, schedule and random
        states (torch's global one and the order generator's), the gradient scaler, the
        metrics of every epoch done and, with ``ema``, the averaged weights."""
        rng = {"torch": torch.get_rng_state(), "generator": self.gen.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"epoch": self.epoch + 1,
                "model": {k: v.detach().cpu().contiguous()
                          for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng,
                "scaler": self.speed.scaler.state_dict(),
                "metrics": [dict(m) for m in self.metrics],
                **({"ema": {k: v.detach().cpu() for k, v in self.ema.state_dict().items()}}
                   if self.ema is not None else {})}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``last.ckpt`` (see :meth:`state_dict`)."""
        self.model.load_state_dict(state["model"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scheduler.refresh()
        if state.get("scaler"):
            self.speed.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        self.gen.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.first_epoch = self.epoch = state["epoch"]

