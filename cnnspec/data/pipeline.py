"""From a data folder (or the embedded digits) to DataLoaders: decode via the cache, split,
normalisation statistics in one streaming pass, workers.

Workers default from the cores this process may use (``os.sched_getaffinity``): with
per-image augmentation, all of them but the one the training step runs on (at least one,
at most 8); without, none, since handing decoded uint8 batches between processes costs more
than reading them from the memory map.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .. import ir
from ..host import usable_cores
from .cache import decoded
from .folder import fit, scan
from .images import EpochBatches, Images, ImageSet, keep_batch

MAX_WORKERS = 8
SMALL_FOLDER = 256
"""Folders with fewer files are decoded in the main process (starting workers costs more)."""


def default_workers(augmenting: bool) -> int:
    """DataLoader workers when neither ``workers N`` nor ``--workers`` says (see module doc).

    >>> default_workers(False)
    0
    """
    if not augmenting:
        return 0
    return max(1, min(MAX_WORKERS, usable_cores() - 1))


def embedded_digits(spec_input: ir.InputShape) -> Images:
    """The 5,000 MNIST digits shipped in the package (see cnnspec/embedded/README.md),
    converted to the spec's input (28x28 grayscale resized; copied to 3 channels if asked),
    in memory (4 MB at 28x28)."""
    with resources.files("cnnspec.embedded").joinpath("digits.npz").open("rb") as f:
        npz = np.load(f, allow_pickle=False)
        images, labels = npz["images"], npz["labels"]
    x = fit(torch.from_numpy(images).unsqueeze(1), spec_input)
    return Images(x.numpy(), labels.astype(np.int64), [str(i) for i in range(10)],
                  "embedded MNIST digits (5,000)", origins={"28x28 L": len(labels)})


def load_data(path: str | Path | None, spec_input: ir.InputShape, workers: int | None = None,
              use_cache: bool = True, progress=None) -> Images:
    """The image folder at ``path`` decoded at ``spec_input`` (through the cache, see
    :mod:`cnnspec.data.cache`), or the embedded digits when ``path`` is None.

    A folder holding exactly ``train/`` and ``val/`` keeps that split (``Images.val_mask``).

    Raises:
        DataError: see :func:`cnnspec.data.folder.scan`; or a class has no readable image.
    """
    if path is None:
        return embedded_digits(spec_input)
    files = scan(path)
    if workers is None:
        workers = 0 if len(files.files) < SMALL_FOLDER else max(1, min(MAX_WORKERS, usable_cores()))
    return decoded(files, spec_input, workers, use_cache, progress)


def stratified_split(labels, train_fraction: float, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val): each class split in the same proportion, shuffled by ``seed``.

    Every class with two or more images keeps at least one for validation and one for training.
    """
    labels = torch.as_tensor(labels)
    g = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in labels.unique(sorted=True):
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n = round(train_fraction * len(idx))
        if len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)
        train.append(idx[:n])
        val.append(idx[n:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def split_indices(data: Images, train_fraction: float, seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) of a run's split: its ``val/`` folder when the data came as
    ``train/`` + ``val/``, else :func:`stratified_split`."""
    if data.val_mask is not None:
        mask = torch.from_numpy(np.asarray(data.val_mask, dtype=bool))
        return (~mask).nonzero().flatten(), mask.nonzero().flatten()
    return stratified_split(data.labels, train_fraction, seed)


def channel_stats(images: Images, indices, chunk_bytes: int = 16 * 2**20
                  ) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation (Bessel-corrected, as ``torch.std``) of the
    images at ``indices``, in [0, 1] units, in one streaming pass over chunks of about
    ``chunk_bytes`` of float32 (float64 sums): memory O(chunk), not O(N)."""
    idx = np.sort(np.asarray(indices, dtype=np.int64))
    _, c, h, w = images.shape
    step = max(1, chunk_bytes // (4 * c * h * w))
    total, total_sq, n = np.zeros(c), np.zeros(c), 0
    for start in range(0, len(idx), step):
        x = images.array[idx[start:start + step]].astype(np.float32)
        x /= 255.0
        total += x.sum(axis=(0, 2, 3), dtype=np.float64)
        x *= x
        total_sq += x.sum(axis=(0, 2, 3), dtype=np.float64)
        n += x.shape[0] * h * w
    mean = total / max(n, 1)
    var = (total_sq - n * mean**2) / max(n - 1, 1)
    return mean.tolist(), np.sqrt(np.maximum(var, 1e-12)).clip(min=1e-6).tolist()


def loader(data: ImageSet, batch_size: int, *, shuffle: bool, workers: int = 0, seed: int = 0,
           generator: torch.Generator | None = None, pin_memory: bool = False,
           rank: int = 0, world_size: int = 1, min_share: int = 1
           ) -> torch.utils.data.DataLoader:
    """A DataLoader of (uint8 (B, C, H, W), labels (B,)) batches over ``data``; its
    ``batch_sampler`` is an :class:`EpochBatches` (call ``set_epoch``; in a torchrun group
    ``batch_size`` is the global batch and each process gets its share). Workers persist
    across epochs and prefetch 4 batches each."""
    return torch.utils.data.DataLoader(
        data, batch_sampler=EpochBatches(len(data), batch_size, shuffle=shuffle, seed=seed,
                                         generator=generator, rank=rank,
                                         world_size=world_size, min_share=min_share),
        collate_fn=keep_batch, num_workers=workers, persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None, pin_memory=pin_memory,
        # the workers' base seed from a generator of its own: drawn from torch's global one
        # when an iterator starts, it shifted the dropout masks of a resumed run
        generator=torch.Generator().manual_seed(seed + 1_000_003 * rank))
