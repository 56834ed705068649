"""Benchmark the training pipeline (issue 11): loop overhead, augmentation, feed ratio,
memory and threads, each as a ratio measured side by side in one run, interleaved, after a
warm-up, median of repeats. Numbers are reported, never asserted (shared, noisy machines).

    python benchmarks/pipeline.py [loop] [augment] [feed] [memory] [threads] [--repeats 5]

- loop: a cnnspec epoch (Trainer.train_epoch: steps, validation, checkpoint, progress) vs a
  plain PyTorch loop (randperm batches, same model, weights, optimizer, seed, validation),
  LeNet-5 on the embedded digits without augmentation; target <= 1.05, losses equal to 5
  decimals.
- augment: the same with the spec's augmentation (crop 32 pad 2, rotate 10) vs a plain loop
  using a DataLoader with the same number of workers and the same v2 transforms; <= 1.05.
- feed: images/s the DataLoader delivers (augmented) vs images/s training steps consume
  (batches already in memory), for every shipped small-image spec; >= 1.0.
- memory: peak RssAnon of the largest process while `cnnspec compile --train --epochs 1`
  trains a small network on 600 vs 3,000 RGB 160x160 JPEGs (fresh cache each); growth
  < 120 MiB.
- threads: training images/s with the default threads vs OMP_NUM_THREADS=1, each beside
  one busy process; >= 0.8.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _pipeline_parts import (
    feed_ratio,
    loop_pair,
    memory_growth,
    threads_ratio,
)


def median_ratio(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(median of a/b, median a, median b) over interleaved (a, b) timings."""
    return (statistics.median(a / b for a, b in pairs), statistics.median(a for a, _ in pairs),
            statistics.median(b for _, b in pairs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", nargs="*", default=["loop", "augment", "feed", "memory", "threads"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--memory-sizes", type=int, nargs="+", default=[600, 3000],
                    help="numbers of images for the memory measurement (add 30000 to check "
                    "the extrapolation)")
    args = ap.parse_args()
    os.environ.setdefault("CNNSPEC_CACHE_DIR", tempfile.mkdtemp(prefix="cnnspec-bench-cache-"))
    print(f"python {sys.version.split()[0]}, {len(os.sched_getaffinity(0))} usable cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    for which in args.which:
        if which in ("loop", "augment"):
            pairs, losses, workers = loop_pair(augment=which == "augment", repeats=args.repeats)
            r, ours, plain = median_ratio(pairs)
            target = 1.05
            print(f"{which:8s} cnnspec epoch {ours:.3f} s vs plain loop {plain:.3f} s "
                  f"({workers} worker(s)): ratio {r:.3f} (target <= {target}) "
                  f"[{', '.join(f'{a / b:.3f}' for a, b in pairs)}]")
            if losses is not None:
                a, b = losses
                print(f"{'':8s} first-epoch train loss: cnnspec {a:.7f}, plain {b:.7f}, equal to "
                      f"5 decimals: {round(a, 5) == round(b, 5)}")
        elif which == "feed":
            for name, fed, consumed, workers in feed_ratio(args.repeats):
                print(f"feed     {name:15s} pipeline {fed:8,.0f} img/s ({workers} worker(s)) vs "
                      f"training step {consumed:8,.0f} img/s: ratio {fed / consumed:.2f} "
                      "(target >= 1.0)")
        elif which == "memory":
            rows = memory_growth(args.memory_sizes)
            (n1, m1), (n2, m2) = rows[:2]
            per = (m2 - m1) / (n2 - n1)
            print(f"memory   peak RssAnon {n1:,} images {m1:,.0f} MiB, {n2:,} images {m2:,.0f} "
                  f"MiB: growth {m2 - m1:,.0f} MiB (target < 120); {per * 1024:.1f} KiB per "
                  f"image -> 30,000 images about {m1 + per * (30_000 - n1):,.0f} MiB "
                  "(linear extrapolation)")
            for n, m in rows[2:]:
                print(f"{'':8s} measured: {n:,} images {m:,.0f} MiB")
        elif which == "threads":
            for name, default, one, threads in threads_ratio(args.repeats):
                print(f"threads  {name:15s} default ({threads}) {default:8,.0f} img/s vs "
                      f"OMP_NUM_THREADS=1 {one:8,.0f} img/s beside a busy process: ratio "
                      f"{default / one:.2f} (target >= 0.8)")
        sys.stdout.flush()


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
