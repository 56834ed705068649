"""The training loop: optimizer, schedule by epoch, progress bar, checkpoints, run folder.

A run folder holds, every file written atomically (temporary file, then rename):

- ``spec.cnn`` (the spec as given), ``spec.json`` (as resolved, overrides applied),
  ``run.json`` (data folder, device, overrides), ``classes.json`` (class names in order);
- after every epoch: ``last.safetensors`` (weights), ``last.ckpt`` (epoch, optimizer and
  scheduler state, random-number-generator states; loaded with ``weights_only=True``),
  ``best.safetensors`` (the best validation accuracy so far), ``metrics.json`` and
  ``metrics.csv`` (one record per epoch);
- at the end: ``weights.safetensors`` (the final weights), ``curves.png`` (loss, accuracy
  and learning rate by epoch), ``confusion.png`` (validation confusion matrix) and
  ``model.onnx`` (checked against PyTorch with ONNX Runtime, see :mod:`cnnspec.export`).

``resume(run)`` continues a run that stopped (killed or interrupted) from ``last.ckpt`` with
the same optimizer, scheduler, epoch and random state, so it ends as an uninterrupted run
with the same seed would.
"""

from __future__ import annotations

import csv
import io
import json
import math
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import save_file
from torch import nn

from . import ir
from .build import Network, build
from .data import (
    Dataset,
    augmentation,
    batch_augmentation,
    batches,
    channel_stats,
    load_data,
    split_indices,
)
from .errors import CnnSpecError, DataError
from .files import atomic_write, write_json, write_text
from .transfer import (
    NEVER,
    FreezePlan,
    apply_plan,
    freeze_batchnorm,
    freeze_plan,
    load_into,
    resolve_source,
    source_normalization,
    with_classes,
)


@dataclass
class RunResult:
    """What a training run produced: its folder, per-epoch metrics and the trained module."""

    out: Path
    metrics: list[dict]
    model: Network
    classes: list[str]
    seconds: float
    export: object | None = None
    stopped_early: bool = False
    """``early_stop`` ended the run before its last epoch."""

    @property
    def final(self) -> dict:
        return self.metrics[-1]


def next_run_dir(base: Path) -> Path:
    """``base`` if it is free, else ``base-2``, ``base-3``, ...: a new run never overwrites
    an earlier one (as Ultralytics numbers its runs)."""
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


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
            if plan is not None and plan.starts.get(path, 0) == NEVER:
                continue
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


class EpochScheduler:
    """The learning-rate schedule, stepped once per epoch with that epoch's metrics.

    Closed-form schedules (step, multistep, cosine, onecycle, with their warmup) run as a
    ``LambdaLR`` whose factor is :meth:`cnnspec.ir.TrainConfig.lr_at` / lr, the very function
    the summary previews. ``plateau`` runs the warmup that way, then
    ``ReduceLROnPlateau`` on the monitored metric. ``state_dict`` holds both, for --resume.
    """

    def __init__(self, cfg: ir.TrainConfig, optimizer: torch.optim.Optimizer):
        base = cfg.optimizer.lr
        self.sched = cfg.schedule
        self.epoch = 0
        self.closed = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                        lambda e: cfg.lr_at(e) / base)
        self.plateau = None
        if self.sched is not None and self.sched.kind == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min" if self.sched.monitor.endswith("loss") else "max",
                factor=self.sched.factor, patience=self.sched.patience, min_lr=self.sched.min_lr)

    def step(self, metrics: dict) -> None:
        """Called at the end of each epoch; sets the rate of the next one."""
        self.epoch += 1
        if self.plateau is not None and self.epoch > self.sched.warmup:
            self.plateau.step(metrics[self.sched.monitor])
        else:
            self.closed.step()

    def refresh(self) -> None:
        """Set the rate of the current epoch from the closed form again (after a resume that
        changed the run's length, the saved rate belongs to the old schedule)."""
        if self.plateau is not None and self.epoch > self.sched.warmup:
            return  # the plateau's reductions are in the saved optimizer state
        for group, base, fn in zip(self.closed.optimizer.param_groups, self.closed.base_lrs,
                                   self.closed.lr_lambdas, strict=True):
            group["lr"] = base * fn(self.closed.last_epoch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "closed": self.closed.state_dict(),
                "plateau": self.plateau.state_dict() if self.plateau else None}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.closed.load_state_dict(state["closed"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])


