"""``train`` and ``resume``: set a run up (data, split, normalisation, module, optimizer,
loaders, threads), hand it to the :class:`~cnnspec.training.loop.Trainer`, write the results."""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from .. import ir
from ..build import Network, build
from ..errors import CnnSpecError, DataError
from .callbacks import Callback, Checkpoint, EarlyStopping, NaNGuard, ProgressLog, early_stop_due
from .inference import Standardize, predict_labels, to_unit
from .loop import Trainer
from .optim import make_optimizer, make_scheduler, param_groups
from .run_folder import RunFolder
from .settings import apply_overrides, choose_threads, data_path_of, pick_device


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


def _normalization(cfg: ir.TrainConfig, spec: ir.Spec, images, train_idx
                   ) -> tuple[list[float], list[float], str]:
    """(mean, std, source): as written, ImageNet's, the transferred run's, or computed from
    the training images in one streaming pass."""
    from ..data import channel_stats
    from ..transfer import resolve_source, source_normalization

    if cfg.normalize.preset == "imagenet":
        return list(ir.IMAGENET_MEAN), list(ir.IMAGENET_STD), "imagenet"
    if cfg.normalize.mean is not None:
        return list(cfg.normalize.mean), list(cfg.normalize.std), "spec"
    t = spec.transfer
    if t is not None:
        inherited = source_normalization(resolve_source(t.source, spec.file))
        if inherited is not None and len(inherited[0]) == spec.input.channels:
            # the transferred layers learnt on inputs standardised this way: keep it
            return inherited[0], inherited[1], "the transferred run"
    mean, std = channel_stats(images, train_idx)
    return mean, std, "computed on the training images"


