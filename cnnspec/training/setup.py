"""A run's set-up, the same for a new run, a resumed one and every process of a torchrun
group: data, split, normalisation, module, precision, optimizer, loaders, threads, and the
record run.json keeps of them."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from rich.console import Console

from .. import ir
from ..builder import build
from ..errors import CnnSpecError, DataError
from ..shapes import infer
from .callbacks import Callback, Checkpoint, EarlyStopping, NaNGuard, ProgressLog
from .distributed import SINGLE, Group, sync_batchnorm
from .inference import Standardize
from .loop import Trainer
from .optim import make_optimizer, make_scheduler, param_groups
from .performance import configure
from .run_folder import RunFolder
from .settings import choose_threads


def normalization(cfg: ir.TrainConfig, spec: ir.Spec, images, train_idx
                   ) -> tuple[list[float], list[float], str]:
    """(mean, std, source): as written, ImageNet's, the transferred run's, or computed from
    the training images in one streaming pass."""
    from ..data import channel_stats
    from ..weights import resolve_source

    if cfg.normalize.preset == "imagenet":
        return list(ir.IMAGENET_MEAN), list(ir.IMAGENET_STD), "imagenet"
    if cfg.normalize.mean is not None:
        return list(cfg.normalize.mean), list(cfg.normalize.std), "spec"
    t = spec.transfer
    if t is not None and t.named is not None and cfg.normalize.preset is None:
        from ..hub import of_spec
        from ..preprocessing import input_statistics

        named = of_spec(spec)  # the statistics the transferred layers learnt with
        mean, std = input_statistics(named, spec.input.channels)
        return mean, std, f"the weights of {named.name}"
    if t is not None:
        inherited = RunFolder.source_normalization(resolve_source(t.source, spec.file))
        if inherited is not None and len(inherited[0]) == spec.input.channels:
            # the transferred layers learnt on inputs standardised this way: keep it
            return inherited[0], inherited[1], "the transferred run"
    mean, std = channel_stats(images, train_idx)
    return mean, std, "computed on the training images"


def transfer_weights(source: Path) -> Path:
    """The weights file a transfer from ``source`` loads: the file given, or the run folder's
    (its final weights, else its last epoch's).

    Raises:
        TransferError: ``source`` is a folder without either.
    """
    from ..weights import TransferError

    found = RunFolder.source_weights(source)
    if found is None:
        raise TransferError(f"{source}: a folder without weights.safetensors or "
                            "last.safetensors; give a run folder or a weights file")
    return found


def _sha256(text: str) -> str:
    """What a resume compares: the spec's text, the images (file names and labels, in the
    order the split draws from)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _same_data(group: Group, listed: str, n: int, classes: list[str]) -> None:
    """Every process of a torchrun group holds the same images with the same labels (each
    reads the folder itself: another mount or copy would train on other data, or with
    other labels, silently, or end in a crash between the processes).

    Raises:
        DataError: this process's images differ from rank 0's.
    """
    if not group.distributed:
        return
    every = [None] * group.world_size  # each process learns what every other one holds,
    torch.distributed.all_gather_object(every, (listed, n, classes))  # so all stop alike
    odd = [r for r, held in enumerate(every) if held != every[0]]
    if odd:
        def held(r):
            names = every[r][2]
            return (f"{every[r][1]:,} images in classes {', '.join(names[:5])}"
                    f"{', ...' if len(names) > 5 else ''}")

        raise DataError(f"rank {odd[0]} sees other data than rank 0: {held(odd[0])} against "
                        f"rank 0's {held(0)}" + (f" (and {len(odd) - 1} more rank(s))"
                                                 if len(odd) > 1 else "")
                        + "; every process must read the same folder (the same files, names "
                        "and classes)")


def _batch_norm_fits(shaped, batch: int, world_size: int) -> None:
    """A batch norm whose input is one value per channel per image (after global pooling, or
    flat) normalises over the batch alone: a per-process batch of one has no variance, and
    PyTorch stops the first step (NVIDIA/apex#262). Said before training, naming the layer.

    Raises:
        CnnSpecError: such a batch norm with a per-process batch of one.
    """
    if batch > 1:
        return
    for _, path, info in shaped.walk():
        if info.layer.kind == "batchnorm" and math.prod(info.in_shape[1:]) == 1:
            shape = "x".join(map(str, (*info.in_shape[1:], info.in_shape[0])))
            where = (f"batch {batch * world_size} over {world_size} processes is {batch} per "
                     "process" if world_size > 1 else f"batch {batch}")
            fix = ("use batch 2 or more per process, or sync_batchnorm on (GPUs under "
                   "torchrun)") if world_size > 1 else "use batch 2 or more"
            raise CnnSpecError(f"{path}: batch norm of a {shape} input normalises each "
                               f"channel over the images of a batch, and {where}: one image "
                               f"has no variance; {fix}")


