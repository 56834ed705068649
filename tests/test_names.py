"""cnnspec/language/names.py: automatic layer names by kind (C1, M1, BN1, SE1 ...), counted depth
first across blocks and containers; labels (``as NAME``) kept; clashes and reserved words
refused at their place."""

from __future__ import annotations

import pytest

import cnnspec
from cnnspec import SpecError


def test_automatic_names_count_each_prefix_depth_first():
    spec = cnnspec.loads(
        "network T\ninput 16x16x8\nconv 3x3x8\nbatchnorm relu\nresidual:\n    conv 3x3x8\n"
        "    se 2\n    stochastic_depth 0.1\nmaxpool 2\nconcat:\n    branch:\n"
        "        conv 1x1x4 as squeeze\n    identity\nglobalavgpool\nflatten\ndense 2\n")
    names = [info.name for _, _, info in cnnspec.infer_shapes(spec).walk()]
    assert names == ["C1", "BN1", "R1", "C2", "SE1", "SD1", "M1", "CAT1", "squeeze", "M2",
                     "FL1", "F1"]


@pytest.mark.parametrize(("line", "message"), [
    ("conv 3x3x8 as C1", "the label 'C1' clashes with the automatic name of another layer (line 3)"),
    ("conv 3x3x8 as forward", "'forward'"),
    ("conv 3x3x8 as shortcut", "'shortcut'"),
])
def test_labels_that_clash_or_shadow_are_refused_at_their_line(line, message):
    with pytest.raises(SpecError) as err:
        cnnspec.loads(f"network T\ninput 8x8x3\nconv 3x3x8\n{line}\nflatten\ndense 2\n")
    d = err.value.diagnostics[0]
    assert d.span.line == 4 and message in d.message, d.message
