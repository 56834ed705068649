"""Pictures of what a network learned, with matplotlib (Agg): feature maps, first-layer
filters, Grad-CAM overlays, probe accuracy by layer and the learning-rate range test.

Every picture is written atomically (:func:`cnnspec.files.atomic_write`) as a PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import CnnSpecError
from ..files import atomic_write
from .plots import _figure

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg"}
"""Picture formats by file suffix (matplotlib writes each)."""


def picture_format(path: Path) -> str:
    """The format the suffix of ``path`` asks for.

    Raises:
        CnnSpecError: the suffix is not one of :data:`FORMATS`.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise CnnSpecError(f"{path}: pictures are written as {', '.join(FORMATS)}; give the "
                           "file one of these suffixes")
    return FORMATS[suffix]


def picture_path(path: str | Path) -> Path:
    """An output picture's path, checked before any work: a file that can be written
    (:func:`cnnspec.files.check_target`) with a suffix of :data:`FORMATS`.

    Raises:
        CnnSpecError: either check fails.
    """
    from ..files import check_target

    checked = check_target(path)
    picture_format(checked)
    return checked


def _save(plt, fig, path: Path, dpi: int = 100) -> Path:
    fmt = picture_format(path)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi))
    finally:
        plt.close(fig)
    return Path(path)


def tile(maps: np.ndarray, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """(K, H, W) or (K, H, W, 3) values in [0, 1] -> one image, a near-square grid of the K
    tiles separated by ``pad`` pixels of ``fill`` (NaN: drawn in the colour map's "bad"
    colour, never mistaken for a value), row by row.

    >>> tile(np.zeros((3, 2, 2))).shape
    (5, 5)
    """
    k, h, w = maps.shape[:3]
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, *maps.shape[3:]), fill)
    for i in range(k):
        r, c = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = maps[i]
    return out


