"""``train`` and ``resume``: set a run up (:mod:`~cnnspec.training.setup`), hand it to the
:class:`~cnnspec.training.loop.Trainer` (in every process of a group), write the results."""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from .. import ir
from ..builder import Network
from ..errors import CnnSpecError
from .callbacks import Callback, early_stop_due
from .distributed import Group, join, leave
from .inference import predict_labels, to_unit
from .loop import Trainer
from .run_folder import RunFolder
from .settings import apply_overrides, data_path_of, inside_data, pick_device
from .setup import setup, unchanged_since


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


def train(spec: ir.Spec, *, data: str | Path | None = None, out: str | Path | None = None,
          epochs: int | None = None, overrides: dict | None = None, device: str | None = None,
          export: bool = True, console: Console | None = None,
          callbacks: list[Callback] = (), softmax: bool = False, assigned=None) -> RunResult:
    """Train ``spec`` on ``data`` (an image folder; default: the spec's ``train: data``,
    relative to the spec file, or the embedded digits) and write a run folder at ``out``
    (default ``runs/<network name>``, numbered ``-2``, ``-3``, ... when taken).

    ``epochs`` and ``overrides`` (``{"lr": 0.01, "batch": 32}``, keys of
    :data:`cnnspec.training.settings.OVERRIDES`) replace the spec's train settings; they
    (and ``assigned``, what ``--set`` gave) are recorded in ``run.json``. ``callbacks`` run
    after the built-in ones. ``model.onnx`` outputs logits, or probabilities (``softmax``).

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
    if data_path is not None:  # before a torchrun group forms: one error, not every rank's
        from ..data.folder import check_folder

        check_folder(data_path)
    group, device = join(device, lambda m: console.print(m, highlight=False, markup=False))
    folder = None
    try:
        folder = _claim(out, spec, group, data_path)
        created = [d for d in (folder.path, *folder.path.absolute().parents) if not d.exists()]
        if group.main:  # one writer: a second process cannot train into this folder
            folder.lock()
            folder.clean_temporaries()
        trainer, images, record = setup(spec, cfg, folder, data_path, pick_device(device),
                                        console, list(callbacks), group=group)
        if group.main:
            resolved = trainer.spec.model_dump(mode="json")
            resolved["train"] = cfg.model_dump(mode="json")
            folder.start(spec.source, resolved, images.classes,
                         {**record, "overrides": overrides, "onnx_softmax": softmax,
                          **({"set": assigned} if assigned else {})})
        return _run(trainer, images, record, export and ("softmax" if softmax else "logits"))
    except BaseException:  # interrupted or failed before the first checkpoint: leave no
        if folder is not None and group.main:  # folder that --resume cannot continue
            folder.unlock()
            folder.abandon(created)
        raise
    finally:
        if folder is not None:
            folder.unlock()
        leave(group)


def _claim(out, spec: ir.Spec, group: Group, data_path=None) -> RunFolder:
    """The run folder: ``out``, or the next free ``runs/<network>``; decided by rank 0 alone
    in a group (the others would see the folder rank 0 has just made as taken).

    Raises:
        CnnSpecError: the folder holds a run, is a file, holds other files, or is in the data.
    """
    decided = None
    if group.main:
        folder = RunFolder(out) if out is not None else RunFolder.next_free(Path("runs") / spec.name)
        inside = inside_data(folder.path, data_path)
        if inside:
            decided = ("error", (f"{folder}: the run folder would be inside the data folder "
                       f"{inside}, and its pictures would become training images; choose "
                       "--out outside it (runs/ beside the data, say)"))
        elif folder.holds_run():
            decided = ("error", (f"{folder} already holds a run; choose another --out, or "
                                 f"continue it with --resume {folder}"))
        elif folder.path.exists() and not folder.path.is_dir():
            decided = ("error", f"{folder}: is a file; --out must be a folder")
        # only a run's start files: killed before its first epoch, it starts over; any
        # other file would be overwritten or removed (RunFolder.foreign), so it is refused
        elif foreign := folder.foreign():
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            decided = ("error", (f"{folder} is not empty and holds no run ({shown}); a run "
                                 "writes spec.cnn, run.json, ... into its folder and would "
                                 "overwrite files there. Choose a new or empty folder for "
                                 f"--out, such as {folder.path / 'runs' / spec.name}"))
        else:
            decided = ("folder", str(folder.path))
    kind, value = group.broadcast(decided)
    if kind == "error":
        raise CnnSpecError(value)
    return RunFolder(value)


def prepare(spec: ir.Spec, out: str | Path, *, data: str | Path | None = None,
            overrides: dict | None = None, device: str | None = None,
            console: Console | None = None, callbacks: list[Callback] = ()) -> Trainer:
    """The :class:`Trainer` :func:`train` would run, set up but not started and with no
    start files written (checkpoints go to ``out``): for notebooks and benchmarks that
    drive ``trainer.train_epoch(epoch)`` themselves."""
    cfg = apply_overrides(spec.train, overrides) if overrides else spec.train
    trainer, _, _ = setup(spec, cfg, RunFolder(out), data_path_of(spec, data),
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

    console = console or Console(stderr=True)
    folder = RunFolder(run)
    group, device = join(device, lambda m: console.print(m, highlight=False, markup=False))
    try:
        if group.main and folder.path.is_dir():
            folder.lock()
            folder.clean_temporaries()
        return _resume(folder, epochs, device, export, console, callbacks, group)
    finally:
        folder.unlock()
        leave(group)


def _resume(folder: RunFolder, epochs, device, export, console, callbacks, group) -> RunResult:
    from ..language.loader import loads

    run = folder.path
    try:
        resolved, info = folder.resolved(), folder.info()
        spec = loads(*folder.spec_source())
        ckpt = folder.load_checkpoint()
        cfg = folder.train_config()
        if epochs is not None:
            if epochs <= ckpt["epoch"]:
                raise CnnSpecError(f"{run}: --epochs {epochs} is not more than the "
                                   f"{ckpt['epoch']} epochs it has done")
            cfg = apply_overrides(cfg, {"epochs": epochs})
        # the checkpoint carries the metrics of its epochs (metrics.json, written after it,
        # may lag by one epoch if a kill fell between the two)
        metrics = ckpt["metrics"] if "metrics" in ckpt else folder.metrics()[: ckpt["epoch"]]
        classes = folder.classes()
        trainer, images, record = setup(spec, cfg, folder, info["data"],
                                         pick_device(device or _usable(info["device"], group)),
                                         console, list(callbacks), resuming=info, group=group)
        if images.classes != classes:  # the labels would silently mean other classes
            raise CnnSpecError(f"{run}: the data's classes changed since the run started "
                               f"({', '.join(classes)} -> {', '.join(images.classes)}); "
                               "restore the folder, or start a new run")
        unchanged_since(run, info, record)
        trainer.load_state_dict(ckpt)
        if group.rank:  # the checkpoint holds rank 0's random state
            torch.manual_seed(cfg.seed + 7919 * group.rank + 104729 * ckpt["epoch"])
    except FileNotFoundError as exc:
        started = folder.started()
        raise CnnSpecError(f"{run}: not a run folder with a checkpoint ({exc.filename} is "
                           "missing); a run writes one after its first epoch" + (
                               f"; this one stopped before, start it again with compile SPEC "
                               f"--train --out {run}" if started else "")) from None
    except CnnSpecError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError, EOFError,
            pickle.UnpicklingError) as exc:  # a damaged, empty or foreign file
        raise CnnSpecError(f"{run}: cannot resume from this run folder: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    trainer.metrics = metrics
    if group.main and metrics:
        folder.write_metrics(spec.name, metrics)  # as the checkpoint has them
    if epochs is not None and group.main:
        resolved["train"] = cfg.model_dump(mode="json")
        folder.update(resolved, overrides={**info.get("overrides", {}), "epochs": epochs})
    console = trainer.console
    start = trainer.first_epoch
    if early_stop_due(metrics, cfg.early_stop):
        console.print(f"{run} stopped early after {start} epochs (early_stop); writing "
                      "its final files again", highlight=False, markup=False)
    elif start >= cfg.epochs:
        console.print(f"{run} had already finished ({start} epochs); writing its final "
                      "files again. To train on, give --epochs with a larger number.",
                      highlight=False, markup=False)
    else:
        console.print(f"resuming {run} after epoch {start} of {cfg.epochs}", markup=False)
    return _run(trainer, images, record,
                export and ("softmax" if info.get("onnx_softmax") else "logits"))


def _usable(device: str | None, group: Group) -> str | None:
    """The run's device, unless it was a GPU this machine does not have (under torchrun,
    each process's own GPU)."""
    if device and device.startswith("cuda"):
        if not torch.cuda.is_available():
            return None
        return "cuda" if group.distributed else device
    return device