def make_scheduler(cfg: ir.TrainConfig, optimizer) -> EpochScheduler:
    """The schedule of ``cfg`` on ``optimizer`` (see :class:`EpochScheduler`)."""
    return EpochScheduler(cfg, optimizer)


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
    without improving on its best by more than ``min_delta``. Computed from the metrics
    history alone, so a resumed run stops where an uninterrupted one would.

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


# --epochs, --lr, ... : the train field each command-line override sets.
OVERRIDES: dict[str, tuple[str, ...]] = {
    "epochs": ("epochs",), "batch": ("batch",), "lr": ("optimizer", "lr"),
    "momentum": ("optimizer", "momentum"), "optimizer": ("optimizer", "name"),
    "weight_decay": ("weight_decay",), "label_smoothing": ("label_smoothing",),
    "clip_grad_norm": ("clip_grad_norm",), "seed": ("seed",), "split": ("split",),
    "data": ("data",),
}


def apply_overrides(cfg: ir.TrainConfig, overrides: dict) -> ir.TrainConfig:
    """``cfg`` with command-line values set (keys of :data:`OVERRIDES`). A new optimizer keeps
    only the learning rate of the old one (momentum is not a setting of adam).

    Raises:
        CnnSpecError: an unknown key, or a value the train section would not accept.
    """
    data = cfg.model_dump()
    for key, value in overrides.items():
        if key not in OVERRIDES:
            raise CnnSpecError(f"--{key.replace('_', '-')}: not a train setting that can be "
                               f"overridden; use one of {', '.join(OVERRIDES)}")
        if key == "optimizer" and value != data["optimizer"]["name"]:
            data["optimizer"] = {"lr": data["optimizer"]["lr"]}
        *path, last = OVERRIDES[key]
        target = data
        for part in path:
            target = target[part]
        target[last] = value
    opt = data["optimizer"]
    name = opt.get("name", "adam")
    if "momentum" in overrides and name not in ("sgd", "rmsprop"):
        raise CnnSpecError(f"--momentum: optimizer {name} has no momentum; use --optimizer sgd "
                           "or rmsprop")
    if opt.get("nesterov") and not opt.get("momentum"):
        raise CnnSpecError("--momentum: this spec's optimizer is nesterov, which needs a "
                           "momentum above 0")
    try:
        return ir.TrainConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = next((k for k, path in OVERRIDES.items() if path == tuple(err["loc"])), None)
        where = f"--{key.replace('_', '-')}" if key else "command-line override"
        got = f" (got {err['input']})" if err["loc"] else ""
        raise CnnSpecError(f"{where}: {err['msg'].removeprefix('Value error, ')}{got}") from None


