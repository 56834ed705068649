"""Training data: the embedded digits or an image folder, decoded once into memory.

Images are held as uint8 tensors (N, C, H, W) at the spec's input size and channels,
so epochs after the first never decode again. Splits are stratified by class.
Decoding uses Pillow (as ``torchvision.datasets.ImageFolder`` does; torchvision's own
decoders are deprecated since 0.29); resizing and augmentation use ``torchvision.transforms.v2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from . import ir
from .errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


@dataclass
class Dataset:
    """Decoded images (N, C, H, W) uint8, labels (N,) int64, and the class names in order."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of every file that could not be decoded."""
    val_mask: torch.Tensor | None = None
    """(N,) bool: the images of a ``val/`` folder, when the data came as ``train/`` + ``val/``
    (then they validate instead of a stratified split)."""

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> Dataset:
        return Dataset(self.images[index], self.labels[index], self.classes, self.source, self.skipped)


def _fit(images: torch.Tensor, spec_input: ir.InputShape) -> torch.Tensor:
    """Convert (N, C, H, W) uint8 images to the spec's channels and size."""
    c = images.shape[1]
    if c != spec_input.channels:
        if spec_input.channels == 1:
            images = TF.rgb_to_grayscale(images[:, :3] if c >= 3 else images[:, :1])
        else:
            images = images[:, :1].expand(-1, spec_input.channels, -1, -1) if c == 1 else images[:, :3]
    if tuple(images.shape[-2:]) != (spec_input.height, spec_input.width):
        images = TF.resize(images, [spec_input.height, spec_input.width], antialias=True)
    return images.contiguous()


def embedded_digits(spec_input: ir.InputShape) -> Dataset:
    """The 5,000 MNIST digits shipped in the package (see cnnspec/embedded/README.md),
    converted to the spec's input (28x28 grayscale resized; copied to 3 channels if asked)."""
    with resources.files("cnnspec.embedded").joinpath("digits.npz").open("rb") as f:
        npz = np.load(f, allow_pickle=False)
        images, labels = npz["images"], npz["labels"]
    x = torch.from_numpy(images).unsqueeze(1)
    return Dataset(_fit(x, spec_input), torch.from_numpy(labels).long(),
                   [str(i) for i in range(10)], "embedded MNIST digits (5,000)")


# Errors Pillow raises for a file it cannot use: not an image, truncated, too large.
_UNREADABLE = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _decode(path: Path, mode: str) -> torch.Tensor:
    """uint8 (C, H, W) in ``mode`` ('L' or 'RGB'). 16- and 32-bit grayscale is scaled to
    8 bits first (Pillow's convert would clip it to white)."""
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            peak = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
            im = Image.fromarray((arr / peak * 255).round().clip(0, 255).astype(np.uint8), "L")
        return TF.pil_to_tensor(im.convert(mode))


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def load_image(path: str | Path, spec_input: ir.InputShape) -> torch.Tensor:
    """One image file as uint8 (C, H, W) at the spec's input size and channels.

    Raises:
        DataError: the file is missing or cannot be decoded.
    """
    mode = "L" if spec_input.channels == 1 else "RGB"
    try:
        img = _decode(Path(path), mode)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image") from None
    except _UNREADABLE as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None
    return _fit(img.unsqueeze(0), spec_input)[0]


def _class_dirs(root: Path) -> list[Path]:
    """Class folders of an image folder, sorted by name; hidden folders are not classes."""
    return sorted((d for d in root.iterdir() if d.is_dir() and _visible(d)), key=lambda d: d.name)


def _image_files(class_dir: Path) -> list[Path]:
    """Image files of one class (nested folders included), skipping hidden files and folders."""
    return sorted(p for p in class_dir.rglob("*") if p.is_file() and _visible(p)
                  and p.suffix.lower() in IMAGE_SUFFIXES
                  and all(_visible(q) for q in p.relative_to(class_dir).parents if q != Path(".")))