def _run(trainer: Trainer, images, record: dict, export: str | bool) -> RunResult:
    """Announce, train, finish; ``export``: False, ``logits`` or ``softmax`` (model.onnx's)."""
    from .announce import announce

    announce(trainer, images, record)
    start = time.perf_counter()
    trainer.fit()
    return _finish(trainer, time.perf_counter() - start, export)


def _finish(t: Trainer, elapsed: float, export: str | bool) -> RunResult:
    from ..report.metrics import confusion_matrix
    from ..report.plots import plot_confusion, plot_curves

    model = t.weights.eval()  # with ema D: the moving average of the weights
    folder, name = t.folder, t.spec.name
    result = RunResult(folder.path, t.metrics, model, t.classes, elapsed,
                       stopped_early=len(t.metrics) < t.cfg.epochs
                       and early_stop_due(t.metrics, t.cfg.early_stop))
    if not t.group.main:  # rank 0 writes the run's files
        return result
    folder.save_weights("weights", model, name)
    # compile: whether it ran; the group: the one that ended the run (resume may use another)
    folder.update(**t.speed.record(), **t.group.record(t.cfg.batch))
    val = t.val_all or t.val_loader
    labels, preds = predict_labels(model.logits(), val, t.norm, t.device, len(t.classes))
    matrix = confusion_matrix(labels, preds, len(t.classes))
    plot_curves(t.metrics, folder.curves, name)
    plot_confusion(matrix, t.classes, folder.confusion, name)
    folder.write_metrics(name, t.metrics, stopped_early=result.stopped_early)
    if export:
        from torch import nn

        from ..export import export_onnx, metadata

        x, _ = next(iter(val))
        layers = [t.norm, model] + ([nn.Softmax(dim=1)] if export == "softmax" else [])
        output = "probabilities" if export == "softmax" or ends_in_softmax(model) else "logits"
        model = nn.Sequential(*layers).to(t.device, memory_format=torch.contiguous_format)
        meta = metadata(t.spec, output, t.classes, (t.norm.mean.flatten().tolist(),
                                                    t.norm.std.flatten().tolist()))
        result.export = export_onnx(model.eval(), t.spec, folder.onnx,
                                    example=to_unit(x[:16], t.device), meta=meta)
    return result


def ends_in_softmax(model: Network) -> bool:
    """The spec's last layer is a softmax (the network outputs probabilities)."""
    return model.logits() is not model
