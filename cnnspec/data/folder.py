"""Image folders as file lists: which files, which classes, and decoding one file.

Nothing here holds pixels: :func:`scan` lists ``DIR/<class>/<image>`` (or ``DIR/train/...``
+ ``DIR/val/...``) and :func:`decode_array` turns one file into uint8 (C, H, W) at a spec's
input, as the DataLoader workers that fill the cache (:mod:`cnnspec.data.cache`) call it.
Decoding and resizing use Pillow alone (as ``torchvision.datasets.ImageFolder`` with a PIL
``Resize`` does; torchvision's own decoders are deprecated since 0.29), so ``cnnspec data``
and ONNX Runtime's ``predict`` read images exactly as training does without importing
torch. Only :func:`fit` (tensors already in memory, the embedded digits) uses torchvision.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from .. import ir
from ..errors import DataError

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
SPLIT_FOLDERS = ("train", "val")

# Errors Pillow raises for a file it cannot use: not an image, truncated, too large.
UNREADABLE = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
              NotImplementedError, Image.DecompressionBombError)
"""What Pillow raises for a file it cannot decode (a DDS variant it does not implement
raises NotImplementedError): such an image is reported and skipped."""


@dataclass(frozen=True)
class FileList:
    """The images of a folder, not yet decoded: paths, labels and class names in order."""

    files: list[str]
    labels: list[int]
    classes: list[str]
    source: str
    val: list[bool] | None = None
    """Per file: it came from a ``val/`` folder (the data was ``train/`` + ``val/``)."""


def fit(images: torch.Tensor, spec_input: ir.InputShape) -> torch.Tensor:
    """uint8 (N, C, H, W) images converted to the spec's channels and size (antialiased)."""
    from torchvision.transforms.v2 import functional as TF

    c = images.shape[1]
    if c != spec_input.channels:
        if spec_input.channels == 1:
            images = TF.rgb_to_grayscale(images[:, :3] if c >= 3 else images[:, :1])
        else:
            images = images[:, :1].expand(-1, spec_input.channels, -1, -1) if c == 1 else images[:, :3]
    if tuple(images.shape[-2:]) != (spec_input.height, spec_input.width):
        images = TF.resize(images, [spec_input.height, spec_input.width], antialias=True)
    return images.contiguous()


def decode_array(path: str | Path, spec_input: ir.InputShape) -> np.ndarray:
    """One file as uint8 (C, H, W) at the spec's input size and channels: converted by
    Pillow to grayscale ('L', ITU-R 601-2 luma) or RGB, then resized with Pillow's
    antialiased bilinear filter (its support widens when shrinking). 16- and 32-bit
    grayscale is scaled to 8 bits first (Pillow's convert would clip it to white). Other
    channel counts than 1 and 3 repeat the grayscale image.

    Raises:
        One of :data:`UNREADABLE`: the file is not an image Pillow can decode.
    """
    return decode_with_origin(path, spec_input)[0]


def decode_with_origin(path: str | Path, spec_input: ir.InputShape) -> tuple[np.ndarray, str]:
    """:func:`decode_array`, and what the file was: ``"WxH MODE"`` (``"64x64 RGB"``)."""
    with warnings.catch_warnings():  # over 89 M pixels: decoded (the report names it)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return _decode(path, spec_input)


def _decode(path, spec_input: ir.InputShape) -> tuple[np.ndarray, str]:
    mode = "RGB" if spec_input.channels == 3 else "L"
    size = (spec_input.width, spec_input.height)
    with Image.open(path) as im:
        origin = f"{im.width}x{im.height} {im.mode}"
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            peak = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
            im = Image.fromarray((arr / peak * 255).round().clip(0, 255).astype(np.uint8), "L")
        im = im.convert(mode)
        if im.size != size:
            im = im.resize(size, Image.Resampling.BILINEAR)
        arr = np.array(im, dtype=np.uint8)  # a writable copy (torch.from_numpy shares it)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    if arr.shape[0] != spec_input.channels:
        arr = np.repeat(arr[:1], spec_input.channels, axis=0)
    return np.ascontiguousarray(arr), origin


def input_text(spec_input: ir.InputShape) -> str:
    """The network's input as a conversion names it.

    >>> input_text(ir.InputShape(height=32, width=32, channels=3))
    '32x32x3 (RGB)'
    """
    h, w, c = spec_input.height, spec_input.width, spec_input.channels
    kind = "RGB" if c == 3 else "grayscale" if c == 1 else f"grayscale repeated x{c}"
    return f"{h}x{w}x{c} ({kind})"


def conversion(origins: dict[str, int], spec_input: ir.InputShape) -> str | None:
    """One line on how images were converted to the spec's input, from counts of what the
    files were (``{"64x64 RGB": 300}``); None when nothing changed.

    >>> conversion({"64x64 RGB": 300, "32x32 L": 2}, ir.InputShape(height=32, width=32, channels=1))
    'images converted to the input 32x32x1 (grayscale): 300 x 64x64 RGB, 2 x 32x32 L (unchanged)'
    """
    h, w, c = spec_input.height, spec_input.width, spec_input.channels
    target_mode = "RGB" if c == 3 else "L"
    same = f"{w}x{h} {target_mode}"
    if not origins or set(origins) == {same}:
        return None
    parts = [f"{n} x {o}" + (" (unchanged)" if o == same else "")
             for o, n in sorted(origins.items(), key=lambda kv: -kv[1])[:4]]
    more = f", and {len(origins) - 4} more kinds" if len(origins) > 4 else ""
    return f"images converted to the input {input_text(spec_input)}: {', '.join(parts)}{more}"