def _setup(spec: ir.Spec, cfg: ir.TrainConfig, folder: RunFolder, data_path, device,
           console: Console, callbacks: list[Callback], resuming: dict | None = None):
    """The Trainer of a run, and what run.json records about its set-up. ``resuming``: the
    run's own run.json, whose normalisation is reused as recorded."""
    from ..data import (
        ImageSet,
        augmentation,
        batch_augmentation,
        default_workers,
        load_data,
        split_indices,
    )
    from ..data import loader as make_loader
    from ..transfer import NEVER, freeze_plan, load_into, resolve_source, with_classes

    torch.manual_seed(cfg.seed)
    transform = augmentation(cfg.augment, spec.input)
    workers = cfg.workers if cfg.workers is not None else default_workers(transform is not None)
    images = load_data(data_path, spec.input, workers=None if cfg.workers is None else workers)
    t = spec.transfer
    if t is not None and t.classes == "data":
        spec = with_classes(spec, len(images.classes))
    n_out = spec.shaped.output_shape
    if len(n_out) != 1 or n_out[0] < len(images.classes):
        shown = n_out[0] if len(n_out) == 1 else "x".join(map(str, n_out))
        raise DataError(f"{spec.name} ends in {shown} outputs but the data has "
                        f"{len(images.classes)} classes; the last layer must be dense N, N >= classes"
                        + ("" if t is None else "; in transfer:, write classes from data"))
    train_idx, val_idx = split_indices(images, cfg.split, cfg.seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise DataError(f"{images.source}: {len(images)} images cannot be split {cfg.split:g} / "
                        f"{1 - cfg.split:.2g} into training and validation; each class needs at "
                        "least 2 images (more, for a meaningful validation accuracy)")
    if resuming is not None:
        norm = resuming["normalize"]
        mean, std, norm_source = norm["mean"], norm["std"], norm.get("source", "")
    else:
        mean, std, norm_source = _normalization(cfg, spec, images, train_idx)
    threads, why = choose_threads(cfg.threads, spec.shaped.macs, workers)
    torch.set_num_threads(threads)
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
    gen = torch.Generator().manual_seed(cfg.seed)
    pin = device.type == "cuda"
    train_loader = make_loader(ImageSet(images, train_idx, transform), cfg.batch, shuffle=True,
                               workers=workers, seed=cfg.seed, generator=gen, pin_memory=pin)
    # validation batches as large as training ones: the user sized those to fit in memory
    val_loader = make_loader(ImageSet(images, val_idx), cfg.batch, shuffle=False, pin_memory=pin)
    optimizer = make_optimizer(cfg, param_groups(model, cfg, plan, t))
    scheduler = make_scheduler(cfg, optimizer, len(train_loader))
    builtin = [NaNGuard(), ProgressLog(), Checkpoint(cfg.checkpoint)]
    if cfg.early_stop is not None:
        builtin.append(EarlyStopping(cfg.early_stop))
    trainer = Trainer(spec, cfg, folder, device, model, Standardize(mean, std).to(device),
                      optimizer, scheduler, train_loader, val_loader, images.classes, gen,
                      batch_augmentation(cfg.augment, n_out[0]), plan, builtin + list(callbacks),
                      console)
    record = {
        "network": spec.name, "spec_file": spec.file,
        "data": str(Path(data_path).resolve()) if data_path is not None else None,
        "data_source": images.source, "device": str(device),
        "normalize": {"mean": list(mean), "std": list(std),
                      "input": "float32 (N, C, H, W) pixels in [0, 1]", "source": norm_source},
        "skipped": [{"path": p, "reason": r} for p, r in images.skipped],
        "transfer": info, "train_images": len(train_idx), "val_images": len(val_idx),
        "workers": workers, "threads": threads, "threads_reason": why,
        "cache": images.cache, "steps_per_epoch": len(train_loader)}
    return trainer, images, record


def train(spec: ir.Spec, *, data: str | Path | None = None, out: str | Path | None = None,
          epochs: int | None = None, overrides: dict | None = None, device: str | None = None,
          export: bool = True, console: Console | None = None,
          callbacks: list[Callback] = ()) -> RunResult:
    """Train ``spec`` on ``data`` (an image folder; default: the spec's ``train: data``,
    relative to the spec file, or the embedded digits) and write a run folder at ``out``
    (default ``runs/<network name>``, numbered ``-2``, ``-3``, ... when taken).

    ``epochs`` and ``overrides`` (``{"lr": 0.01, "batch": 32, "workers": 2}``, keys of
    :data:`cnnspec.training.settings.OVERRIDES`) replace the spec's train settings; they are
    recorded in ``run.json`` and the resolved settings in ``spec.json``. ``callbacks`` are
    called after the built-in ones (see :mod:`cnnspec.training.callbacks`).

    Raises:
        DataError: the data folder is unusable (see :func:`cnnspec.data.folder.scan`).
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
    folder = RunFolder(out) if out is not None else RunFolder.next_free(Path("runs") / spec.name)
    if folder.holds_run():
        raise CnnSpecError(f"{folder} already holds a run; choose another --out, or continue it "
                           f"with --resume {folder}")
    # a folder with only the files a run writes at its start (spec.json, run.json, ...) is a
    # run killed before its first epoch ended: nothing to resume, so it is started over
    if folder.path.exists() and not folder.path.is_dir():
        raise CnnSpecError(f"{folder}: is a file; --out must be a folder")
    trainer, images, record = _setup(spec, cfg, folder, data_path, pick_device(device), console,
                                     list(callbacks))
    created = not folder.path.exists()
    resolved = trainer.spec.model_dump(mode="json")
    resolved["train"] = cfg.model_dump(mode="json")
    folder.start(spec.source, resolved, images.classes, {**record, "overrides": overrides})
    try:
        return _run(trainer, images, record, export)
    except BaseException:  # interrupted or failed before the first checkpoint: leave no
        folder.abandon(created)  # folder that --resume cannot continue
        raise


def prepare(spec: ir.Spec, out: str | Path, *, data: str | Path | None = None,
            overrides: dict | None = None, device: str | None = None,
            console: Console | None = None, callbacks: list[Callback] = ()) -> Trainer:
    """The :class:`Trainer` :func:`train` would run, set up but not started and with no
    start files written (checkpoints go to ``out``): for notebooks and benchmarks that
    drive ``trainer.train_epoch(epoch)`` themselves."""
    cfg = apply_overrides(spec.train, overrides) if overrides else spec.train
    trainer, _, _ = _setup(spec, cfg, RunFolder(out), data_path_of(spec, data),
                           pick_device(device), console or Console(stderr=True), list(callbacks))
    return trainer


def resume(run: str | Path, *, epochs: int | None = None, device: str | None = None,
           export: bool = True, console: Console | None = None,
           callbacks: list[Callback] = ()) -> RunResult:
    """Continue the run in folder ``run`` from its last completed epoch, up to its own
    ``epochs`` or, given ``epochs``, up to that many (a finished run then trains on; the
    schedule is worked out for the new length, as a run of that length would have it, and
    spec.json / run.json record the new count).

    Raises:
        CnnSpecError: ``run`` is not a run folder, its checkpoint is unreadable, or
            ``epochs`` is not more than the epochs it has done.
    """
    from ..loader import loads

    console = console or Console(stderr=True)
    folder = RunFolder(run)
    try:
        resolved, info = folder.resolved(), folder.info()
        spec = loads(*folder.spec_source())
        ckpt = folder.load_checkpoint()
        cfg = ir.TrainConfig.model_validate(resolved["train"])
        if epochs is not None:
            if epochs <= ckpt["epoch"]:
                raise CnnSpecError(f"{run}: --epochs {epochs} is not more than the "
                                   f"{ckpt['epoch']} epochs it has done")
            cfg = apply_overrides(cfg, {"epochs": epochs})
        metrics = folder.metrics()[: ckpt["epoch"]]
        classes = folder.classes()
        trainer, images, record = _setup(spec, cfg, folder, info["data"],
                                         pick_device(device or _usable(info["device"])),
                                         console, list(callbacks), resuming=info)
        if images.classes != classes:  # the labels would silently mean other classes
            raise CnnSpecError(f"{run}: the data's classes changed since the run started "
                               f"({', '.join(classes)} -> {', '.join(images.classes)}); "
                               "restore the folder, or start a new run")
        trainer.load_state_dict(ckpt)
    except FileNotFoundError as exc:
        started = folder.started()
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
    trainer.metrics = metrics
    if epochs is not None:
        resolved["train"] = cfg.model_dump(mode="json")
        folder.update(resolved, overrides={**info.get("overrides", {}), "epochs": epochs})
    start = trainer.first_epoch
    if early_stop_due(metrics, cfg.early_stop):
        console.print(f"{run} stopped early after {start} epochs (early_stop); writing "
                      "its final files again", highlight=False)
    elif start >= cfg.epochs:
        console.print(f"{run} had already finished ({start} epochs); writing its final "
                      "files again. To train on, give --epochs with a larger number.",
                      highlight=False)
    else:
        console.print(f"resuming {run} after epoch {start} of {cfg.epochs}")
    return _run(trainer, images, record, export)


def _usable(device: str | None) -> str | None:
    """The run's device, unless it was a GPU this machine does not have."""
    return None if device and device.startswith("cuda") and not torch.cuda.is_available() else device


def _run(trainer: Trainer, images, record: dict, export: bool) -> RunResult:
    from .announce import announce

    announce(trainer, images, record)
    start = time.perf_counter()
    trainer.fit()
    return _finish(trainer, time.perf_counter() - start, export)


def _finish(t: Trainer, elapsed: float, export: bool) -> RunResult:
    from ..report.metrics import confusion_matrix
    from ..report.plots import plot_confusion, plot_curves

    t.model.eval()
    folder, name = t.folder, t.spec.name
    folder.save_weights("weights", t.model, name)
    labels, preds = predict_labels(t.model.logits(), t.val_loader, t.norm, t.device,
                                   len(t.classes))
    matrix = confusion_matrix(labels, preds, len(t.classes))
    plot_curves(t.metrics, folder.curves, name)
    plot_confusion(matrix, t.classes, folder.confusion, name)
    result = RunResult(folder.path, t.metrics, t.model, t.classes, elapsed,
                       stopped_early=len(t.metrics) < t.cfg.epochs
                       and early_stop_due(t.metrics, t.cfg.early_stop))
    folder.write_metrics(name, t.metrics, stopped_early=result.stopped_early)
    if export:
        from torch import nn

        from ..export import export_onnx

        x, _ = next(iter(t.val_loader))
        result.export = export_onnx(nn.Sequential(t.norm, t.model).to(t.device).eval(), t.spec,
                                    folder.onnx, example=to_unit(x[:16], t.device))
    return result
