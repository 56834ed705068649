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
import signal
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzzing import grammar_specs, mutated, outcome, word_streams
from hypothesis import HealthCheck, given, settings

STRATEGIES = {"mutated shipped specs": mutated, "streams of words": word_streams,
              "drawn from the grammar": grammar_specs}


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def run(name: str, strategy, examples: int, timeout: float, bugs: list) -> collections.Counter:
    counts: collections.Counter = collections.Counter()

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy())
    def one(text):
        counts["inputs"] += 1
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            counts[outcome(text)] += 1
        except Hang:
            counts["hangs"] += 1
            bugs.append((name, text, f"took over {timeout} s"))
        except Exception:  # noqa: BLE001 - a bug, counted and shown
            counts["bugs"] += 1
            bugs.append((name, text, traceback.format_exc(limit=-3)))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    one()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=3500, help="inputs per strategy")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per input")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, _alarm)
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
