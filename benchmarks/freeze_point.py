"""Where to cut? `cnnspec probe`'s suggested freeze point, measured against freezing every
conv layer and freezing nothing, on new classes that resemble the source and on new
classes that do not.

1. Source: specs/alexnet-custom.cnn (five convs) with a 5-class head, trained on the embedded
   digits 0-4 (400 images each).
2. Two targets, each 5 classes with 30 training images per class (``train/``) and 200
   validation images per class (``val/``):
   - "resembles": the digits 5-9 (other digits: same strokes, other shapes);
   - "differs": generated textures and shapes (horizontal stripes, vertical stripes,
     checkerboards, discs, rings; random frequency, phase, size, contrast and noise).
3. ``cnnspec probe`` on the target's training images only (its val/ is never seen),
   giving a suggested ``freeze up to L``.
4. Four runs per target and seed, same epochs, optimizer and seed: (a) from scratch;
   (b) transferred, nothing frozen; (c) transferred, ``freeze up to C5`` (every conv);
   (d) transferred, the probe's suggestion. Accuracy: validation after the last epoch.

Also draws the pictures of docs/insight.md (feature maps, filters, Grad-CAM, probe plots,
the range test) from the same source run. Writes benchmarks/results/freeze_point.json and
docs/img/insight-*.png (but insight-lr-find.png, which is LeNet-5's: `cnnspec lr-find
specs/lenet5.cnn`) and prints a markdown table. Numbers are reported, never asserted.

    python benchmarks/freeze_point.py [--seeds 3] [--epochs 15] [--source-epochs 8]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from transfer import spec_text, write_folder  # benchmarks/transfer.py: the same source spec

import cnnspec
from cnnspec.insight import feature_maps, gradcam, lr_find, probe

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
SOURCE, RESEMBLES = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
TEXTURES = ("hstripes", "vstripes", "checker", "disc", "ring")


def digits() -> tuple[np.ndarray, np.ndarray]:
    with resources.files("cnnspec.embedded").joinpath("digits.npz").open("rb") as f:
        npz = np.load(f, allow_pickle=False)
        return npz["images"], npz["labels"]


def texture(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One 28x28 uint8 image of ``kind``: random geometry, contrast and Gaussian noise."""
    y, x = np.mgrid[0:28, 0:28].astype(np.float64)
    period, phase = rng.uniform(4, 9), rng.uniform(0, 2 * np.pi)
    cy, cx, r = rng.uniform(9, 19), rng.uniform(9, 19), rng.uniform(5, 10)
    dist = np.hypot(y - cy, x - cx)
    img = {
        "hstripes": np.sin(2 * np.pi * y / period + phase) > 0,
        "vstripes": np.sin(2 * np.pi * x / period + phase) > 0,
        "checker": (np.sin(2 * np.pi * x / period + phase) > 0)
        ^ (np.sin(2 * np.pi * y / period + phase) > 0),
        "disc": dist < r,
        "ring": np.abs(dist - r) < rng.uniform(1.0, 2.5),
    }[kind].astype(np.float64)
    img = img * rng.uniform(120, 255) + rng.normal(0, 25, img.shape)
    return img.clip(0, 255).astype(np.uint8)


def write_textures(root: Path, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for kind in TEXTURES:
        d = root / kind
        d.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(texture(kind, rng)).save(d / f"{i:04d}.png")


def pictures(tmp: Path, run: Path, images, labels) -> None:
    """The pictures of docs/insight.md, from the source run."""
    IMG.mkdir(parents=True, exist_ok=True)
    sample = tmp / "three.png"
    Image.fromarray(images[np.flatnonzero(labels == 3)[-1]]).save(sample)
    f = feature_maps(run, sample, layers=["C1", "C3"], out=tmp / "features")
    shutil.copy(tmp / "features" / "C1.png", IMG / "insight-features-C1.png")
    shutil.copy(tmp / "features" / "C3.png", IMG / "insight-features-C3.png")
    shutil.copy(f["filters"], IMG / "insight-filters-C1.png")
    gradcam(run, sample, out=IMG / "insight-gradcam-3.png")  # the predicted class
    gradcam(run, sample, class_name="digit1", out=IMG / "insight-gradcam-1.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--source-epochs", type=int, default=8)
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--pictures-only", action="store_true",
                    help="Train the source, draw the pictures and probe; no fine-tuning runs.")
    args = ap.parse_args()
    quiet = Console(quiet=True)
    images, labels = digits()
    report: dict = {"torch": torch.__version__, "epochs": args.epochs,
                    "per_class": args.per_class, "targets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_folder(tmp / "source", images, labels, SOURCE, 0, 400)
        write_folder(tmp / "resembles" / "train", images, labels, RESEMBLES, 0, args.per_class)
        write_folder(tmp / "resembles" / "val", images, labels, RESEMBLES, 250, 200)
        write_textures(tmp / "differs" / "train", args.per_class, seed=1)
        write_textures(tmp / "differs" / "val", 200, seed=2)
        t0 = time.perf_counter()
        src = cnnspec.train(cnnspec.loads(spec_text(5, args.source_epochs, 7, None, None)),
                            data=tmp / "source", out=tmp / "source-run", export=False,
                            console=quiet)
        report["source"] = {"classes": list(SOURCE), "val_accuracy": src.final["val_accuracy"],
                            "wall_s": round(time.perf_counter() - t0, 1)}
        print(f"source: digits {SOURCE}, val accuracy {src.final['val_accuracy']:.2%}")
        pictures(tmp, tmp / "source-run", images, labels)
        lr = lr_find(cnnspec.loads(spec_text(5, 1, 7, None, None)), data=tmp / "source",
                     out=args.out / "lr-find-source.png")
        report["lr_find"] = {"suggested": lr["suggested"], "steepest": lr["steepest"],
                             "spec_lr": 0.001, "stopped": lr["stopped"]}
        print(f"lr-find: suggested {lr['suggested']:.2g} (the spec uses 0.001)")
        for target in ("resembles", "differs"):
            p = probe(tmp / "source-run", tmp / target / "train", IMG / f"insight-probe-{target}.png")
            rule = p["line"]
            print(f"{target}: probe " + ", ".join(f"{r['layer']} {r['val_accuracy']:.0%}"
                                                  for r in p["rows"]) + f" -> {rule}")
            variants = {"a) from scratch": None, "b) nothing frozen": "",
                        "c) freeze up to C5 (every conv)": "freeze up to C5",
                        f"d) probe's suggestion: {rule}": rule}
            runs: dict[str, list[float]] = {v: [] for v in variants}
            for seed in range(0 if args.pictures_only else args.seeds):
                for label, r in variants.items():
                    spec = cnnspec.loads(spec_text(5, args.epochs, seed, r, tmp / "source-run"))
                    run = cnnspec.train(spec, data=tmp / target, out=tmp / f"{target}{seed}{label[0]}",
                                        export=False, console=quiet)
                    runs[label].append(run.final["val_accuracy"])
                    print(f"  seed {seed} {label}: {run.final['val_accuracy']:.2%}")
            report["targets"][target] = {"probe": p["rows"], "suggested": rule, "runs": runs}
    if args.pictures_only:
        return
    print("\n| target | variant | val accuracy, mean (min-max) |")
    print("|---|---|---:|")
    for target, t in report["targets"].items():
        for label, accs in t["runs"].items():
            print(f"| {target} | {label} | {statistics.mean(accs):.1%} "
                  f"({min(accs):.1%}-{max(accs):.1%}) |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "freeze_point.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / 'freeze_point.json'} and {IMG}/insight-*.png")


if __name__ == "__main__":
    main()
