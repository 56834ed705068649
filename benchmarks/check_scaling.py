"""``cnnspec check`` time against the number of mistakes in a spec (issue 13: it was
quadratic, 12,000 errors took 21-32 s).

    python benchmarks/check_scaling.py

Specs with N copies of ``dropout 2.0`` (each an error) for N = 1,000 ... 8,000 (a spec may
have 10,000 layers); the time of
``cnnspec.loads`` (parse, validate, collect every diagnostic), median of 3, and the time per
error: flat when linear. Then specs of 200 ... 60,000 lines with 20 misspelt words each:
how many syntax errors one ``check`` reports, and its time (bounded by the parser's budget
of characters parsed).
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


def syntax_seconds(lines: int) -> tuple[int, float]:
    """A spec of ``lines`` layer lines with a misspelt word every ``lines // 20`` lines:
    (syntax errors reported, median seconds). After each syntax error the parser starts
    again (cnnspec.language.parser.parse), within a budget of characters parsed."""
    body = ["conv 3x3x8 relu\n"] * lines
    for i in range(0, lines, max(1, lines // 20)):
        body[i] = "conve 3x3x8\n"
    text = "network T\ninput 28x28x1\n" + "".join(body) + "flatten\ndense 10\n"
    times, found = [], 0
    for _ in range(3):
        t0 = time.perf_counter()
        try:
            cnnspec.loads(text, "many.cnn")
        except cnnspec.SpecError as exc:
            found = len(exc.diagnostics)
        times.append(time.perf_counter() - t0)
    return found, statistics.median(times)


def main() -> None:
    seconds(10)  # build the parser once
    print(f"{'errors':>7} {'seconds':>8} {'ms per error':>13}")
    for n in (1000, 2000, 4000, 8000):  # under the 10,000-layer limit
        t = seconds(n)
        print(f"{n:7,d} {t:8.2f} {1000 * t / n:13.3f}")
    print(f"\n{'lines':>7} {'KB':>6} {'syntax errors':>14} {'seconds':>8}")
    for lines in (200, 1000, 5000, 20000, 60000):
        found, t = syntax_seconds(lines)
        kb = (lines * 16) / 1000
        print(f"{lines:7,d} {kb:6.0f} {found:14d} {t:8.2f}")


if __name__ == "__main__":
    main()
