"""The training loop: optimizer, step schedule by epoch, progress bar, run folder.

A run folder holds ``weights.safetensors`` (written atomically), ``spec.cnn`` (the
spec as given), ``spec.json`` (as resolved, with command-line overrides applied),
``classes.json``, ``metrics.json`` (one record per epoch) and ``model.onnx``
(exported and checked against PyTorch with ONNX Runtime, see :mod:`cnnspec.export`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import save_file
from torch import nn

from . import ir
from .build import Network, build
from .data import Dataset, augmentation, batches, channel_stats, load_data, stratified_split
from .files import atomic_write, write_json, write_text


@dataclass
class RunResult:
    """What a training run produced: its folder, per-epoch metrics and the trained module."""

    out: Path
    metrics: list[dict]
    model: Network
    classes: list[str]
    seconds: float
    export: object | None = None

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


def make_optimizer(cfg: ir.TrainConfig, params) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` (with momentum) or ``torch.optim.Adam``; weight_decay is L2."""
    opt = cfg.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=opt.lr, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: ir.TrainConfig, optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """Step schedule by epoch thresholds (``20: 0.01`` = from epoch 20 on, lr 0.01), as a
    ``LambdaLR`` stepped once per epoch."""
    base = cfg.optimizer.lr
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: cfg.lr_at(epoch) / base)


def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
            correct += (out.argmax(1) == y).sum().item()
    return loss_sum / max(len(data), 1), correct / max(len(data), 1)


def train(spec: ir.Spec, *, data: str | Path | None = None, out: str | Path | None = None,
          epochs: int | None = None, device: str | None = None, export: bool = True,
          console: Console | None = None) -> RunResult:
    """Train ``spec`` on ``data`` (an image folder; default: the spec's ``train: data``, relative
    to the spec file, or the embedded digits) and write a run folder at ``out`` (default ``runs/<network name>``,
    numbered ``-2``, ``-3``, ... when that folder already holds a run).

    ``epochs`` overrides the spec's ``train: epochs`` and is recorded in ``spec.json``.

    Raises:
        DataError: the data folder is unusable (see :func:`cnnspec.data.image_folder`).
        ExportError: the ONNX export disagrees with PyTorch.
    """
    console = console or Console(stderr=True)
    cfg = spec.train
    if epochs is not None:
        cfg = cfg.model_copy(update={"epochs": epochs})
    data_path = data if data is not None else cfg.data
    if data is None and cfg.data is not None and spec.file != "<string>":
        data_path = Path(spec.file).parent / cfg.data  # a spec's data path is relative to the spec
    out = Path(out) if out is not None else next_run_dir(Path("runs") / spec.name)
    device = pick_device(device)
    torch.manual_seed(cfg.seed)

    dataset = load_data(data_path, spec.input)
    for path, reason in dataset.skipped:
        console.print(f"[yellow]skipped unreadable image[/] {path}: {reason}")
    n_out = spec.shaped.output_shape
    if len(n_out) != 1 or n_out[0] < len(dataset.classes):
        from .errors import DataError

        raise DataError(f"{spec.name} ends in {n_out} outputs but the data has "
                        f"{len(dataset.classes)} classes; the last layer must be dense N, N >= classes")
    train_idx, val_idx = stratified_split(dataset.labels, cfg.split, cfg.seed)
    train_set, val_set = dataset.subset(train_idx), dataset.subset(val_idx)
    mean, std = channel_stats(train_set.images)
    norm = Standardize(mean, std).to(device)
    transform = augmentation(cfg.augment, spec.input)

    model = build(spec.shaped, seed=cfg.seed).to(device)
    logits = model.logits()
    optimizer = make_optimizer(cfg, model.parameters())
    scheduler = make_scheduler(cfg, optimizer)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(cfg.seed)
    console.print(f"training [bold]{spec.name}[/] on {dataset.source}: {len(train_set)} train / "
                  f"{len(val_set)} val images, {len(dataset.classes)} classes, {cfg.epochs} epochs, "
                  f"device {device}")

    metrics: list[dict] = []
    steps_per_epoch = -(-len(train_set) // cfg.batch)
    start = time.perf_counter()
    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]:.4f} acc {task.fields[acc]:.2%} "
                             "lr {task.fields[lr]:.2g} {task.fields[ips]:,.0f} img/s"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        for epoch in range(cfg.epochs):
            lr = optimizer.param_groups[0]["lr"]
            task = progress.add_task("", total=steps_per_epoch, epoch=f"{epoch + 1}/{cfg.epochs}",
                                     loss=0.0, acc=0.0, lr=lr, ips=0.0)
            model.train()
            t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
            for x, y in batches(train_set, cfg.batch, shuffle=True, generator=gen, transform=transform):
                x, y = norm(to_unit(x, device)), y.to(device)
                out_ = logits(x)
                loss = loss_fn(out_, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                seen += len(y)
                loss_sum += loss.item() * len(y)
                correct += (out_.argmax(1) == y).sum().item()
                progress.update(task, advance=1, loss=loss_sum / seen, acc=correct / seen,
                                ips=seen / (time.perf_counter() - t0))
            seconds = time.perf_counter() - t0
            val_loss, val_acc = evaluate(logits, val_set, norm, device)
            record = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / seen,
                      "train_accuracy": correct / seen, "val_loss": val_loss, "val_accuracy": val_acc,
                      "images_per_s": seen / seconds, "seconds": seconds}
            metrics.append(record)
            progress.update(task, loss=val_loss, acc=val_acc)
            progress.console.print(f"  epoch {epoch + 1}: train loss {record['train_loss']:.4f} "
                                   f"acc {record['train_accuracy']:.2%} | val loss {val_loss:.4f} "
                                   f"acc {val_acc:.2%}", highlight=False)
            scheduler.step()
    elapsed = time.perf_counter() - start

    model.eval()
    _write_run(out, spec, cfg, model, dataset.classes, metrics, mean, std, data_path, dataset)
    result = RunResult(out, metrics, model, dataset.classes, elapsed)
    if export:
        from .export import export_onnx

        x, _ = next(batches(val_set, 16, shuffle=False))
        result.export = export_onnx(nn.Sequential(norm, model).to(device).eval(), spec,
                                    out / "model.onnx", example=to_unit(x, device))
    return result


def _write_run(out: Path, spec: ir.Spec, cfg: ir.TrainConfig, model: Network, classes, metrics,
               mean, std, data_path, dataset: Dataset) -> None:
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / "weights.safetensors",
                 lambda tmp: save_file(weights, tmp, metadata={"network": spec.name}))
    write_text(out / "spec.cnn", spec.source)
    resolved = spec.model_dump(mode="json")
    resolved["train"] = cfg.model_dump(mode="json")
    write_json(out / "spec.json", resolved)
    write_json(out / "classes.json", classes)
    write_json(out / "metrics.json", {
        "network": spec.name, "data": str(data_path) if data_path else "embedded-digits",
        "normalize": {"mean": mean, "std": std, "input": "float32 (N, C, H, W) pixels in [0, 1]"},
        "skipped": [{"path": p, "reason": r} for p, r in dataset.skipped],
        "epochs": metrics,
    })
