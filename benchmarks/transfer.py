"""Does transfer learning pay? The lecture's claim, measured on real digits.

1. Source: specs/alexnet-custom.cnn (the course's custom AlexNet) with a 7-class head is
   trained on 7 digit classes (0 1 2 3 5 6 8, 400 images each) of ../shared/data.
2. Target: the 3 held-out classes (4 7 9) with only 30 training images per class
   (``train/``), validated on 300 other images per class (``val/``).
3. Four runs on the target, same epochs, same seed, same optimizer:
   (a) from scratch; (b) transferred, ``freeze up to C5`` (the last conv);
   (c) transferred, ``train last 2 conv``; (d) transferred, everything retrained.
   Repeated for several seeds; accuracy is the validation accuracy after the last epoch.

Writes benchmarks/results/transfer.json and docs/img/transfer.png, and prints a markdown
table (pasted into docs/transfer.md). Not a test: numbers are reported, never asserted.

    python benchmarks/transfer.py [--seeds 3] [--epochs 15] [--source-epochs 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from rich.console import Console

import cnnspec

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT.parent / "shared" / "data" / "digits" / "mnist5k.npz"
SOURCE_CLASSES, TARGET_CLASSES = (0, 1, 2, 3, 5, 6, 8), (4, 7, 9)
VARIANTS = {
    "a) from scratch": None,
    "b) freeze up to C5 (last conv)": "freeze up to C5",
    "c) train last 2 conv": "train last 2 conv",
    "d) retrain everything": "",
}


def write_folder(root: Path, images, labels, classes, start: int, count: int) -> None:
    for c in classes:
        d = root / f"digit{c}"
        d.mkdir(parents=True)
        for i, idx in enumerate(np.flatnonzero(labels == c)[start:start + count]):
            Image.fromarray(images[idx]).save(d / f"{i:04d}.png")


def spec_text(head: int, epochs: int, seed: int, transfer: str | None, source: Path | None) -> str:
    text = (ROOT / "specs" / "alexnet-custom.cnn").read_text()
    text = text.replace("dense 3 ", f"dense {head} ")  # the head: one output per class
    text = text.replace("    epochs 15\n", f"    epochs {epochs}\n").replace("    seed 7\n",
                                                                              f"    seed {seed}\n")
    if transfer is not None:
        text += f'\ntransfer:\n    from "{source}"\n    classes from data\n'
        text += f"    {transfer}\n" if transfer else ""
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--source-epochs", type=int, default=8)
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    quiet = Console(quiet=True)
    npz = np.load(DIGITS, allow_pickle=False)
    images, labels = npz["images"], npz["labels"]
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_folder(tmp / "source", images, labels, SOURCE_CLASSES, 0, 400)
        write_folder(tmp / "target" / "train", images, labels, TARGET_CLASSES, 0, args.per_class)
        write_folder(tmp / "target" / "val", images, labels, TARGET_CLASSES, 200, 300)
        t0 = time.perf_counter()
        src = cnnspec.train(cnnspec.loads(spec_text(7, args.source_epochs, 7, None, None)),
                            data=tmp / "source", out=tmp / "source-run", export=False, console=quiet)
        source = {"classes": list(SOURCE_CLASSES), "images": 7 * 400,
                  "epochs": args.source_epochs, "val_accuracy": src.final["val_accuracy"],
                  "wall_s": round(time.perf_counter() - t0, 1)}
        print(f"source: 7 classes, val accuracy {src.final['val_accuracy']:.2%} "
              f"in {source['wall_s']} s")
        for seed in range(args.seeds):
            for label, rule in VARIANTS.items():
                spec = cnnspec.loads(spec_text(3, args.epochs, seed, rule, tmp / "source-run"))
                t0 = time.perf_counter()
                run = cnnspec.train(spec, data=tmp / "target", out=tmp / f"t{seed}{label[0]}",
                                    export=False, console=quiet)
                results[label].append({
                    "seed": seed, "val_accuracy": run.final["val_accuracy"],
                    "wall_s": round(time.perf_counter() - t0, 2),
                    "train_loop_s": round(run.seconds, 2),
                    "trainable_params": sum(p.numel() for p in run.model.parameters()
                                            if p.requires_grad),
                    "curve": [m["val_accuracy"] for m in run.metrics]})
                print(f"seed {seed} {label}: {run.final['val_accuracy']:.2%} "
                      f"({results[label][-1]['wall_s']} s)")

    rows = []
    for label, runs in results.items():
        accs = [r["val_accuracy"] for r in runs]
        rows.append({"variant": label, "mean_val_accuracy": statistics.mean(accs),
                     "min": min(accs), "max": max(accs),
                     "mean_wall_s": statistics.mean(r["wall_s"] for r in runs),
                     "trainable_params": runs[0]["trainable_params"]})
    print("\n| variant | val accuracy, mean (min-max) | wall time per run | trainable params |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['mean_val_accuracy']:.1%} ({r['min']:.1%}-{r['max']:.1%})"
              f" | {r['mean_wall_s']:.1f} s | {r['trainable_params']:,} |")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    ax1.barh([r["variant"] for r in rows][::-1], [r["mean_val_accuracy"] for r in rows][::-1],
             xerr=[[r["mean_val_accuracy"] - r["min"] for r in rows][::-1],
                   [r["max"] - r["mean_val_accuracy"] for r in rows][::-1]], color="tab:blue")
    ax1.set(xlim=(0.3, 1.0), xlabel=f"validation accuracy after {args.epochs} epochs "
            f"(mean, min-max over {args.seeds} seeds)")
    for label, runs in results.items():
        curve = np.mean([r["curve"] for r in runs], axis=0)
        ax2.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, label=label)
    ax2.set(xlabel="epoch", ylabel="validation accuracy (mean over seeds)", ylim=(0.3, 1.0))
    ax2.grid(alpha=0.3)
    ax2.legend(loc="lower right")
    fig.suptitle(f"Digits {TARGET_CLASSES} with {args.per_class} training images per class: "
                 f"scratch vs transfer from a network trained on {SOURCE_CLASSES}")
    fig.tight_layout()
    img = ROOT / "docs" / "img" / "transfer.png"
    img.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(img, dpi=100)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "transfer.json").write_text(json.dumps(
        {"torch": torch.__version__, "threads": torch.get_num_threads(), "epochs": args.epochs,
         "per_class": args.per_class, "source": source, "summary": rows, "runs": results},
        indent=2) + "\n")
    print(f"wrote {img} and {args.out / 'transfer.json'}")


if __name__ == "__main__":
    main()
