"""Fuzzing the language front end with hypothesis: mutated shipped specs, random streams of
its words and specs drawn from the grammar give a SpecError (or load) - never another
exception, never a hang. The strategies live in tests/fuzzing.py. The CI batch is small and
the same every run (150 inputs per property, seconds); ``python scripts/fuzz.py --examples
4000`` runs the long one and counts outcomes."""

from __future__ import annotations

import os

import pytest
from fuzzing import SHIPPED, grammar_specs, mutated, outcome, word_streams
from hypothesis import HealthCheck, given, settings

from cnnspec.language.parser import parse

EXAMPLES = int(os.environ.get("CNNSPEC_FUZZ_EXAMPLES", "150"))
# the CI batch is the same every run; a long run explores new inputs each time
settings.register_profile("cnnspec", max_examples=EXAMPLES, deadline=None,
                          derandomize=EXAMPLES <= 500,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cnnspec")


@given(mutated())
def test_mutated_shipped_specs_load_or_say_why(text):
    outcome(text)


@given(word_streams())
def test_streams_of_the_languages_words_load_or_say_why(text):
    outcome(text)


@given(grammar_specs())
def test_specs_drawn_from_the_grammar_parse_and_load_or_say_why(text):
    """Text generated from grammar/cnnspec.lark always parses (the grammar, the indenter and
    the layout agree), and the later stages either load it or name the mistake."""
    parse(text, "fuzz.cnn")
    outcome(text)


def test_the_grammar_strategy_reaches_valid_specs():
    """The drawn specs are not all rejected: many reach shapes and fmt (a strategy whose
    every spec failed the first check would test nothing past it)."""
    seen = []

    @settings(max_examples=100, derandomize=True, database=None)
    @given(grammar_specs())
    def draw(text):
        seen.append(outcome(text))

    draw()
    assert seen.count("loaded") >= 10, seen.count("loaded")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_spec_survives_fmt(name):
    assert outcome(SHIPPED[name]) == "loaded"
