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


def plot_confusion(matrix, classes: list[str], path: Path, title: str) -> None:
    """The confusion matrix (rows true, columns predicted) with counts, as a PNG."""
    plt = _figure()
    n = len(classes)
    size = max(4.0, 0.5 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted", ylabel="true", title=f"{title}: validation confusion matrix")
    peak = matrix.max().item() or 1
    for i in range(n):
        for j in range(n):
            v = matrix[i, j].item()
            ax.text(j, i, str(v), ha="center", va="center",
                    color="white" if v > peak / 2 else "black", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
