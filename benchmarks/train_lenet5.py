"""Benchmark the main job: LeNet-5 (specs/lenet5.cnn) on the embedded digits.

Records wall time, training images/s per epoch and the final validation accuracy,
and writes them as JSON (default benchmarks/results/train_lenet5.json). Not a test:
these machines are shared and noisy, so numbers are reported, never asserted.

    python benchmarks/train_lenet5.py [--device cpu|cuda] [--epochs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import cnnspec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_lenet5.json")
    args = ap.parse_args()

    spec = cnnspec.load(ROOT / "specs" / "lenet5.cnn")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = cnnspec.train(spec, out=Path(tmp) / "run", epochs=args.epochs, device=args.device)
    wall = time.perf_counter() - t0
    ips = [m["images_per_s"] for m in run.metrics]
    result = {
        "spec": "specs/lenet5.cnn",
        "device": str(run.model.C1.weight.device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "epochs": len(run.metrics),
        "wall_s_total": round(wall, 2),
        "wall_s_training_loop": round(run.seconds, 2),
        "train_images_per_s_median": round(statistics.median(ips), 1),
        "train_images_per_s_per_epoch": [round(v, 1) for v in ips],
        "val_accuracy": run.final["val_accuracy"],
        "onnx_relative_error": run.export.relative_error if run.export else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "train_images_per_s_per_epoch"}, indent=2))


if __name__ == "__main__":
    main()
