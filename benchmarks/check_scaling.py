"""``cnnspec check`` time against the number of mistakes in a spec (issue 13: it was
quadratic, 12,000 errors took 21-32 s).

    python benchmarks/check_scaling.py

Specs with N copies of ``dropout 2.0`` (each an error) for N = 1,500 ... 24,000; the time of
``cnnspec.loads`` (parse, validate, collect every diagnostic), median of 3, and the time per
error: flat when linear.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cnnspec


def seconds(n: int) -> float:
    text = "\n".join(["network T", "input 28x28x1", *["dropout 2.0"] * n, "flatten",
                      "dense 10"]) + "\n"
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        try:
            cnnspec.loads(text, "many.cnn")
        except cnnspec.SpecError as exc:
            assert len(exc.diagnostics) == n
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    seconds(10)  # build the parser once
    print(f"{'errors':>7} {'seconds':>8} {'ms per error':>13}")
    for n in (1500, 3000, 6000, 12000, 24000):
        t = seconds(n)
        print(f"{n:7,d} {t:8.2f} {1000 * t / n:13.3f}")


if __name__ == "__main__":
    main()
