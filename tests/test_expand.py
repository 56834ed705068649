"""cnnspec/language/expand.py: blocks, parameters, repeats and names."""

from __future__ import annotations

import pytest

import cnnspec
from test_errors import NOTES, _load_error


def test_option_and_section_words_name_block_parameters_and_repeat_counts():
    """`groups` (a conv option) and `classes` (a transfer word) as block parameters, used
    bare in `repeat` and in braces: 3 + 2 convolutions of 4 filters."""
    spec = cnnspec.loads("input 28x28x1\nblock stack(groups, classes=2):\n    repeat groups:\n"
                         "        conv 3x3x4\n    repeat classes: conv 3x3x{classes * 2}\n"
                         "stack(3)\nflatten\ndense 10 as head\n")
    convs = [layer for layer in spec.layers if layer.kind == "conv"]
    assert [c.out_channels for c in convs] == [4, 4, 4, 4, 4]
    assert spec.layers[-1].name == "head"


@pytest.mark.parametrize(("text", "message"), [
    ("input 8x8x1\nconv 3x3x4 as from\nflatten\ndense 2\n", "the label 'from' is a Python keyword"),
    ("input 8x8x1\nblock b(lambda):\n    conv 3x3x{lambda}\nb(2)\nflatten\ndense 2\n",
     "'lambda' is a Python keyword and cannot name a parameter"),
])
def test_python_keywords_cannot_name_layers_or_parameters(text, message):
    with pytest.raises(cnnspec.SpecError, match=message):
        cnnspec.loads(text)


@pytest.mark.parametrize(("name", "notes"), NOTES, ids=[n for n, _ in NOTES])
def test_notes_name_the_call(name, notes):
    """A mistake inside a block is shown at its line in the block, with a note per call that
    led there; one outside any block has no note. ``str(err)`` prints them after the hint."""
    _, err = _load_error(name)
    first = err.diagnostics[0]
    assert len(first.notes) == len(notes)
    for got, want in zip(first.notes, notes):
        assert got.startswith("in a block called at ") and got.endswith(want)
        assert f"note: {got}" in str(err)


def test_several_block_errors():
    """Mistakes inside different blocks, reached from different calls, are all reported, in the
    order of the calls, each at its line in the block with a note naming its call."""
    _, err = _load_error("several_block_errors")
    got = [(d.span.line, d.span.col, d.message, d.notes[-1].rsplit(": ", 1)[-1])
           for d in err.diagnostics]
    assert got == [
        (6, 31, "conv: the stride must be greater than 0, got 0", "stem(8, stride=0)"),
        (9, 28, "conv: the number of filters must be greater than 0, got 0", "stage(0, convs=3)"),
        (14, 13, "dropout: the dropout probability must be less than 1.0, got 1.5", "head(1.5)"),
    ]


def test_the_layer_limit_counts_every_layer_not_only_repeats():
    """40,000 plain lines passed (only repeats were counted); the limit is 10,000 layers."""
    text = "network T\ninput 28x28x1\n" + "conv 3x3x4 pad same relu\n" * 10_001 + "flatten\n"
    with pytest.raises(cnnspec.SpecError) as info:
        cnnspec.loads(text, "t.cnn")
    assert info.value.render().startswith(
        "t.cnn:10003:1: error: this spec has 10,002 layers after blocks and repeats are "
        "unrolled; a spec may have at most 10,000")