def _source_file(spec: ir.Spec, console: Console):
    """((the weights file, its SHA-256 or None), the named source or None) of the spec's
    ``transfer: from``: a named source fetched into torch's hub cache (verified), or the
    file / run folder's weights file written."""
    from ..hub import fetch, of_spec
    from ..transfer import resolve_source

    named = of_spec(spec)
    if named is None:
        return (transfer_weights(resolve_source(spec.transfer.source, spec.file)), None), None
    return fetch(named, say=lambda m: console.print(m, highlight=False, markup=False)), named


def setup(spec: ir.Spec, cfg: ir.TrainConfig, folder: RunFolder, data_path, device,
           console: Console, callbacks: list[Callback], resuming: dict | None = None,
           group: Group = SINGLE):
    """The Trainer of a run, and what run.json records about its set-up. ``resuming``: the
    run's own run.json, whose normalisation is reused as recorded. In a torchrun ``group``
    every process sets up the same run; each reads its share of the batches."""
    from ..data import (
        ImageSet,
        augmentation,
        batch_augmentation,
        default_workers,
        load_data,
        split_indices,
    )
    from ..data import loader as make_loader
    from ..transfer import NEVER, freeze_plan, load_into, with_classes

    if cfg.tensorboard and group.main:  # before any work: say what is missing
        from .tensorboard import require

        require(resuming is not None)
    batch = group.per_process_batch(cfg.batch, resuming=resuming is not None)
    torch.manual_seed(cfg.seed)
    transform = augmentation(cfg.augment, spec.input)
    workers = cfg.workers if cfg.workers is not None else default_workers(transform is not None)
    with group.local_main_first():  # one process per machine fills the decoded cache
        images = load_data(data_path, spec.input, workers=None if cfg.workers is None else workers)
    names = images.files or [str(i) for i in range(len(images))]  # embedded: no files
    listed = _sha256("\n".join(f"{label}\0{Path(f).name}" for f, label in
                               zip(names, images.labels.tolist(), strict=True)))
    _same_data(group, listed, len(images), images.classes)
    t = spec.transfer
    if t is not None and t.classes == "data":
        spec = with_classes(spec, len(images.classes))
    if t is not None and t.classes == "keep" and not resuming:
        raise DataError(f"transfer: classes keep keeps the categories of {t.source} (for "
                        "compile --onnx and predict); to train on your "
                        f"{len(images.classes)} classes, write classes from data")
    shaped = infer(spec)
    _batch_norm_fits(shaped, batch, group.world_size)
    n_out = shaped.output_shape
    if len(n_out) != 1 or n_out[0] < len(images.classes):
        shown = n_out[0] if len(n_out) == 1 else "x".join(map(str, n_out))
        where = "the data" if data_path is not None else "the embedded digits (no data given)"
        raise DataError(f"{spec.name} ends in {shown} outputs but {where} has "
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
        mean, std, norm_source = normalization(cfg, spec, images, train_idx)
    threads, why = choose_threads(cfg.threads, shaped.macs, workers,
                                  group.local_world_size)
    torch.set_num_threads(threads)
    model = build(shaped, seed=cfg.seed)
    plan, info = None, None
    if t is not None:
        plan = freeze_plan(spec)
        if not resuming:  # a resumed run's checkpoint holds every weight
            source, named = _source_file(spec, console)
            m, where = load_into(model, spec, source[0], plan.head)
            info = {"source": where, "matched": m.method, "loaded": len(m.loaded),
                    "replaced": [{"tensor": k, "shape": list(a), "file_shape": list(b or [])}
                                 for k, a, b in m.replaced], "unused": m.unused,
                    "frozen": [p for p, e in plan.starts.items() if e == NEVER],
                    # the epoch (from 1, as written) each layer joins at
                    "unfreeze": {p: int(e) + 1 for p, e in plan.starts.items()
                                 if 0 < e < NEVER},
                    "bn_train": t.bn_train, "bias_train": t.bias_train,
                    "adapted": m.adapted}
            if named is not None:  # what it resolved to, and the file's full SHA-256
                info.update(named=named.name, url=named.url, sha256=source[1],
                            preprocessing=vars(named.preprocessing).copy(),
                            categories=len(named.categories), head_replaced=plan.head)
    synced = cfg.sync_batchnorm and sync_batchnorm(model, group, device)
    model = model.to(device)
    speed = configure(cfg, device, model)
    if group.rank:  # dropout masks differ between processes (rank 0 keeps a single run's)
        torch.manual_seed(cfg.seed + 7919 * group.rank)
    gen = torch.Generator().manual_seed(cfg.seed)
    pin = device.type == "cuda"
    # batch norm cannot train on a single image: a last batch of one is left out
    batchnorm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    train_loader = make_loader(ImageSet(images, train_idx, transform), cfg.batch, shuffle=True,
                               workers=workers, seed=cfg.seed, generator=gen, pin_memory=pin,
                               rank=group.rank, world_size=group.world_size,
                               min_share=2 if batchnorm else 1)
    # validation batches as large as training ones: the user sized those to fit in memory
    val_loader = make_loader(ImageSet(images, group.shard(val_idx)), batch, shuffle=False,
                             pin_memory=pin)
    optimizer = make_optimizer(cfg, param_groups(model, cfg, plan, t))
    scheduler = make_scheduler(cfg, optimizer, len(train_loader))
    builtin = [NaNGuard()]
    if group.main:  # only rank 0 prints and writes the run folder
        builtin += [ProgressLog(), Checkpoint(cfg.checkpoint)]
        if cfg.tensorboard:
            from .tensorboard import TensorBoardLog

            builtin.append(TensorBoardLog())
    if cfg.early_stop is not None:
        builtin.append(EarlyStopping(cfg.early_stop))
    trainer = Trainer(spec, cfg, folder, device, model, Standardize(mean, std).to(device),
                      optimizer, scheduler, train_loader, val_loader, images.classes, gen,
                      batch_augmentation(cfg.augment, n_out[0]), plan, builtin + list(callbacks),
                      console if group.main else Console(quiet=True), group=group, speed=speed)
    if group.distributed:  # rank 0's confusion matrix covers every validation image
        trainer.val_all = make_loader(ImageSet(images, val_idx), batch, shuffle=False,
                                      pin_memory=pin)
    record = {
        "network": spec.name, "spec_file": spec.file, "spec_sha256": _sha256(spec.source),
        "images_sha256": listed,
        "data": str(Path(data_path).resolve()) if data_path is not None else None,
        "data_source": images.source, "device": str(device),
        "normalize": {"mean": list(mean), "std": list(std),
                      "input": "float32 (N, C, H, W) pixels in [0, 1]", "source": norm_source},
        "skipped": [{"path": p, "reason": r} for p, r in images.skipped],
        "transfer": info, "train_images": len(train_idx), "val_images": len(val_idx),
        "workers": workers, "threads": threads, "threads_reason": why,
        "cache": images.cache, "steps_per_epoch": len(train_loader),
        "dropped_per_epoch": train_loader.batch_sampler.dropped,
        **group.record(cfg.batch), "sync_batchnorm": bool(synced), **speed.record(),
        "nan_check_every": builtin[0].every}
    return trainer, images, record


def unchanged_since(run, info: dict, now: dict) -> None:
    """A resume trains what the run started: the same spec.cnn (an edit, relu to tanh with
    the same shapes, would train another network than spec.json describes) and the same
    images (others would make another split: validation images would leak into training).
    Runs from before these were recorded are not checked.

    Raises:
        CnnSpecError: either changed since the run started.
    """
    if info.get("spec_sha256") not in (None, now["spec_sha256"]):
        raise CnnSpecError(f"{run}: spec.cnn was edited since the run started, so a resume "
                           "would train another network; restore it, or start a new run "
                           "with the edited spec")
    if info.get("images_sha256") not in (None, now["images_sha256"]):
        was = info.get("train_images", 0) + info.get("val_images", 0)
        raise CnnSpecError(f"{run}: the data's images changed since the run started ({was:,} "
                           f"-> {now['train_images'] + now['val_images']:,} images), so a resume "
                           "would split them anew and validation images would leak into "
                           "training; restore the folder, or start a new run")
