"""Training pictures with matplotlib (Agg backend, no screen needed): curves and confusion."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_write


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(metrics: list[dict], path: Path, title: str) -> None:
    """Loss, accuracy and learning rate by epoch, side by side, as a PNG."""
    plt = _figure()
    epochs = [m["epoch"] for m in metrics]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(epochs, [m["train_loss"] for m in metrics], label="train")
    axes[0].plot(epochs, [m["val_loss"] for m in metrics], label="validation")
    axes[0].set(title="loss (cross-entropy)", xlabel="epoch")
    axes[1].plot(epochs, [100 * m["train_accuracy"] for m in metrics], label="train")
    axes[1].plot(epochs, [100 * m["val_accuracy"] for m in metrics], label="validation")
    axes[1].set(title="accuracy (%)", xlabel="epoch")
    axes[2].step(epochs, [m["lr"] for m in metrics], where="post")
    axes[2].set(title="learning rate", xlabel="epoch", yscale="log")
    for ax in axes[:2]:
        ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


LABELLED = 50
"""Up to this many classes the confusion picture names them on its axes."""
COUNTED = 30
"""Up to this many classes each cell shows its count (beyond, the colour alone: the cost of
drawing stays linear in the cells, and a 1,000-class run's picture takes seconds)."""


def plot_confusion(matrix, classes: list[str], path: Path, title: str) -> None:
    """The confusion matrix (rows true, columns predicted) as a PNG: counts in the cells up
    to :data:`COUNTED` classes, names on the axes up to :data:`LABELLED` (beyond, class
    indices, the names being classes.json's in order). A name the font cannot draw (CJK
    without a CJK font, control characters, bytes that are not UTF-8) is shown as its
    index, never as empty boxes, and matplotlib's warnings are not shown."""
    import warnings

    plt = _figure()
    n = len(classes)
    size = min(max(4.0, 0.5 * n + 2), 14.0)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix.numpy(), cmap="Blues", interpolation="nearest")
    if n <= LABELLED:
        labels = _drawable(classes)
        ax.set_xticks(range(n), labels, rotation=45, ha="right")
        ax.set_yticks(range(n), labels)
        axes = ("predicted", "true")
    else:
        axes = ("predicted (class index, as in classes.json)", "true (class index)")
    ax.set(xlabel=axes[0], ylabel=axes[1], title=f"{title}: validation confusion matrix")
    if n <= COUNTED:
        peak = matrix.max().item() or 1
        for i in range(n):
            for j in range(n):
                v = matrix[i, j].item()
                ax.text(j, i, str(v), ha="center", va="center",
                        color="white" if v > peak / 2 else "black", fontsize=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig.tight_layout()
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _drawable(names: list[str]) -> list[str]:
    """Each name, or ``#i`` where matplotlib's font has no glyph for one of its characters
    (or it holds control characters or undecodable bytes); long names shortened."""
    import unicodedata

    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
    chars = set(font.get_charmap())
    out = []
    for i, name in enumerate(names):
        ok = all(ord(ch) in chars and unicodedata.category(ch)[0] != "C" for ch in name)
        text = name if ok and name else f"#{i}"
        out.append(text if len(text) <= 24 else text[:23] + "...")
    return out