def unit_range(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``x`` scaled to [0, 1] over ``axes`` (min -> 0, max -> 1); constant slices -> 0."""
    lo = x.min(axis=axes, keepdims=True)
    span = x.max(axis=axes, keepdims=True) - lo
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1), 0.0)


def feature_grid(maps: np.ndarray, path: Path, title: str) -> Path:
    """A layer's output for one image, (C, H, W) float, as a grid of C maps, each scaled to
    its own [0, 1] (viridis: dark = low, yellow = high)."""
    plt = _figure()
    grid = tile(unit_range(maps, (1, 2)), fill=np.nan)
    fig, ax = plt.subplots(figsize=_size(grid.shape))
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    ax.imshow(grid, cmap=cmap, interpolation="nearest", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    return _save(plt, fig, path)


def _size(shape) -> tuple[float, float]:
    """A figure size (inches) for a grid of ``shape`` pixels: at most 10 inches wide."""
    h, w = shape[:2]
    width = min(10.0, max(3.5, w / 40))
    return width, max(2.5, width * h / w + 0.5)


def filter_grid(weights: np.ndarray, path: Path, title: str) -> Path:
    """First-layer filters (out, in, kH, kW): RGB images when in = 3 (each filter scaled to
    [0, 1] over its three channels), otherwise one grey tile per (filter, input channel)."""
    plt = _figure()
    o, i, kh, kw = weights.shape
    if i == 3:
        grid = tile(unit_range(weights, (1, 2, 3)).transpose(0, 2, 3, 1))
        cmap = None
    else:
        grid = tile(unit_range(weights.reshape(o * i, kh, kw), (1, 2)), fill=np.nan)
        cmap = plt.get_cmap("gray").with_extremes(bad="#9bb7d4")  # borders: not a weight
    fig, ax = plt.subplots(figsize=_size(grid.shape))
    ax.imshow(grid, cmap=cmap, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    return _save(plt, fig, path)


def gradcam_figure(image: np.ndarray, cam: np.ndarray, path: Path, title: str) -> Path:
    """Three panels: the input image (uint8 (C, H, W)), the Grad-CAM map ((H, W) in [0, 1],
    jet: red = most evidence for the class) and the map over the image."""
    plt = _figure()
    rgb = image.shape[0] in (3, 4)  # other channel counts: the first channel, in grey
    shown = image[:3].transpose(1, 2, 0) if rgb else image[0]
    cmap = None if rgb else "gray"
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8))
    axes[0].imshow(shown, cmap=cmap, interpolation="nearest")
    axes[0].set_title("input")
    axes[1].imshow(cam, cmap="jet", vmin=0, vmax=1, interpolation="bilinear")
    axes[1].set_title("Grad-CAM")
    axes[2].imshow(shown, cmap=cmap, interpolation="nearest")
    axes[2].imshow(cam, cmap="jet", vmin=0, vmax=1, alpha=0.45, interpolation="bilinear")
    axes[2].set_title("overlay")
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    return _save(plt, fig, path)


def probe_plot(rows: list[dict], chance: float, suggested: str | None, path: Path,
               title: str) -> Path:
    """Held-out accuracy (%) of the linear probe at each layer, with chance level and the
    suggested freeze point marked."""
    plt = _figure()
    names = [r["layer"] for r in rows]
    acc = [100 * r["val_accuracy"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(rows) + 2.5), 3.8))
    ax.plot(range(len(rows)), acc, marker="o", label="linear probe, held-out images")
    ax.axhline(100 * chance, color="grey", linestyle="--", label=f"chance ({100 * chance:.1f}%)")
    if suggested in names:
        k = names.index(suggested)
        ax.plot([k], [acc[k]], marker="*", markersize=16, color="tab:red", linestyle="none",
                label=f"suggested: freeze up to {rows[k]['freeze']}")
    ax.set_xticks(range(len(rows)), names, rotation=45 if len(rows) > 8 else 0)
    ax.set(ylabel="accuracy (%)", xlabel="features taken after layer", ylim=(0, 100))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(plt, fig, path)


def diff_plot(diff, path: Path) -> Path:
    """The changed, added and removed top-level layers of a :class:`~.diff.Diff`: parameters
    (left) and MACs (right) of A and B side by side, with the totals in the title; an added
    layer is marked +, a removed one -."""
    rows = [r for r in diff.changed if r.depth == 0]
    if not rows:
        raise CnnSpecError(f"{diff.a['network']} and {diff.b['network']} have the same layers; "
                           "there is no change to plot")
    plt = _figure()
    labels = [f"+ {r.name_b}" if r.status == "added" else f"- {r.name_a}"
              if r.status == "removed" else r.name_a if r.name_a == r.name_b
              else f"{r.name_a} → {r.name_b}" for r in rows]
    y = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, max(2.5, 0.42 * len(rows) + 1.6)), sharey=True)
    for ax, key, unit in ((axes[0], "params", "parameters"), (axes[1], "macs", "MACs per image")):
        a = [getattr(r, f"{key}_a") for r in rows]
        b = [getattr(r, f"{key}_b") for r in rows]
        ax.barh(y - 0.2, a, height=0.4, label=f"A: {diff.a['network']}", color="tab:grey")
        ax.barh(y + 0.2, b, height=0.4, label=f"B: {diff.b['network']}", color="tab:blue")
        ax.set(xlabel=unit)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(y, labels)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=8, loc="lower right")
    t = diff.totals
    fig.suptitle(f"{diff.a['network']} → {diff.b['network']}: parameters "
                 f"{t['params_delta']:+,} ({t['params_pct']:+.1f}%), MACs "
                 f"{t['macs_pct']:+.1f}% per image", fontsize=10)
    return _save(plt, fig, path)


def lr_plot(lrs: list[float], losses: list[float], smoothed: list[float],
            suggestion: float | None, path: Path, title: str) -> Path:
    """Training loss against the learning rate (log axis): raw per step and smoothed, the
    suggested learning rate as a vertical line."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(lrs, losses, alpha=0.3, label="loss per step")
    ax.plot(lrs, smoothed, label="smoothed loss")
    if suggestion is not None:
        ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested lr {suggestion:.2g}")
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(max(finite), 4 * finite[0]) * 1.1)
    ax.set(xscale="log", xlabel="learning rate", ylabel="loss (cross-entropy)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(plt, fig, path)
