"""ONNX Runtime vs eager PyTorch inference on the CPU, at batch 1 and 32.

    python benchmarks/onnx_cpu.py [--repeats 5]

For each network: images/s of the built module in eval mode (float32, torch.no_grad) and of
its ``model.onnx`` on ONNX Runtime's CPU provider with cnnspec's session options (graph
optimisation level ALL, intra-op threads = torch's), measured interleaved, median of repeats.
Target (issue 12): ORT/eager >= 1.0 at batch 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu import infer_rows, load_spec

NETWORKS = ("lenet5", "alexnet-custom", "resnet18")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--networks", nargs="*", default=list(NETWORKS))
    args = p.parse_args()
    args.infer_steps = 10
    t0 = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
          f"{os.cpu_count()} CPUs; median of {args.repeats} interleaved repeats")
    print(f"{'network':16} {'batch':>5} {'eager img/s':>12} {'ORT img/s':>10} {'ORT/eager':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for net in args.networks:
            spec = load_spec(net, None)
            for row in infer_rows(net, spec, args, "cpu", Path(tmp), batches=(1, 32)):
                _, _, _, batch, eager, ratio, _ = row
                target = "  (target >= 1.0)" if batch == 1 else ""
                print(f"{net:16} {batch:5d} {eager:12,.1f} {eager * ratio:10,.1f} "
                      f"{ratio:9.2f}{target}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
