"""Decoded images and the ``torch.utils.data`` pieces that feed them to a training step.

:class:`Images` holds uint8 (N, C, H, W) pixels, either in memory (the embedded digits,
4 MB) or memory-mapped from the decoded cache (:mod:`cnnspec.data.cache`), so the process
keeps only the pages it touches and the kernel shares them between DataLoader workers: the
resident memory a run needs does not grow with the number of images.

:class:`ImageSet` reads whole batches (``__getitems__``, one fancy index into the array),
applies the per-image augmentation to each image with a seed fixed by (run seed, epoch,
batch), and :class:`EpochBatches` draws the order (``torch.randperm`` with the run's
generator, as ``RandomSampler`` does). Augmentation is therefore the same with 0, 1 or 8
workers and after a resume, and runs in the DataLoader's worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError


class MappedArray:
    """A uint8 array in a raw file, opened lazily in each process (a pickled ``np.memmap``
    would be copied whole into every spawned worker)."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path, self.shape = Path(path), tuple(shape)
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = (np.memmap(self.path, dtype=np.uint8, mode="r", shape=self.shape)
                           if self.shape[0] else np.zeros(self.shape, np.uint8))
        return self._array

    def __getstate__(self):
        return {"path": self.path, "shape": self.shape, "_array": None}


@dataclass
class Images:
    """Decoded images (N, C, H, W) uint8, labels (N,) int64 and the class names in order."""

    store: MappedArray | np.ndarray
    labels: np.ndarray
    classes: list[str]
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of every file that could not be decoded."""
    val_mask: np.ndarray | None = None
    """(N,) bool: the images of a ``val/`` folder (they validate instead of a split)."""
    files: list[str] | None = None
    """(N,) the file each image came from (None for the embedded digits)."""
    cache: str | None = None
    """The cache file the pixels are mapped from, or None (in memory)."""
    origins: dict[str, int] = field(default_factory=dict)
    """What the files were before conversion to the spec's input: ``{"64x64 RGB": 300}``."""

    @property
    def array(self) -> np.ndarray:
        return self.store.array if isinstance(self.store, MappedArray) else self.store

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, index: int) -> str:
        """The file of image ``index``, for messages."""
        return self.files[index] if self.files else f"{self.source} image {index}"


def _augment_seed(seed: int, epoch: int, batch: int) -> int:
    """A seed per (run seed, epoch, batch) for the per-image augmentation (SplitMix-style
    mixing keeps neighbouring batches' streams apart).

    >>> _augment_seed(0, 0, 0) != _augment_seed(0, 0, 1) != _augment_seed(0, 1, 0)
    True
    """
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + batch * 0x94D049BB133111EB)
    x &= (1 << 64) - 1
    x ^= x >> 31
    return x & ((1 << 63) - 1)


class ImageSet(torch.utils.data.Dataset):
    """``images`` restricted to ``indices``, as (uint8 (C, H, W), label) items; batches are
    read in one piece by ``__getitems__`` and come back as (uint8 (B, C, H, W), labels (B,)).

    ``transform`` (a torchvision v2 transform of one uint8 (C, H, W) image) runs per image,
    seeded per batch (see :class:`EpochBatches`); an error in it names the file.
    """

    def __init__(self, images: Images, indices, transform=None):
        self.images = images
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        x, y = self.__getitems__([int(i)])
        return x[0], y[0]

    def __getitems__(self, batch):
        seed = None
        if isinstance(batch, tuple):  # (augmentation seed, positions) from EpochBatches
            seed, batch = batch
        rows = self.indices[np.asarray(batch, dtype=np.int64)]
        order = np.argsort(rows, kind="stable")  # a memory map reads fastest in file order
        x = np.empty((len(rows), *self.images.shape[1:]), np.uint8)
        x[order] = self.images.array[rows[order]]
        x = torch.from_numpy(x)
        if self.transform is not None:
            x = self._augment(x, rows, seed)
        return x, torch.from_numpy(self.images.labels[rows])

    def _augment(self, x: torch.Tensor, rows: np.ndarray, seed: int | None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.random.fork_rng(devices=[]):  # the caller's random state is not touched
            if seed is not None:
                torch.manual_seed(seed)  # the v2 transforms draw from the global generator
            try:
                return self.transform(x, gen)
            except Exception as exc:  # noqa: BLE001 - any failure: name the files
                names = ", ".join(self.images.name(int(r)) for r in rows[:3])
                raise DataError(f"augmentation failed on a batch holding {names}"
                                f"{', ...' if len(rows) > 3 else ''}: {type(exc).__name__}: "
                                f"{exc}") from None


def keep_batch(batch):
    """collate_fn for :class:`ImageSet`: its batches are already stacked."""
    return batch


class EpochBatches(torch.utils.data.Sampler):
    """Batches of positions of an epoch: shuffled with ``torch.randperm(n, generator)``
    (the order ``RandomSampler`` gives for the same generator) or in order, each with the
    augmentation seed of (``seed``, epoch, batch). Call :meth:`set_epoch` before each epoch
    (as with ``DistributedSampler``).

    In a torchrun group (``world_size`` > 1) every process draws the same order (the same
    generator state) and takes its ``rank``-th share of each global batch of ``batch_size``
    (shares differ by at most one image). One process sees exactly the batches a single
    process would, split ``world_size`` ways.

    A last batch whose smallest share would hold fewer than ``min_share`` images is left out
    (:attr:`dropped` says how many images): no process steps on an empty batch, and with
    ``min_share=2`` none on a single image, which batch norm cannot normalise in training
    mode ("Expected more than 1 value per channel").
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0,
                 generator: torch.Generator | None = None, rank: int = 0, world_size: int = 1,
                 min_share: int = 1):
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self.seed, self.generator, self.epoch = seed, generator, 0
        self.rank, self.world_size, self.min_share = rank, world_size, min_share

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, tail = divmod(self.n, self.batch_size)
        return full + (tail // self.world_size >= self.min_share if tail else 0)

    @property
    def dropped(self) -> int:
        """Images left out of every epoch (a last batch too small to share, see above)."""
        return self.n - min(self.n, len(self) * self.batch_size)

    def global_size(self, b: int) -> int:
        """Images in global batch ``b`` (all processes together)."""
        return min(self.batch_size, self.n - b * self.batch_size)

    def __iter__(self):
        order = (torch.randperm(self.n, generator=self.generator) if self.shuffle
                 else torch.arange(self.n))
        for b in range(len(self)):
            chunk = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.world_size > 1:
                chunk = torch.tensor_split(chunk, self.world_size)[self.rank]
            yield (_augment_seed(self.seed, self.epoch, b * self.world_size + self.rank),
                   chunk.tolist())