def image_folder(root: str | Path, spec_input: ir.InputShape, min_classes: int = 2) -> Dataset:
    """Read ``root/<class>/<image>`` (PNG, JPEG, BMP, WebP), classes in sorted order.

    Hidden files and folders are ignored. A file that cannot be decoded is skipped and
    listed in ``Dataset.skipped``.

    Raises:
        DataError: the folder is missing, has fewer than two classes, has an empty class
            folder, or holds no readable image.
    """
    _check_folder(root)
    root = Path(root)
    class_dirs = _class_dirs(root)
    if len(class_dirs) < min_classes:
        raise DataError(f"{root}: found {len(class_dirs)} class folder(s); an image folder needs "
                        f"at least {'two' if min_classes == 2 else min_classes}, laid out as "
                        "DIR/<class>/<image>")
    mode = "L" if spec_input.channels == 1 else "RGB"
    images, labels, skipped = [], [], []
    for label, d in enumerate(class_dirs):
        files = _image_files(d)
        if not files:
            raise DataError(f"{d}: class folder has no images (PNG, JPEG, BMP or WebP)")
        for p in files:
            try:
                img = _decode(p, mode)
            except _UNREADABLE as exc:  # corrupt, truncated or too large: report and skip
                skipped.append((str(p), str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
                continue
            images.append(_fit(img.unsqueeze(0), spec_input))
            labels.append(label)
        if not labels or labels[-1] != label:
            raise DataError(f"{d}: class folder has no readable images (all "
                            f"{len(files)} failed to decode; see the skipped files above)")
    if not images:
        raise DataError(f"{root}: no readable images")
    return Dataset(torch.cat(images), torch.tensor(labels, dtype=torch.long),
                   [d.name for d in class_dirs], str(root), skipped)


def _check_folder(raw: str | Path) -> None:
    if str(raw) == "":
        raise DataError("the data folder is empty text; give a folder DIR/<class>/<image>")
    root = Path(raw)
    if root.is_file():
        raise DataError(f"{root}: is a file; the data must be a folder DIR/<class>/<image>")
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")


SPLIT_FOLDERS = ("train", "val")


def class_names(path: str | Path | None) -> list[str]:
    """The class names :func:`load_data` would find at ``path``, without decoding an image
    (the summary of a ``classes from data`` head uses it before training)."""
    if path is None:
        return [str(i) for i in range(10)]
    _check_folder(path)
    root = Path(path)
    dirs = _class_dirs(root)
    if [d.name for d in dirs] == list(SPLIT_FOLDERS):
        dirs = _class_dirs(root / "train")
    return [d.name for d in dirs]


def load_data(path: str | Path | None, spec_input: ir.InputShape) -> Dataset:
    """The image folder at ``path``, or the embedded digits when ``path`` is None.

    A folder holding exactly ``train/`` and ``val/`` (each ``<class>/<image>``) keeps that
    split: ``Dataset.val_mask`` marks the ``val/`` images, and the classes are those of
    ``train/``.

    Raises:
        DataError: see :func:`image_folder`; or ``val/`` has a class ``train/`` lacks.
    """
    if path is None:
        return embedded_digits(spec_input)
    _check_folder(path)
    root = Path(path)
    if [d.name for d in _class_dirs(root)] != list(SPLIT_FOLDERS):
        return image_folder(root, spec_input)
    train = image_folder(root / "train", spec_input)
    val = image_folder(root / "val", spec_input, min_classes=1)
    extra = sorted(set(val.classes) - set(train.classes))
    if extra:
        raise DataError(f"{root / 'val'}: class folder(s) {', '.join(extra)} are not in "
                        f"{root / 'train'}; validation classes must be training classes")
    remap = torch.tensor([train.classes.index(c) for c in val.classes], dtype=torch.long)
    return Dataset(torch.cat([train.images, val.images]),
                   torch.cat([train.labels, remap[val.labels]]), train.classes, str(root),
                   train.skipped + val.skipped,
                   torch.cat([torch.zeros(len(train), dtype=torch.bool),
                              torch.ones(len(val), dtype=torch.bool)]))


def stratified_split(labels: torch.Tensor, train_fraction: float, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val): each class split in the same proportion, shuffled by ``seed``.

    Every class with two or more images keeps at least one for validation and one for training.
    """
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


def split_indices(data: Dataset, train_fraction: float, seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) of a run's split: its ``val/`` folder when the data came as
    ``train/`` + ``val/``, else :func:`stratified_split`."""
    if data.val_mask is not None:
        return (~data.val_mask).nonzero().flatten(), data.val_mask.nonzero().flatten()
    return stratified_split(data.labels, train_fraction, seed)


def augmentation(augment: list[ir.Augmentation], spec_input: ir.InputShape) -> v2.Transform | None:
    """The ``augment:`` list as a torchvision ``v2.Compose`` applied to one uint8 (C, H, W)
    image, in the order written. Each image draws its own random parameters (a v2 transform
    called on a whole batch would give every image of it the same crop or flip)."""
    size = [spec_input.height, spec_input.width]
    steps = []
    for a in (a for a in augment if not a.batched):
        if a.kind == "hflip":
            steps.append(v2.RandomHorizontalFlip())
        elif a.kind == "vflip":
            steps.append(v2.RandomVerticalFlip())
        elif a.kind == "crop":
            steps.append(v2.RandomCrop(a.size, padding=a.pad or None))
            if a.size != spec_input.height or a.size != spec_input.width:
                steps.append(v2.Resize(size, antialias=True))
        elif a.kind == "rotate":
            steps.append(v2.RandomRotation(a.degrees))
        elif a.kind == "random_resized_crop":
            steps.append(v2.RandomResizedCrop(a.size or size, scale=a.scale or (0.08, 1.0),
                                              antialias=True))
            if a.size is not None and [a.size, a.size] != size:
                steps.append(v2.Resize(size, antialias=True))
        elif a.kind == "color_jitter":  # hue and saturation leave 1-channel images unchanged
            steps.append(v2.ColorJitter(brightness=a.brightness, contrast=a.contrast,
                                        saturation=a.saturation, hue=a.hue))
        elif a.kind == "random_erasing":  # erased pixels are 0 (black) before normalisation
            steps.append(v2.RandomErasing(p=a.p, scale=a.scale or (0.02, 0.33), value=0))
    return v2.Compose(steps) if steps else None


def batch_augmentation(augment: list[ir.Augmentation], num_classes: int) -> v2.Transform | None:
    """``mixup`` / ``cutmix`` as torchvision's batch transforms: called on a float batch
    (B, C, H, W) and its labels (B,), they return the mixed batch and soft labels
    (B, num_classes); with both, ``v2.RandomChoice`` picks one per batch."""
    steps = [v2.MixUp(alpha=a.alpha, num_classes=num_classes) if a.kind == "mixup"
             else v2.CutMix(alpha=a.alpha, num_classes=num_classes)
             for a in augment if a.batched]
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else v2.RandomChoice(steps)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images (N, C, H, W), in [0, 1] units."""
    x = images.float().div_(255)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()


def batches(data: Dataset, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
            transform: v2.Transform | None = None):
    """Yield (images uint8 (B, C, H, W), labels (B,)); ``transform`` runs per image."""
    order = torch.randperm(len(data), generator=generator) if shuffle else torch.arange(len(data))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x = data.images[idx]
        if transform is not None:
            x = torch.stack([transform(img) for img in x])
        yield x, data.labels[idx]


def data_report(root: str | Path, min_classes: int = 0, min_per_class: int = 0) -> dict:
    """What an image folder holds, without decoding it at a spec's size: classes with image
    counts, sizes (W x H) and modes, unreadable files, exact duplicates (same bytes), and
    whether it meets a minimum (the course's rule: 3 classes x 250 images).

    Raises:
        DataError: ``root`` is not a folder.
    """
    import hashlib
    from collections import Counter

    _check_folder(root)
    root = Path(root)
    classes, unreadable, seen, duplicates = [], [], {}, []
    for d in _class_dirs(root):
        files = _image_files(d)
        sizes, modes, ok = Counter(), Counter(), 0
        for p in files:
            digest = hashlib.sha1(p.read_bytes()).hexdigest()
            if digest in seen:
                duplicates.append([str(seen[digest]), str(p)])
            else:
                seen[digest] = p
            try:
                with Image.open(p) as im:
                    im.verify()
                with Image.open(p) as im:
                    im.load()
                    sizes[f"{im.width}x{im.height}"] += 1
                    modes[im.mode] += 1
                ok += 1
            except _UNREADABLE as exc:
                unreadable.append({"path": str(p), "reason": str(exc).splitlines()[0]})
        classes.append({"name": d.name, "images": ok, "files": len(files),
                        "sizes": dict(sizes.most_common(5)), "modes": dict(modes)})
    problems = []
    if len(classes) < min_classes:
        problems.append(f"{len(classes)} classes, fewer than the {min_classes} asked for")
    problems += [f"class {c['name']}: {c['images']} readable images, fewer than {min_per_class}"
                 for c in classes if c["images"] < min_per_class]
    return {"root": str(root), "classes": classes, "unreadable": unreadable,
            "duplicates": duplicates, "total_images": sum(c["images"] for c in classes),
            "minimum": {"classes": min_classes, "per_class": min_per_class},
            "meets_minimum": not problems, "problems": problems}
