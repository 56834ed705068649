"""fp32, bf16 and fp16 side by side: a user's LeNet-5 run (specs/lenet5.cnn, the embedded
digits, augmentation as the spec has it, its DataLoader worker) for one epoch in each
precision, interleaved and repeated, median images/s per precision and the ratio to fp32.
On a CPU without bf16/fp16 units (x86: no avx512_bf16 / amx_bf16, avx512_fp16 / amx_fp16)
PyTorch converts every operation, and mixed precision is slower than fp32; training says so
before its first epoch (cnnspec.training.performance.cpu_precision_note). Not a test: the
numbers are printed, never asserted.

    python benchmarks/precision.py [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

import cnnspec
from cnnspec.training.performance import CPU_UNITS, cpu_precision_note

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    spec = cnnspec.load(ROOT / "specs" / "lenet5.cnn")
    speeds: dict[str, list[float]] = {"fp32": [], "bf16": [], "fp16": []}
    for _ in range(args.repeats):
        for precision, values in speeds.items():  # interleaved: a busy spell hits all alike
            with tempfile.TemporaryDirectory() as tmp:
                run = cnnspec.train(spec, out=Path(tmp) / "run", epochs=1, export=False,
                                    overrides={"precision": precision}, device=args.device)
            values.append(run.final["images_per_s"])
    base = statistics.median(speeds["fp32"])
    device = torch.device(args.device)
    print(f"LeNet-5, 1 epoch of 4,000 images, {args.repeats} interleaved repeats, device "
          f"{args.device}, torch {torch.__version__}")
    print("| precision | images/s (median) | vs fp32 | CPU units |")
    print("|---|---:|---:|---|")
    for precision, values in speeds.items():
        units = ("-" if precision == "fp32" or device.type != "cpu" else
                 "missing" if cpu_precision_note(precision, device) else
                 "present (" + " / ".join(CPU_UNITS[precision]) + ")")
        m = statistics.median(values)
        print(f"| {precision} | {m:,.0f} | {m / base:.2f} | {units} |")


if __name__ == "__main__":
    main()
