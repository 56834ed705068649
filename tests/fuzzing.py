"""Strategies that draw spec text, shared by tests/test_fuzz.py (the CI batch) and
scripts/fuzz.py (the long run, with counts).

- ``mutated()``: a shipped spec with 1-4 insertions, deletions or replacements drawn from
  the language's words and random text;
- ``word_streams()``: the language's words in any order after a header;
- ``grammar_specs()``: text generated from the Lark grammar itself, so it parses and
  reaches the later stages (expansion, checks, shapes, fmt) with odd values.

``outcome(text)`` loads the text and returns ``"loaded"`` or ``"spec error"``; anything
else it raises: a bug. ``outcomes(strategy, n, timeout)`` runs many inputs without stopping
at the first failure (for the long runs in scripts/).
"""

from __future__ import annotations

import signal
import traceback
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

import cnnspec
from cnnspec.language.fmt import format_text
from cnnspec.language.parser import _parser

SPECS = Path(__file__).resolve().parents[1] / "specs"
SHIPPED = {p.name: p.read_text() for p in sorted(SPECS.glob("*.cnn"))
           if "include" not in p.read_text()}  # includes resolve against the spec's folder
# the language's own words and characters: mutations that reach deep into the grammar
WORDS = ["conv", "maxpool", "dense", "flatten", "dropout", "batchnorm", "relu", "train:",
         "block", "repeat", "concat", "residual", "branch:", "transfer:", "from", "freeze",
         "epochs", "schedule", "step:", "optimizer", "sgd", "lr", "3x3x64", "2", "0", "-1",
         "1e999", "nan", "(", ")", ",", ":", "=", "#", "\n", "    ", "\t", "\x0c", "\u2028",
         '"', "{", "}", "x", "as", "include", "input", "network", "*", "9" * 30]


def outcome(text: str) -> str:
    """Load ``text``: "loaded" (and then fmt keeps it the same network) or "spec error"
    (with a rendered message). Any other exception is a bug and propagates."""
    try:
        spec = cnnspec.loads(text, "fuzz.cnn")
    except cnnspec.SpecError as exc:
        assert exc.render()  # a rendered message, every time
        return "spec error"
    assert cnnspec.infer_shapes(spec).params >= 0
    assert cnnspec.infer_shapes(cnnspec.loads(format_text(text, "fuzz.cnn"), "fuzz.cnn")).params == \
        cnnspec.infer_shapes(spec).params  # a valid spec stays valid, and the same, after fmt
    return "loaded"


class Hang(Exception):
    """An input took longer than its time limit."""


def _alarm(signum, frame):
    raise Hang


def outcomes(strategy, n: int, timeout: float, derandomize: bool = False) -> list[tuple[str, str]]:
    """(text, what became of it) for ``n`` inputs drawn from ``strategy``: what
    :func:`outcome` returned ("loaded", "spec error"), "hang" (over ``timeout`` seconds, by
    SIGALRM: call it from the main thread), or "bug: " and the end of the traceback."""
    from hypothesis import HealthCheck, given, settings

    results: list[tuple[str, str]] = []

    @settings(max_examples=n, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(text):
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            results.append((text, outcome(text)))
        except Hang:
            results.append((text, "hang"))
        except Exception:  # noqa: BLE001 - a bug, recorded with its traceback
            results.append((text, "bug: " + traceback.format_exc(limit=-3)))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        one()
    finally:
        signal.signal(signal.SIGALRM, previous)
    return results


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(sorted(SHIPPED.values())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.one_of(st.sampled_from(WORDS), st.text(max_size=3)))
        end = min(len(text), at + draw(st.integers(0, 12)))
        if op == "insert":
            text = text[:at] + piece + text[at:]
        elif op == "delete":
            text = text[:at] + text[end:]
        else:
            text = text[:at] + piece + text[end:]
    return text



def word_streams():
    return st.lists(st.sampled_from(WORDS), max_size=40).map(
        lambda words: "network T\ninput 28x28x1\n" + " ".join(words) + "\n")


def grammar_specs():
    """Specs drawn from grammar/cnnspec.lark itself (hypothesis.extra.lark): a header, up to
    two block definitions, up to eight body statements, maybe a train: section. Numbers
    are mostly small (so that many specs are valid and reach shapes and fmt), sometimes
    0, 2**31 or 10**30; names come from a few, so that calls meet definitions."""
    p = _parser()
    sp = lambda s: s + " "
    small = st.integers(1, 8)
    explicit = {"_INDENT": st.just("\x01"), "_DEDENT": st.just("\x02"),
                "_NL": st.sampled_from(["\n", "\n", "\n", "  # note\n"]),
                "WS_INLINE": st.just(" "),
                "INT": st.one_of(small, small, st.integers(0, 600), st.sampled_from([0, 2**31, 10**30])).map(str),
                "FLOAT": st.sampled_from(["0.5", "0.1", "1e-3", ".25", "1.5", "0.0", "1e999", "3.4e39"]),
                "DIMS": st.one_of(st.tuples(small, small, st.integers(1, 64)).map(lambda t: "x".join(map(str, t))),
                                  st.tuples(small, small).map(lambda t: "x".join(map(str, t))),
                                  st.sampled_from(["3x3x{n}", "{n}x{n}x8", "1x1x{2 * n}", "3x3x{n // 0}"])),
                "PARAM": st.sampled_from(["{n}", "{2 * n}", "{n - 1}", "{m}"]),
                "NAME": st.sampled_from(["n", "stage", "a", "b"]),
                "STRING": st.sampled_from(['"data"', '"runs/none"', '""']),
                }
    for t in p.terminals:
        if t.name not in explicit and t.pattern.type == "str":
            explicit[t.name] = st.just(t.pattern.value)
    explicit = {k: v.map(sp) if k not in ("_INDENT", "_DEDENT", "_NL") else v for k, v in explicit.items()}
    def grammar_from(start):
        seen, todo = set(), [start]
        while todo:
            name = todo.pop()
            for rule in p.rules:
                if rule.origin.name == name:
                    for sym in rule.expansion:
                        if sym.name not in seen:
                            seen.add(sym.name)
                            if not sym.is_term:
                                todo.append(sym.name)
        return from_lark(p, start=start, explicit={k: v for k, v in explicit.items()
                                                   if k in seen or k == "WS_INLINE"})
    body, block, train = (grammar_from(s) for s in ("body_stmt", "block_def", "train_section"))
    header = st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 4)).map(
        lambda t: "network F\ninput {}x{}x{}\n".format(*t))
    return st.tuples(header, st.lists(block, max_size=2), st.lists(body, min_size=1, max_size=8),
                     st.lists(train, max_size=1)).map(lambda t: layout(t[0] + "".join(t[1] + t[2] + t[3])))

def layout(raw: str) -> str:
    """Lay out a drawn token stream: \\x01 / \\x02 (the grammar's _INDENT / _DEDENT) at the
    start of a line open or close a level of four spaces."""
    out, depth = [], 0
    for line in raw.split("\n"):
        i = 0
        while i < len(line) and line[i] in "\x01\x02 ":
            depth += {"\x01": 1, "\x02": -1}.get(line[i], 0)
            i += 1
        rest = line[i:].replace("\x01", "").replace("\x02", "")
        out.append("    " * max(depth, 0) + rest.strip() if rest.strip() else "")
    return "\n".join(out) + "\n"
