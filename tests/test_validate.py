"""cnnspec/language/validate.py: values checked at their span, with the field named as the language writes it."""

from __future__ import annotations

import pytest

import cnnspec


def test_settings_beyond_float32_are_spec_errors_at_their_place(tmp_path):
    """lr 1e39 used to pass check and end in a RuntimeError traceback at optimizer.step."""
    spec = tmp_path / "big.cnn"
    spec.write_text("network T\ninput 28x28x1\nconv 3x3x4 relu\nflatten\ndense 10\ntrain:\n"
                    "    optimizer sgd lr 1e39\n    weight_decay 1e40\n")
    with pytest.raises(cnnspec.SpecError) as info:
        cnnspec.load(spec)
    text = info.value.render()
    assert "big.cnn:7:22: error: optimizer: the learning rate must be less than 3.40" in text
    assert "big.cnn:8:18: error: train: the weight decay must be less than 3.40" in text


@pytest.mark.parametrize("line, section", [("epochs 3", "train"), ("precision bf16", "train"),
                                           ("freeze up to C1", "transfer")])
def test_a_section_setting_among_the_layers_says_where_it_belongs(line, section):
    text = f"network T\ninput 28x28x1\nconv 3x3x4 relu\n{line}\nflatten\ndense 10\n"
    with pytest.raises(cnnspec.SpecError) as info:
        cnnspec.loads(text, "t.cnn")
    word = line.split()[0]
    rendered = info.value.render()
    assert f"t.cnn:4:1: error: '{word}' is a setting of the {section}: section, not a layer" in rendered
    assert f"put it under a '{section}:' line, indented" in rendered
