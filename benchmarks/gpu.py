"""GPU training and inference speed of cnnspec's own training step, in one table.

    python benchmarks/gpu.py             # on a CUDA GPU: VGG-16 and ResNet-50, 224x224, batch 256
    python benchmarks/gpu.py --dry-run   # the same code at 32x32, batch 4, on the CPU (CI)

Rows:
- ``train``: images/s of :meth:`cnnspec.training.loop.Trainer.step` (the step the training
  loop runs: uint8 batch to the device, normalise, channels_last, bf16 autocast, forward,
  loss, backward, SGD step, schedule) on one batch kept on the device, so the data pipeline
  is left out; eager and ``compile on``. ``peak`` is the fraction of the device's measured
  bf16 matmul throughput reached: 6 x MACs/image x images/s / peak FLOP/s (a training step
  costs about 3 forward passes, each 2 FLOPs per MAC; Kaplan et al. 2020, section 2.1).
- ``infer``: images/s of the network in eval mode (eager, float32) vs the exported
  ``model.onnx`` on ONNX Runtime (CUDA provider on a GPU), at batch 1 and 64.

Timings are the median of ``--repeats`` interleaved repeats, each after warm-up steps
(compile's first steps compile); the device is synchronised before each clock read.
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cnnspec
from cnnspec.export import export_onnx, session
from cnnspec.training import Trainer
from cnnspec.training.api import prepare

NETWORKS = ("vgg16", "resnet50")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, n: int, repeats: int) -> float:
    """Measured bf16 matmul FLOP/s: 2 n^3 per (n x n) @ (n x n)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        times.append((time.perf_counter() - t0) / 10)
    return 2 * n**3 / statistics.median(times)


def load_spec(name: str, size: int | None):
    """The shipped spec, with its input side changed to ``size`` for a dry run."""
    path = ROOT / "specs" / f"{name}.cnn"
    text = path.read_text()
    if size is not None:
        text = re.sub(r"^input \d+x\d+x(\d+)", rf"input {size}x{size}x\1", text, flags=re.MULTILINE)
    return cnnspec.loads(text, str(path))


def trainer_for(spec, batch: int, compile_: bool, device: str, out: Path) -> Trainer:
    overrides = {"batch": batch, "precision": "bf16", "compile": compile_, "optimizer": "sgd",
                 "lr": 0.01, "workers": 0}
    trainer = prepare(spec, out, overrides=overrides, device=device)
    trainer.start_epoch(0)
    return trainer


def time_steps(trainer: Trainer, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Seconds per step over ``steps`` steps (the device drained before and after)."""
    sync(trainer.device)
    t0 = time.perf_counter()
    for i in range(steps):
        trainer.step(i, x, y)
    sync(trainer.device)
    return (time.perf_counter() - t0) / steps


def train_rows(name, spec, args, device, peak, out: Path) -> list[tuple]:
    trainers = {c: trainer_for(spec, args.batch, c, device, out / f"{name}-{c}")
                for c in (False, True)}
    shape = (args.batch, *spec.input.chw())
    x = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    seconds = {c: [] for c in trainers}
    for t in trainers.values():
        time_steps(t, x, y, args.warmup)  # compiles (compile on), autotunes (cudnn)
    for _ in range(args.repeats):  # interleaved: eager, compiled, eager, ...
        for c, t in trainers.items():
            seconds[c].append(time_steps(t, x, y, args.steps))
    rows = []
    for c, t in trainers.items():
        ips = args.batch / statistics.median(seconds[c])
        how = "bf16" + (" channels_last" if t.speed.channels_last else "") + (
            " compile" if c else "")
        rows.append((name, "train", how, args.batch, ips, 6 * cnnspec.infer_shapes(spec).macs * ips / peak,
                     f"compile {t.speed.compile}"))
    return rows


def infer_rows(name, spec, args, device, out: Path, batches=None) -> list[tuple]:
    """Eager (float32, eval mode) vs ONNX Runtime images/s at batch 1 and ``infer_batch``."""
    model = cnnspec.build(spec).to(device).eval()
    onnx_path = out / f"{name}.onnx"
    export_onnx(model, spec, onnx_path)
    sess = session(onnx_path, device=device)
    provider = sess.get_providers()[0].replace("ExecutionProvider", "")
    rows = []
    for batch in batches or (1, args.infer_batch):
        x = torch.rand((batch, *spec.input.chw()), device=device)
        xn = x.cpu().numpy()
        feed = {sess.get_inputs()[0].name: xn}

        def eager(x=x):
            with torch.no_grad():
                model(x)
            sync(torch.device(device))

        def ort(feed=feed):
            sess.run(None, feed)

        times = {"eager": [], "onnx": []}
        for f in (eager, ort):
            f()
            f()
        for _ in range(args.repeats):
            for key, f in (("eager", eager), ("onnx", ort)):
                t0 = time.perf_counter()
                for _ in range(args.infer_steps):
                    f()
                times[key].append((time.perf_counter() - t0) / args.infer_steps)
        e, o = (batch / statistics.median(times[k]) for k in ("eager", "onnx"))
        rows.append((name, "infer", f"eager fp32 vs ORT {provider}", batch, e, o / e, f"{o:,.0f} img/s ORT"))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (CI)")
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args()
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        sys.exit("no CUDA GPU here: run python benchmarks/gpu.py --dry-run for the CPU check")
    device = "cpu" if dry else "cuda"
    args.batch, args.size = (4, 32) if dry else (256, None)
    args.warmup, args.steps = (2, 2) if dry else (10, 20)
    args.infer_batch, args.infer_steps = (8, 2) if dry else (64, 20)
    args.repeats = args.repeats or (2 if dry else 3)
    t_start = time.perf_counter()
    dev = torch.device(device)
    peak = matmul_peak(dev, 256 if dry else 8192, args.repeats)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "CPU"
    print(f"{'dry run (CPU, 32x32, batch 4)' if dry else 'GPU run'}: {name}, torch "
          f"{torch.__version__}, measured bf16 matmul peak {peak / 1e12:.2f} TFLOP/s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for net in NETWORKS:
            spec = load_spec(net, args.size)
            rows += train_rows(net, spec, args, device, peak, Path(tmp))
            rows += infer_rows(net, spec, args, device, Path(tmp))
    print(f"{'network':10} {'what':6} {'how':34} {'batch':>5} {'img/s':>10} {'ratio':>7}  note")
    for net, what, how, batch, ips, ratio, note in rows:
        label = "of peak" if what == "train" else "ORT/eager"
        print(f"{net:10} {what:6} {how:34} {batch:5d} {ips:10,.1f} {ratio:7.3f}  {label}; {note}")
    print(f"({time.perf_counter() - t_start:.0f} s)")
    assert all(np.isfinite(r[4]) and r[4] > 0 for r in rows)


if __name__ == "__main__":
    main()