def pick_device(device: str | None) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` (default: cuda where available).

    Raises:
        CnnSpecError: the device is unknown or not present on this machine.
    """
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise CnnSpecError(f"unknown device '{device}'; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CnnSpecError(f"device '{device}': no CUDA GPU is available here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CnnSpecError(f"device '{device}': this machine has {torch.cuda.device_count()} "
                               "GPU(s), numbered from 0")
    elif dev.type != "cpu":
        raise CnnSpecError(f"device '{device}' cannot train; use cpu, cuda or cuda:N")
    return dev


class Standardize(nn.Module):
    """(N, C, H, W) float pixels in [0, 1] -> ``(x - mean) / std`` per channel.

    Put in front of the network in the exported ``model.onnx``, so the ONNX model takes
    plain pixels in [0, 1] and the statistics of the training set travel with it."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def to_unit(x: torch.Tensor, device) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1] on ``device``."""
    return x.to(device).float().div_(255)


def evaluate(model: nn.Module, data: Dataset, norm: Standardize, device, batch_size: int = 256
             ) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy in [0, 1]) of ``model`` on ``data``."""
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for x, y in batches(data, batch_size, shuffle=False):
            x, y = norm(to_unit(x, device)), y.to(device)
            out = model(x)
            loss_sum += nn.functional.cross_entropy(out, y, reduction="sum").item()
            correct += (predicted(out, len(data.classes)) == y).sum().item()
    return loss_sum / max(len(data), 1), correct / max(len(data), 1)


def predicted(logits: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The predicted class of each row of (N, outputs) logits, among the data's ``n_classes``
    (a head may have more outputs than the data has classes; the extra ones never win)."""
    return logits[:, :n_classes].argmax(1)


class TrainingError(CnnSpecError):
    """Training cannot go on (a NaN or infinite loss); the last good checkpoint is kept."""


def _rng_state(gen: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "generator": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_weights(path: Path, model: nn.Module, network: str) -> None:
    """The module's state_dict as safetensors (no pickle), written atomically."""
    weights = _weights(model)
    atomic_write(path, lambda tmp: save_file(weights, tmp, metadata={"network": network}))


@dataclass
class _Session:
    """Everything one training run needs, built once (fresh or from a run folder)."""

    spec: ir.Spec
    cfg: ir.TrainConfig
    out: Path
    device: torch.device
    dataset: Dataset
    train_set: Dataset
    val_set: Dataset
    norm: Standardize
    model: Network
    optimizer: torch.optim.Optimizer
    scheduler: object
    gen: torch.Generator
    data_path: Path | None
    metrics: list[dict]
    plan: FreezePlan | None = None
    transfer: dict | None = None
    """What was loaded from where (run.json's "transfer")."""
    norm_source: str = ""
    """Where the normalisation statistics come from (run.json's normalize.source)."""
    start_epoch: int = 0


def normalization(norm: ir.Normalize, images: torch.Tensor) -> tuple[list[float], list[float]]:
    """(mean, std) per channel in [0, 1] units: as written, ImageNet's, or computed from the
    training images (uint8 (N, C, H, W)) when the spec gives none."""
    if norm.preset == "imagenet":
        return list(ir.IMAGENET_MEAN), list(ir.IMAGENET_STD)
    if norm.mean is not None:
        return list(norm.mean), list(norm.std)
    return channel_stats(images)


def _session(spec: ir.Spec, cfg: ir.TrainConfig, out: Path, data_path, device,
             resuming: dict | None = None) -> _Session:
    """Data, split, normalisation, module (with transferred weights), optimizer, schedule.
    ``resuming``: the run's own run.json, whose normalisation is reused as recorded."""
    torch.manual_seed(cfg.seed)
    dataset = load_data(data_path, spec.input)
    t = spec.transfer
    if t is not None and t.classes == "data":
        spec = with_classes(spec, len(dataset.classes))
    n_out = spec.shaped.output_shape
    if len(n_out) != 1 or n_out[0] < len(dataset.classes):
        shown = n_out[0] if len(n_out) == 1 else "x".join(map(str, n_out))
        raise DataError(f"{spec.name} ends in {shown} outputs but the data has "
                        f"{len(dataset.classes)} classes; the last layer must be dense N, N >= classes"
                        + ("" if t is None else "; in transfer:, write classes from data"))
    train_idx, val_idx = split_indices(dataset, cfg.split, cfg.seed)
    train_set, val_set = dataset.subset(train_idx), dataset.subset(val_idx)
    if len(val_set) == 0 or len(train_set) == 0:
        raise DataError(f"{dataset.source}: {len(dataset)} images cannot be split {cfg.split:g} / "
                        f"{1 - cfg.split:.2g} into training and validation; each class needs at "
                        "least 2 images (more, for a meaningful validation accuracy)")
    mean, std = normalization(cfg.normalize, train_set.images)
    norm_source = ("imagenet" if cfg.normalize.preset == "imagenet" else "spec"
                   if cfg.normalize.mean else "computed on the training images")
    if t is not None and not cfg.normalize.preset and cfg.normalize.mean is None:
        inherited = source_normalization(resolve_source(t.source, spec.file))
        if inherited is not None and len(inherited[0]) == len(mean):
            # the transferred layers learnt on inputs standardised this way: keep it
            (mean, std), norm_source = inherited, "the transferred run"
    if resuming is not None:
        norm = resuming["normalize"]
        mean, std, norm_source = norm["mean"], norm["std"], norm.get("source", "")
    model = build(spec.shaped, seed=cfg.seed)
    plan, info = None, None
    if t is not None:
        plan = freeze_plan(spec)
        if not resuming:  # a resumed run's checkpoint holds every weight
            m, where = load_into(model, spec, resolve_source(t.source, spec.file), plan.head)
            info = {"source": where, "matched": m.method, "loaded": len(m.loaded),
                    "replaced": [{"tensor": k, "shape": list(a), "file_shape": list(b or [])}
                                 for k, a, b in m.replaced], "unused": m.unused,
                    "frozen": [p for p, e in plan.starts.items() if e == NEVER],
                    "unfreeze": {p: int(e) for p, e in plan.starts.items() if 0 < e < NEVER},
                    "bn_train": t.bn_train}
    model = model.to(device)
    optimizer = make_optimizer(cfg, param_groups(model, cfg, plan, t))
    return _Session(spec, cfg, out, device, dataset, train_set, val_set,
                    Standardize(mean, std).to(device), model, optimizer,
                    make_scheduler(cfg, optimizer), torch.Generator().manual_seed(cfg.seed),
                    Path(data_path).resolve() if data_path is not None else None, [], plan, info,
                    norm_source)


def data_path_of(spec: ir.Spec, data: str | Path | None) -> str | Path | None:
    """The data a run uses: ``data`` (the command line's, relative to the working folder),
    else the spec's ``train: data`` (relative to the spec file), else None (embedded digits)."""
    if data is not None:
        return data
    if spec.train.data is not None and spec.file != "<string>":
        return Path(spec.file).parent / spec.train.data
    return spec.train.data


def train(spec: ir.Spec, *, data: str | Path | None = None, out: str | Path | None = None,
          epochs: int | None = None, overrides: dict | None = None, device: str | None = None,
          export: bool = True, console: Console | None = None) -> RunResult:
    """Train ``spec`` on ``data`` (an image folder; default: the spec's ``train: data``,
    relative to the spec file, or the embedded digits) and write a run folder at ``out``
    (default ``runs/<network name>``, numbered ``-2``, ``-3``, ... when taken).

    ``epochs`` and ``overrides`` (``{"lr": 0.01, "batch": 32}``, keys of :data:`OVERRIDES`)
    replace the spec's train settings; they are recorded in ``run.json`` and the resolved
    settings in ``spec.json``.

    Raises:
        DataError: the data folder is unusable (see :func:`cnnspec.data.image_folder`).
        TrainingError: the loss became NaN or infinite (the last good checkpoint is kept).
        ExportError: the ONNX export disagrees with PyTorch.
    """
    console = console or Console(stderr=True)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "lr" in overrides and spec.transfer is not None and spec.transfer.lr_backbone is not None:
        raise CnnSpecError(f"--lr: this spec's transfer: section sets the rates (lr backbone "
                           f"{spec.transfer.lr_backbone:g} head {spec.transfer.lr_head:g}); "
                           "change them there")
    if epochs is not None:
        overrides["epochs"] = epochs
    if data is not None:
        overrides["data"] = str(data)
    cfg = apply_overrides(spec.train, overrides) if overrides else spec.train
    data_path = data_path_of(spec, data)
    out = Path(out) if out is not None else next_run_dir(Path("runs") / spec.name)
    if (out / "last.ckpt").exists() or (out / "weights.safetensors").exists():
        raise CnnSpecError(f"{out} already holds a run; choose another --out, or continue it "
                           f"with --resume {out}")
    # a folder with only the files a run writes at its start (spec.json, run.json, ...) is a
    # run killed before its first epoch ended: nothing to resume, so it is started over
    if out.exists() and not out.is_dir():
        raise CnnSpecError(f"{out}: is a file; --out must be a folder")
    s = _session(spec, cfg, out, data_path, pick_device(device))
    existed = out.exists()
    _write_start(s, overrides)
    try:
        return _run(s, console, export)
    except BaseException:  # interrupted or failed before the first checkpoint: leave no
        if not (out / "last.ckpt").exists():  # folder that --resume cannot continue
            for name in ("spec.cnn", "spec.json", "classes.json", "run.json"):
                (out / name).unlink(missing_ok=True)
            if not existed and out.is_dir() and not any(out.iterdir()):
                out.rmdir()
        raise


def resume(run: str | Path, *, epochs: int | None = None, device: str | None = None,
           export: bool = True, console: Console | None = None) -> RunResult:
    """Continue the run in folder ``run`` from its last completed epoch, up to its own
    ``epochs`` or, given ``epochs``, up to that many (a finished run then trains on; the
    schedule is worked out for the new length, as a run of that length would have it, and
    spec.json / run.json record the new count).

    Raises:
        CnnSpecError: ``run`` is not a run folder, its checkpoint is unreadable, or
            ``epochs`` is not more than the epochs it has done.
    """
    from .loader import loads

    console = console or Console(stderr=True)
    run = Path(run)
    try:
        resolved = json.loads((run / "spec.json").read_text())
        info = json.loads((run / "run.json").read_text())
        spec = loads((run / "spec.cnn").read_text(), str(run / "spec.cnn"))
        # our own file, read with PyTorch's restricted loader: tensors and plain data only
        ckpt = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
        cfg = ir.TrainConfig.model_validate(resolved["train"])
        if epochs is not None:
            if epochs <= ckpt["epoch"]:
                raise CnnSpecError(f"{run}: --epochs {epochs} is not more than the "
                                   f"{ckpt['epoch']} epochs it has done")
            cfg = apply_overrides(cfg, {"epochs": epochs})
        metrics = json.loads((run / "metrics.json").read_text())["epochs"][: ckpt["epoch"]]
        classes = json.loads((run / "classes.json").read_text())
        s = _session(spec, cfg, run, info["data"], pick_device(device or _usable(info["device"])),
                     resuming=info)
        if s.dataset.classes != classes:  # the labels would silently mean other classes
            raise CnnSpecError(f"{run}: the data's classes changed since the run started "
                               f"({', '.join(classes)} -> {', '.join(s.dataset.classes)}); "
                               "restore the folder, or start a new run")
        s.model.load_state_dict(ckpt["model"])
        s.optimizer.load_state_dict(ckpt["optimizer"])
        s.scheduler.load_state_dict(ckpt["scheduler"])
        s.scheduler.refresh()
        _set_rng_state(ckpt["rng"], s.gen)
    except FileNotFoundError as exc:
        started = (run / "spec.json").exists()
        raise CnnSpecError(f"{run}: not a run folder with a checkpoint ({exc.filename} is "
                           "missing); a run writes one after its first epoch" + (
                               f"; this one stopped before, start it again with compile SPEC "
                               f"--train --out {run}" if started else "")) from None
    except CnnSpecError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError,
            pickle.UnpicklingError) as exc:  # a damaged or foreign file
        raise CnnSpecError(f"{run}: cannot resume from this run folder: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    s.metrics, s.start_epoch = metrics, ckpt["epoch"]
    if epochs is not None:
        resolved["train"] = cfg.model_dump(mode="json")
        write_json(run / "spec.json", resolved)
        info["overrides"] = {**info.get("overrides", {}), "epochs": epochs}
        write_json(run / "run.json", info)
    if early_stop_due(metrics, cfg.early_stop):
        console.print(f"{run} stopped early after {s.start_epoch} epochs (early_stop); writing "
                      "its final files again", highlight=False)
    elif s.start_epoch >= cfg.epochs:
        console.print(f"{run} had already finished ({s.start_epoch} epochs); writing its final "
                      "files again. To train on, give --epochs with a larger number.",
                      highlight=False)
    else:
        console.print(f"resuming {run} after epoch {s.start_epoch} of {cfg.epochs}")
    return _run(s, console, export)


def _usable(device: str | None) -> str | None:
    """The run's device, unless it was a GPU this machine does not have."""
    return None if device and device.startswith("cuda") and not torch.cuda.is_available() else device


def _write_start(s: _Session, overrides: dict) -> None:
    s.out.mkdir(parents=True, exist_ok=True)
    write_text(s.out / "spec.cnn", s.spec.source)
    resolved = s.spec.model_dump(mode="json")
    resolved["train"] = s.cfg.model_dump(mode="json")
    write_json(s.out / "spec.json", resolved)
    write_json(s.out / "classes.json", s.dataset.classes)
    write_json(s.out / "run.json", {
        "network": s.spec.name, "spec_file": s.spec.file,
        "data": str(s.data_path) if s.data_path else None, "data_source": s.dataset.source,
        "device": str(s.device), "overrides": overrides,
        "normalize": {"mean": s.norm.mean.flatten().tolist(), "std": s.norm.std.flatten().tolist(),
                      "input": "float32 (N, C, H, W) pixels in [0, 1]",
                      "source": s.norm_source},
        "skipped": [{"path": p, "reason": r} for p, r in s.dataset.skipped],
        "transfer": s.transfer,
        "train_images": len(s.train_set), "val_images": len(s.val_set)})


def _checkpoint(s: _Session, epoch: int) -> None:
    """After each epoch: weights, optimizer/scheduler/RNG state and metrics, atomically.

    ``last.ckpt`` holds everything resume needs (model weights included) in one file renamed
    into place in one step, so an interruption leaves either the old or the new checkpoint,
    never weights of one epoch with optimizer state of another."""
    state = {"epoch": epoch, "model": _weights(s.model), "optimizer": s.optimizer.state_dict(),
             "scheduler": s.scheduler.state_dict(), "rng": _rng_state(s.gen)}
    atomic_write(s.out / "last.ckpt", lambda tmp: torch.save(state, tmp))
    save_weights(s.out / "last.safetensors", s.model, s.spec.name)
    keep = s.cfg.checkpoint
    if keep.best is not None:
        best = None
        for m in s.metrics[:-1]:
            best = m[keep.best] if improved(m[keep.best], best, keep.best) else best
        if improved(s.metrics[-1][keep.best], best, keep.best):
            save_weights(s.out / "best.safetensors", s.model, s.spec.name)
    if keep.every is not None and epoch % keep.every == 0:
        save_weights(s.out / f"epoch-{epoch:03d}.safetensors", s.model, s.spec.name)
    write_json(s.out / "metrics.json", {"network": s.spec.name, "epochs": s.metrics})
    write_metrics_csv(s.out / "metrics.csv", s.metrics)


def write_metrics_csv(path: Path, metrics: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(metrics[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(metrics)
    write_text(path, buf.getvalue())


def _run(s: _Session, console: Console, export: bool) -> RunResult:
    cfg = s.cfg
    for path, reason in s.dataset.skipped:
        console.print(f"[yellow]skipped unreadable image[/] {path}: {reason}", highlight=False)
    console.print(f"training [bold]{s.spec.name}[/] on {s.dataset.source}: {len(s.train_set)} "
                  f"train / {len(s.val_set)} val images, {len(s.dataset.classes)} classes, "
                  f"{cfg.epochs} epochs, device {s.device}; run folder {s.out}", highlight=False)
    if s.plan is not None:
        for line in transfer_lines(s.plan, s.transfer):
            console.print(line, highlight=False)
    transform = augmentation(cfg.augment, s.spec.input)
    mix = batch_augmentation(cfg.augment, s.spec.shaped.output_shape[0])
    logits = s.model.logits()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    steps_per_epoch = -(-len(s.train_set) // cfg.batch)
    start = time.perf_counter()
    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[phase]} loss {task.fields[loss]:.4f} acc "
                             "{task.fields[acc]:.2%} lr {task.fields[lr]:.2g} "
                             "{task.fields[ips]:,.0f} img/s"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        for epoch in range(s.start_epoch, cfg.epochs):
            if early_stop_due(s.metrics, cfg.early_stop):
                break  # a resumed run that had already stopped early
            lr = s.optimizer.param_groups[0]["lr"]
            head_lr = next((g["lr"] for g in s.optimizer.param_groups
                            if g.get("name", "").startswith("head")), None)
            task = progress.add_task("", total=steps_per_epoch, epoch=f"{epoch + 1}/{cfg.epochs}",
                                     loss=0.0, acc=0.0, lr=lr, ips=0.0, phase="train")
            if s.plan is not None:
                apply_plan(s.model, s.plan, epoch)
            s.model.train()
            if s.plan is not None and not s.spec.transfer.bn_train:
                freeze_batchnorm(s.model, s.plan, epoch)
            t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
            for step, (x, y) in enumerate(batches(s.train_set, cfg.batch, shuffle=True,
                                                  generator=s.gen, transform=transform)):
                x, y = s.norm(to_unit(x, s.device)), y.to(s.device)
                target = y
                if mix is not None:  # soft labels (B, classes); accuracy still counts y
                    x, target = mix(x, y)
                out_ = logits(x)
                loss = loss_fn(out_, target)
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                        f"training stopped. {_kept(s, epoch)} Lower the learning rate or add "
                        "batchnorm.")
                s.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_(s.model.parameters(), cfg.clip_grad_norm)
                s.optimizer.step()
                seen += len(y)
                loss_sum += loss.item() * len(y)
                correct += (predicted(out_, len(s.dataset.classes)) == y).sum().item()
                progress.update(task, advance=1, loss=loss_sum / seen, acc=correct / seen,
                                ips=seen / (time.perf_counter() - t0))
            seconds = time.perf_counter() - t0
            val_loss, val_acc = evaluate(logits, s.val_set, s.norm, s.device)
            if not math.isfinite(val_loss):  # the last step's update diverged
                raise TrainingError(f"the validation loss became {val_loss} after epoch "
                                    f"{epoch + 1}: the weights diverged; training stopped. "
                                    f"{_kept(s, epoch)} Lower the learning rate or the weight "
                                    "decay.")
            s.metrics.append({"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / seen,
                              "train_accuracy": correct / seen, "val_loss": val_loss,
                              "val_accuracy": val_acc, "images_per_s": seen / seconds,
                              "seconds": seconds})
            if s.spec.transfer is not None and s.spec.transfer.lr_head is not None:
                s.metrics[-1]["lr_head"] = head_lr  # lr is then the backbone's
            progress.update(task, loss=val_loss, acc=val_acc, phase="val")
            progress.console.print(f"  epoch {epoch + 1}: train loss {loss_sum / seen:.4f} acc "
                                   f"{correct / seen:.2%} | val loss {val_loss:.4f} acc "
                                   f"{val_acc:.2%}", highlight=False)
            s.scheduler.step(s.metrics[-1])
            _checkpoint(s, epoch + 1)
            if early_stop_due(s.metrics, cfg.early_stop):
                rule = cfg.early_stop
                progress.console.print(
                    f"early stop after epoch {epoch + 1}: {rule.monitor} has not improved"
                    + (f" by more than {rule.min_delta:g}" if rule.min_delta else "")
                    + f" for {rule.patience} epochs", highlight=False)
                break
    elapsed = time.perf_counter() - start
    return _finish(s, elapsed, export)


def _kept(s: _Session, epoch: int) -> str:
    """What a run stopped in 0-based ``epoch`` keeps (see :func:`train` for the clean-up)."""
    if epoch:  # at least one epoch completed: it wrote last.ckpt
        return f"The last good checkpoint ({s.out / 'last.safetensors'}, epoch {epoch}) is kept."
    return "No epoch had completed, so there is no checkpoint and the run folder is removed."


def transfer_lines(plan: FreezePlan, info: dict | None) -> list[str]:
    """The freeze preview printed before training: what was loaded, what trains when."""
    lines = []
    if info is not None:
        lines.append(f"transfer: {info['loaded']} tensors loaded from {info['source']} "
                     f"(matched {info['matched']})" + (f"; {len(info['unused'])} in the file "
                                                       "unused" if info["unused"] else ""))
    if plan.head is not None and info is not None:  # (a resumed run restores its head)
        lines.append(f"  new head {plan.head}: freshly initialised")
    groups: dict[str, list[str]] = {}
    for path, start in plan.starts.items():
        key = ("frozen" if start == NEVER else "trainable" if start == 0
               else f"frozen until epoch {int(start)}")
        groups.setdefault(key, []).append(path)
    for key in ("frozen", *sorted(k for k in groups if k.startswith("frozen until")), "trainable"):
        if key in groups:
            lines.append(f"  {key}: {', '.join(groups[key])}")
    return lines


def _finish(s: _Session, elapsed: float, export: bool) -> RunResult:
    from .report.metrics import confusion_matrix
    from .report.plots import plot_confusion, plot_curves

    s.model.eval()
    save_weights(s.out / "weights.safetensors", s.model, s.spec.name)
    preds = predict_labels(s.model.logits(), s.val_set, s.norm, s.device)
    matrix = confusion_matrix(s.val_set.labels, preds, len(s.dataset.classes))
    plot_curves(s.metrics, s.out / "curves.png", s.spec.name)
    plot_confusion(matrix, s.dataset.classes, s.out / "confusion.png", s.spec.name)
    result = RunResult(s.out, s.metrics, s.model, s.dataset.classes, elapsed,
                       stopped_early=len(s.metrics) < s.cfg.epochs
                       and early_stop_due(s.metrics, s.cfg.early_stop))
    write_json(s.out / "metrics.json", {"network": s.spec.name, "epochs": s.metrics,
                                        "stopped_early": result.stopped_early})
    if export:
        from .export import export_onnx

        x, _ = next(batches(s.val_set, 16, shuffle=False))
        result.export = export_onnx(nn.Sequential(s.norm, s.model).to(s.device).eval(), s.spec,
                                    s.out / "model.onnx", example=to_unit(x, s.device))
    return result


def predict_labels(model: nn.Module, data: Dataset, norm: Standardize, device,
                   batch_size: int = 256, n_classes: int | None = None) -> torch.Tensor:
    """Predicted class index of every image of ``data`` (N,), on the CPU, among the first
    ``n_classes`` outputs (default: the data's classes)."""
    n_classes = n_classes or len(data.classes)
    model.eval()
    preds = []
    with torch.no_grad():
        for x, _ in batches(data, batch_size, shuffle=False):
            preds.append(predicted(model(norm(to_unit(x, device))), n_classes).cpu())
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)
