"""How long the fast commands take to start and finish, against importing PyTorch.

    python benchmarks/startup.py [--repeats 7]

Runs, interleaved and each ``--repeats`` times, in fresh processes: ``python -c "import
torch, torchvision"`` (the baseline), ``cnnspec data DIR`` (a folder of 2 x 20 PNGs),
``cnnspec predict RUN IMAGE`` (ONNX Runtime, the default), ``cnnspec predict --backend
torch``, ``check``, ``summary``, ``diff`` and ``fmt --check``; prints the median wall time of
each and its ratio to the baseline. Target (issue 14): ``data`` and ``predict`` under 0.5.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "lenet5.cnn"


def seconds(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        for c in ("a", "b"):
            (tmp / "data" / c).mkdir(parents=True)
            for i in range(20):
                Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(
                    tmp / "data" / c / f"{i}.png")
        image = str(tmp / "data" / "a" / "0.png")
        subprocess.run([py, "-m", "cnnspec", "compile", str(SPEC), "--train", "--epochs", "1",
                        "--out", str(tmp / "run")], check=True, capture_output=True)
        run = str(tmp / "run")
        cnn = [py, "-m", "cnnspec"]
        commands = {
            "import torch, torchvision": [py, "-c", "import torch, torchvision"],
            "data DIR": [*cnn, "data", str(tmp / "data")],
            "predict (ONNX Runtime)": [*cnn, "predict", run, image],
            "predict --backend torch": [*cnn, "predict", run, image, "--backend", "torch"],
            "check": [*cnn, "check", str(SPEC)],
            "summary": [*cnn, "summary", str(SPEC)],
            "diff": [*cnn, "diff", str(ROOT / "specs" / "vgg16.cnn"),
                     str(ROOT / "specs" / "vgg16-transition.cnn")],
            "fmt --check": [*cnn, "fmt", "--check", str(SPEC)],
        }
        times = {name: [] for name in commands}
        for name, cmd in commands.items():  # warm the file cache once
            seconds(cmd)
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                times[name].append(seconds(cmd))
    base = statistics.median(times["import torch, torchvision"])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.repeats} "
          "interleaved runs, fresh process each")
    for name, t in times.items():
        ratio = statistics.median(t) / base
        target = " (target < 0.5)" if name in ("data DIR", "predict (ONNX Runtime)") else ""
        print(f"{name:28} {statistics.median(t):6.2f} s   {ratio:5.2f} x import torch{target}")


if __name__ == "__main__":
    main()