def read_image(path: str | Path, spec_input: ir.InputShape) -> np.ndarray:
    """One image file as uint8 (C, H, W) at the spec's input size and channels.

    Raises:
        DataError: the file is missing, not a regular file, or cannot be decoded.
    """
    return read_image_with_origin(path, spec_input)[0]


def read_image_with_origin(path: str | Path, spec_input: ir.InputShape
                           ) -> tuple[np.ndarray, str]:
    """:func:`read_image`, and what the file was (``"64x48 RGB"``, see :func:`conversion`)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such image")
    if not p.is_file():  # a FIFO or a device would block or never end
        raise DataError(f"{path}: not a regular file")
    try:
        return decode_with_origin(p, spec_input)
    except UNREADABLE as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None


def load_image(path: str | Path, spec_input: ir.InputShape) -> torch.Tensor:
    """:func:`read_image` as a tensor."""
    import torch

    return torch.from_numpy(read_image(path, spec_input))


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def class_dirs(root: Path) -> list[Path]:
    """Class folders of an image folder, sorted by name; hidden folders are not classes."""
    return sorted((d for d in root.iterdir() if d.is_dir() and _visible(d)), key=lambda d: d.name)


def image_files(class_dir: Path) -> list[Path]:
    """Image files of one class (nested folders included), skipping hidden files and folders.
    Entries that are not regular files (a FIFO, a socket, a broken link) are listed too, so
    that they are reported as unreadable instead of vanishing; nothing here opens them."""
    return sorted(p for p in class_dir.rglob("*") if not p.is_dir() and _visible(p)
                  and p.suffix.lower() in IMAGE_SUFFIXES
                  and all(_visible(q) for q in p.relative_to(class_dir).parents if q != Path(".")))


def check_folder(raw: str | Path) -> None:
    """Raises DataError unless ``raw`` names an existing folder."""
    if str(raw) == "":
        raise DataError("the data folder is empty text; give a folder DIR/<class>/<image>")
    root = Path(raw)
    if root.is_file():
        raise DataError(f"{root}: is a file; the data must be a folder DIR/<class>/<image>")
    if not root.is_dir():
        hint = ""
        try:  # a misspelt name: the closest folder beside where it was looked for
            import difflib

            parent = root.parent
            siblings = sorted(d.name for d in parent.iterdir() if d.is_dir()) \
                if parent.is_dir() else []
            close = difflib.get_close_matches(root.name, siblings, n=1, cutoff=0.6)
            hint = f"; did you mean {parent / close[0]}?" if close else ""
        except OSError:
            pass
        raise DataError(f"{root}: no such data folder{hint}")


def loose_images(root: Path) -> int:
    """Image files directly in ``root`` (outside any class folder), which training ignores."""
    return sum(1 for p in root.iterdir() if p.is_file() and _visible(p)
               and p.suffix.lower() in IMAGE_SUFFIXES)


def is_split(root: Path) -> bool:
    """The folder holds exactly ``train/`` and ``val/``."""
    return [d.name for d in class_dirs(root)] == list(SPLIT_FOLDERS)


def class_names(path: str | Path | None) -> list[str]:
    """The class names :func:`scan` would find at ``path``, without decoding an image
    (the summary of a ``classes from data`` head uses it before training)."""
    if path is None:
        return [str(i) for i in range(10)]
    check_folder(path)
    root = Path(path)
    return [d.name for d in class_dirs(root / "train" if is_split(root) else root)]


def list_folder(root: str | Path, min_classes: int = 2) -> FileList:
    """The image files of ``root/<class>/...``, classes in sorted order.

    Raises:
        DataError: the folder is missing, has fewer than ``min_classes`` class folders, or
            has a class folder without images.
    """
    check_folder(root)
    root = Path(root)
    dirs = class_dirs(root)
    if len(dirs) < min_classes:
        loose = loose_images(root)
        if loose and not dirs:
            raise DataError(f"{root}: holds {loose} image(s) but no class folders; images "
                            "must be in class subfolders: DIR/<class>/<image> (for example "
                            f"{root / 'cats' / 'a.jpg'}, {root / 'dogs' / 'b.jpg'})")
        raise DataError(f"{root}: found {len(dirs)} class folder(s); an image folder needs "
                        f"at least {'two' if min_classes == 2 else min_classes}, laid out as "
                        "DIR/<class>/<image>")
    files, labels = [], []
    for label, d in enumerate(dirs):
        found = image_files(d)
        if not found:
            raise DataError(f"{d}: class folder has no images (PNG, JPEG, BMP or WebP)")
        files += [str(p) for p in found]
        labels += [label] * len(found)
    return FileList(files, labels, [d.name for d in dirs], str(root))


def scan(path: str | Path) -> FileList:
    """The file list of an image folder: ``DIR/<class>/<image>``, or ``DIR/train/<class>/...``
    and ``DIR/val/<class>/...`` (that split is kept; the classes are those of ``train/``).

    Raises:
        DataError: see :func:`list_folder`; or ``val/`` has a class ``train/`` lacks.
    """
    check_folder(path)
    root = Path(path)
    if not is_split(root):
        return list_folder(root)
    train = list_folder(root / "train")
    val = list_folder(root / "val", min_classes=1)
    extra = sorted(set(val.classes) - set(train.classes))
    if extra:
        raise DataError(f"{root / 'val'}: class folder(s) {', '.join(extra)} are not in "
                        f"{root / 'train'}; validation classes must be training classes")
    remap = [train.classes.index(c) for c in val.classes]
    return FileList(train.files + val.files, train.labels + [remap[v] for v in val.labels],
                    train.classes, str(root), [False] * len(train.files) + [True] * len(val.files))
