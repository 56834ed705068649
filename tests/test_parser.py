"""cnnspec/language/parser.py (with lark_parser.py and syntax_errors.py): syntax errors, every one of a file in one run (recovery), capped and
linear, with did-you-means and hints that say where a misplaced setting belongs."""

from __future__ import annotations

import pytest

import cnnspec
from cnnspec import SpecError

SYNTAX_ERRORS = """\
network T
input 28x28x1
conv 5x5x6 relu
conve 3x3x8
maxpool 2x2 stride 2
dense 10 sofmax
repeat 2:
    conv 3x3x8 stide 2
flatten
train:
    epochs 3
      bach 4
    optimizer sgd lr 0.1
dense 10
"""


def test_syntax_errors_are_all_reported_in_one_run():
    """After a syntax error the parser goes on: each mistaken line is reported at its place
    with its did-you-mean, and the blanking that lets it go on (a block left empty, the
    indented line's block) adds no error of its own."""
    with pytest.raises(SpecError) as info:
        cnnspec.loads(SYNTAX_ERRORS, "t.cnn")
    got = [(d.span.line, d.span.col, d.message, d.hint.split(" (")[0])
           for d in info.value.diagnostics]
    assert got == [
        (4, 1, "unknown word 'conve'", "did you mean 'conv'?"),
        (6, 10, "unexpected 'sofmax'", "did you mean 'softmax'?"),
        (8, 16, "unexpected 'stide'", "did you mean 'stride'?"),
        (12, 1, "unexpected indentation", "only a line ending in ':' opens a block"),
    ]


def test_syntax_errors_are_capped_and_the_search_is_linear():
    """At most MAX_SYNTAX_ERRORS per file; a large spec is parsed again only while the
    characters parsed stay within the budget (so ``check`` of a 318 KB file full of mistakes
    parses it three times, not 20 times)."""
    from cnnspec.language.parser import _RECOVERY_BUDGET, MAX_SYNTAX_ERRORS

    head = "network T\ninput 28x28x1\n"
    with pytest.raises(SpecError) as info:
        cnnspec.loads(head + "conve 3x3x8\n" * 30 + "flatten\ndense 10\n")
    lines = [d.span.line for d in info.value.diagnostics]
    assert lines == list(range(3, 3 + MAX_SYNTAX_ERRORS))
    assert info.value.diagnostics[-1].notes == [  # the cut-off is said, not silent
        f"stopped looking after {MAX_SYNTAX_ERRORS} syntax error(s); fix these and check again"]
    big = head + ("conve 3x3x8" + " " * 200 + "\n") * 1500
    with pytest.raises(SpecError) as info:
        cnnspec.loads(big)
    assert len(info.value.diagnostics) == _RECOVERY_BUDGET // len(big) == 3


def test_the_hint_offers_no_second_activation():
    """After ``relu6`` the expected words are the conv's other options, not activations
    (found by a newcomer: the list offered 'gelu', 'relu' ... after one)."""
    with pytest.raises(SpecError) as info:
        cnnspec.loads("network T\ninput 8x8x1\nconv 3x3x8 relu6 stide 2\nconv 3x3x8 stide 2\n")
    after, plain = (d.hint for d in info.value.diagnostics)
    assert after == ("did you mean 'stride'? (expected 'as', 'bias', 'dilation', 'groups', "
                     "'pad', 'same', 'stride', 'valid', end of line)")
    assert "'relu'" in plain and "'gelu'" in plain


@pytest.mark.parametrize(("text", "line", "message"), [
    ("conv 3x3x4\nbias train\nflatten\ndense 2\n", 4,
     "'bias' is a setting of the transfer: section, not a layer"),
    ("flatten\ndense 2\ntrain:\n    bias train\n", 6,
     "'bias' starts a setting of the transfer: section, not of the train: section"),
    ('flatten\ndense 2\ntransfer:\n    from "x.pth"\n    epochs 3\n', 7,
     "'epochs' starts a setting of the train: section, not of the transfer: section"),
])
def test_a_setting_in_the_wrong_place_names_its_section(text, line, message):
    with pytest.raises(SpecError) as info:
        cnnspec.loads("network T\ninput 8x8x3\n" + text)
    d = info.value.diagnostics[0]
    assert (d.span.line, d.message) == (line, message)
    assert d.hint.startswith("put it under a '")
