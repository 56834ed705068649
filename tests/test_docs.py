"""The examples of the train: and transfer: sections in docs/language.md and docs/transfer.md
load as written (a snippet without an input line is put under specs/alexnet-custom.cnn's
layers, whose names C1..C5, F1..F3 the examples use)."""

from __future__ import annotations

import re

import pytest

import cnnspec
from conftest import ROOT, SPECS


def _blocks(path, start: str | None = None, end: str | None = None) -> list[str]:
    text = (ROOT / path).read_text()
    if start:
        text = text[text.index(start):text.index(end) if end else None]
    return re.findall(r"```cnn\n(.*?)```", text, flags=re.DOTALL)


LAYERS = (SPECS / "alexnet-custom.cnn").read_text().split("train:")[0]
EXAMPLES = ([("language.md", b) for b in _blocks("docs/language.md", "## The train: section",
                                                 "## Formulas")]
            + [("transfer.md", b) for b in _blocks("docs/transfer.md")])


@pytest.mark.parametrize("example", [b for _, b in EXAMPLES],
                         ids=[f"{f}-{i}" for i, (f, _) in enumerate(EXAMPLES)])
def test_doc_example_loads(example):
    text = example if "\ninput " in "\n" + example else LAYERS + example
    spec = cnnspec.loads(text)
    assert spec.layers  # it loaded, with its train and transfer settings checked


def test_there_are_examples():
    assert len(EXAMPLES) >= 4
