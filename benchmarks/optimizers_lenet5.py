"""SGD with the lecture's step schedule vs Adam, on LeNet-5 and the embedded digits.

Trains specs/lenet5.cnn (SGD lr 0.1 momentum 0.9; from epoch 10 lr 0.01, from 15 0.001)
and specs/lenet5-adam.cnn (Adam lr 1e-3, x0.1 at epochs 10 and 15) one after the other in
one process with the same seed, split and augmentation, and writes both curves side by
side (benchmarks/results/optimizers_lenet5.png: validation accuracy, training loss and
learning rate by epoch) and the numbers as JSON. Not a test: numbers are reported, never
asserted (these machines are shared and noisy).

    python benchmarks/optimizers_lenet5.py [--epochs N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import cnnspec

ROOT = Path(__file__).resolve().parents[1]
SPECS = {"SGD + step schedule": "lenet5.cnn", "Adam + multistep": "lenet5-adam.cnn"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, file in SPECS.items():
            spec = cnnspec.load(ROOT / "specs" / file)
            t0 = time.perf_counter()
            run = cnnspec.train(spec, out=Path(tmp) / file, epochs=args.epochs, device=args.device,
                                export=False)
            results[label] = {
                "spec": f"specs/{file}", "wall_s": round(time.perf_counter() - t0, 1),
                "val_accuracy": run.final["val_accuracy"],
                "best_val_accuracy": max(m["val_accuracy"] for m in run.metrics),
                "epochs": [{k: m[k] for k in ("epoch", "lr", "train_loss", "val_loss",
                                              "val_accuracy")} for m in run.metrics]}
            print(f"{label}: val accuracy {run.final['val_accuracy']:.2%} "
                  f"in {results[label]['wall_s']} s")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for label, r in results.items():
        ep = [m["epoch"] for m in r["epochs"]]
        axes[0].plot(ep, [m["val_accuracy"] for m in r["epochs"]], marker="o", ms=3, label=label)
        axes[1].plot(ep, [m["train_loss"] for m in r["epochs"]], marker="o", ms=3, label=label)
        axes[2].plot(ep, [m["lr"] for m in r["epochs"]], marker="o", ms=3, label=label)
    axes[0].set(title="validation accuracy", xlabel="epoch", ylim=(0.9, 1.0))
    axes[1].set(title="training loss (cross-entropy)", xlabel="epoch", yscale="log")
    axes[2].set(title="learning rate", xlabel="epoch", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("LeNet-5 on 4,000/1,000 embedded MNIST digits: SGD vs Adam (same seed)")
    fig.tight_layout()
    fig.savefig(args.out / "optimizers_lenet5.png", dpi=110)
    (args.out / "optimizers_lenet5.json").write_text(json.dumps(
        {"torch": torch.__version__, "threads": torch.get_num_threads(), "runs": results},
        indent=2) + "\n")
    print(f"wrote {args.out / 'optimizers_lenet5.png'} and optimizers_lenet5.json")


if __name__ == "__main__":
    main()
