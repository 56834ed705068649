"""Fuzzing the language front end with hypothesis: mutated shipped specs and random text
give a SpecError (or load) - never another exception, never a hang. The CI batch is small
(a few hundred inputs, seconds); ``CNNSPEC_FUZZ_EXAMPLES=10000 python -m pytest
tests/test_fuzz.py`` runs the long one."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnspec
from cnnspec.fmt import format_text
from conftest import SPECS

EXAMPLES = int(os.environ.get("CNNSPEC_FUZZ_EXAMPLES", "150"))
SHIPPED = {p.name: p.read_text() for p in sorted(SPECS.glob("*.cnn"))
           if "include" not in p.read_text()}  # includes resolve against the spec's folder
# the language's own words and characters: mutations that reach deep into the grammar
WORDS = ["conv", "maxpool", "dense", "flatten", "dropout", "batchnorm", "relu", "train:",
         "block", "repeat", "concat", "residual", "branch:", "transfer:", "from", "freeze",
         "epochs", "schedule", "step:", "optimizer", "sgd", "lr", "3x3x64", "2", "0", "-1",
         "1e999", "nan", "(", ")", ",", ":", "=", "#", "\n", "    ", "\t", "\x0c", "\u2028",
         '"', "{", "}", "x", "as", "include", "input", "network", "*", "9" * 30]
# the CI batch is the same every run; a long run explores new inputs each time
settings.register_profile("cnnspec", max_examples=EXAMPLES, deadline=None,
                          derandomize=EXAMPLES <= 500,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cnnspec")


def _load(text: str) -> None:
    try:
        spec = cnnspec.loads(text, "fuzz.cnn")
    except cnnspec.SpecError as exc:
        assert exc.render()  # a rendered message, every time
        return
    assert spec.shaped.params >= 0
    assert cnnspec.loads(format_text(text, "fuzz.cnn"), "fuzz.cnn").shaped.params == \
        spec.shaped.params  # a valid spec stays valid, and the same, after fmt


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


@given(mutated())
def test_mutated_shipped_specs_load_or_say_why(text):
    _load(text)


@given(st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join))
def test_streams_of_the_languages_words_load_or_say_why(text):
    _load("network T\ninput 28x28x1\n" + text + "\n")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_spec_survives_fmt(name):
    _load(SHIPPED[name])
