"""cnnspec/language/transform.py: a parse tree becomes raw statements, each field with its span; layer
kinds get their arguments from their declaration (Kind.args), one generic method per rule."""

from __future__ import annotations

from cnnspec.language.parser import parse
from cnnspec.language.transform import Param, ToRaw


def raws(text: str) -> list:
    return ToRaw("t.cnn").transform(parse(text, "t.cnn"))


def test_positional_arguments_and_options_keep_their_columns():
    conv, pool, se, act = raws("input 8x8x3\nconv 3x3x{2 * c} stride 2 relu as stem\n"
                               "maxpool 3\nse 4 silu\ngelu\n")[1:]
    assert (conv.kind, conv.fields["dims"][:2], conv.fields["stride"]) == ("conv", (3, 3), 2)
    assert conv.fields["dims"][2] == Param("2 * c", conv.fields["dims"][2].span)
    assert conv.fields["dims"][2].span.col == 10  # a caret under {2 * c}
    assert (conv.spans["stride"].line, conv.spans["stride"].col) == (2, 25)
    assert conv.fields["activation"] == "relu" and conv.fields["name"] == "stem"
    assert (pool.kind, pool.fields["dims"]) == ("maxpool", (3,))  # a window K, not KxK yet
    assert (se.kind, se.fields) == ("se", {"squeeze_channels": 4, "activation": "silu"})
    assert (act.kind, act.fields) == ("activation", {"function": "gelu"})


def test_a_repeated_option_is_kept_as_a_duplicate_for_validation():
    (dense,) = raws("dense 10 bias off bias on\n")
    assert dense.fields["bias"] is True
    assert [(d.key, d.value) for d in dense.duplicates] == [("bias", True)]
