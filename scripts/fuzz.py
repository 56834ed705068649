"""The long fuzzing run of issue 13: every strategy of tests/fuzzing.py with many inputs,
counting outcomes instead of stopping at the first failure.

    python scripts/fuzz.py --examples 3500      # per strategy; ~10,500 inputs, ~10 min

Each input is loaded with a time limit (``--timeout`` seconds, SIGALRM): an input that takes
longer is a hang. Prints a table (strategy, inputs, loaded, spec errors, bugs, hangs) and
the first bugs with their text; exits 1 if there was any bug or hang.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzzing import grammar_specs, mutated, outcomes, word_streams

STRATEGIES = {"mutated shipped specs": mutated, "streams of words": word_streams,
              "drawn from the grammar": grammar_specs}


def run(name: str, strategy, examples: int, timeout: float, bugs: list) -> collections.Counter:
    """Counts of what became of ``examples`` inputs; the bugs and hangs go to ``bugs``."""
    counts: collections.Counter = collections.Counter()
    for text, what in outcomes(strategy(), examples, timeout):
        counts["inputs"] += 1
        if what == "hang":
            counts["hangs"] += 1
            bugs.append((name, text, f"took over {timeout} s"))
        elif what.startswith("bug: "):
            counts["bugs"] += 1
            bugs.append((name, text, what.removeprefix("bug: ")))
        else:
            counts[what] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=3500, help="inputs per strategy")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per input")
    args = parser.parse_args()
    bugs: list = []
    print(f"| {'strategy':<24} | inputs | loaded | spec errors | bugs | hangs |")
    print(f"|{'-' * 26}|--------|--------|-------------|------|-------|")
    total = collections.Counter()
    for name, strategy in STRATEGIES.items():
        c = run(name, strategy, args.examples, args.timeout, bugs)
        total += c
        print(f"| {name:<24} | {c['inputs']:6,d} | {c['loaded']:6,d} | {c['spec error']:11,d} "
              f"| {c['bugs']:4d} | {c['hangs']:5d} |", flush=True)
    print(f"| {'all':<24} | {total['inputs']:6,d} | {total['loaded']:6,d} | "
          f"{total['spec error']:11,d} | {total['bugs']:4d} | {total['hangs']:5d} |")
    for name, text, why in bugs[:5]:
        print(f"\n--- {name}: {text!r}\n{why}")
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
