"""Optimizer, parameter groups and the learning-rate schedule, stepped per optimizer step."""

from __future__ import annotations

import torch
from torch import nn

from .. import ir
from ..transfer import NEVER, FreezePlan


def param_groups(model: nn.Module, cfg: ir.TrainConfig, plan: FreezePlan | None = None,
                 transfer: ir.Transfer | None = None) -> list[dict]:
    """The model's parameters as optimizer groups: those decayed with ``weight_decay`` and
    those exempt by ``weight_decay ... except bias, batchnorm`` (the usual practice: decaying
    biases and batch-norm scales only hurts; Goyal et al. 2017, section 5.1); with a
    transfer plan, the new head apart (``lr backbone X head Y``) and the layers frozen
    throughout left out of every group. Layers frozen only until an epoch are in from the
    start: without gradients PyTorch's optimizers neither move nor decay them."""
    groups: dict[tuple[str, bool], list] = {}
    for path, module in model.named_modules():
        is_bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
        for name, p in module.named_parameters(recurse=False):
            key = f"{path}.{name}" if path else name
            if plan is not None and plan.param_start(key) == NEVER:
                continue  # frozen throughout (bias train: but for its biases)
            exempt = ("batchnorm" in cfg.no_decay and is_bn) or ("bias" in cfg.no_decay
                                                                 and name == "bias")
            part = "head" if plan is not None and path == plan.head else "backbone"
            groups.setdefault((part, exempt), []).append(p)
    lrs = {"backbone": (transfer.lr_backbone if transfer else None) or cfg.optimizer.lr,
           "head": (transfer.lr_head if transfer else None) or cfg.optimizer.lr}
    names = {("backbone", False): "decay", ("backbone", True): "no_decay",
             ("head", False): "head", ("head", True): "head_no_decay"}
    return [{"name": names[key], "params": params, "lr": lrs[key[0]],
             "weight_decay": 0.0 if key[1] else cfg.weight_decay}
            for key, params in sorted(groups.items())]


def make_optimizer(cfg: ir.TrainConfig, groups) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` / ``Adam`` / ``AdamW`` / ``RMSprop`` over ``groups`` (see
    :func:`param_groups`, or any iterable of parameters); options not written in the spec
    take PyTorch's defaults. weight_decay is the L2 penalty (decoupled for AdamW,
    Loshchilov & Hutter, ICLR 2019)."""
    opt = cfg.optimizer
    kw: dict = {"lr": opt.lr, "weight_decay": cfg.weight_decay}
    if opt.eps is not None:
        kw["eps"] = opt.eps
    if opt.name == "sgd":
        return torch.optim.SGD(groups, momentum=opt.momentum, nesterov=opt.nesterov, **kw)
    if opt.name == "rmsprop":
        extra = {"alpha": opt.alpha} if opt.alpha is not None else {}
        return torch.optim.RMSprop(groups, momentum=opt.momentum, **extra, **kw)
    if opt.betas is not None:
        kw["betas"] = opt.betas
    cls = torch.optim.AdamW if opt.name == "adamw" else torch.optim.Adam
    return cls(groups, **kw)


class StepScheduler:
    """The learning-rate schedule, advanced after every optimizer step.

    Closed-form schedules (step, multistep, cosine, onecycle, with their warmup) run as a
    ``LambdaLR`` over the global step whose factor is :func:`cnnspec.schedule.lr_at` / lr,
    the very function the summary previews; step and multistep change only at epoch
    boundaries, cosine, onecycle and the warmup every step. ``plateau`` runs the warmup that
    way, then ``ReduceLROnPlateau`` on the monitored metric once per epoch. ``state_dict``
    holds both, for --resume.
    """

    def __init__(self, cfg: ir.TrainConfig, optimizer: torch.optim.Optimizer,
                 steps_per_epoch: int):
        from ..schedule import lr_at

        base, per = cfg.optimizer.lr, max(1, steps_per_epoch)
        self.sched, self.per, self.epoch = cfg.schedule, per, 0

        def factor(k: int) -> float:
            return lr_at(cfg.schedule, k // per, cfg.epochs, base, k % per, per) / base

        self.closed = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        self.plateau = None
        if self.sched is not None and self.sched.kind == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min" if self.sched.monitor.endswith("loss") else "max",
                factor=self.sched.factor, patience=self.sched.patience, min_lr=self.sched.min_lr)

    def _on_plateau(self) -> bool:
        return self.plateau is not None and self.epoch >= self.sched.warmup

    def step(self) -> None:
        """Called after each optimizer step; sets the rate of the next one."""
        if not self._on_plateau():
            self.closed.step()

    def epoch_end(self, metrics: dict) -> None:
        """Called at the end of each epoch with its metrics (``plateau`` acts here)."""
        self.epoch += 1
        if self._on_plateau() and self.epoch > self.sched.warmup:
            self.plateau.step(metrics[self.sched.monitor])

    def refresh(self) -> None:
        """Set the current rate from the closed form again (after a resume that changed the
        run's length, the saved rate belongs to the old schedule)."""
        if self._on_plateau():
            return  # the plateau's reductions are in the saved optimizer state
        for group, base, fn in zip(self.closed.optimizer.param_groups, self.closed.base_lrs,
                                   self.closed.lr_lambdas, strict=True):
            group["lr"] = base * fn(self.closed.last_epoch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "steps_per_epoch": self.per,
                "closed": self.closed.state_dict(),
                "plateau": self.plateau.state_dict() if self.plateau else None}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.closed.load_state_dict(state["closed"])
        self.closed.last_epoch = self.epoch * self.per  # checkpoints are at epoch ends
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])


def make_scheduler(cfg: ir.TrainConfig, optimizer, steps_per_epoch: int = 1) -> StepScheduler:
    """The schedule of ``cfg`` on ``optimizer`` (see :class:`StepScheduler`)."""
    return StepScheduler(cfg, optimizer, steps_per_epoch)
