"""cnnspec/language/fmt.py: the canonical layout (idempotent, meaning-preserving, comments kept)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import cnnspec
from cnnspec.language.fmt import format_text
from conftest import SPECS

ALL_SPECS = sorted(SPECS.glob("*.cnn"))

MESSY = """#  header comment
network   Messy
input 32x32x3   # the input

block stage( filters,convs = 2 ):
  repeat convs :   conv 3x3x{filters}   relu


  maxpool 2    # halve it
stage(8 , convs=3)
stage( 16 )
concat:
      branch:
           conv 1x1x{ 2*4 }
      identity
residual  :
   conv 3x3x32
   batchnorm   relu
train:
        epochs 3
        schedule step:
             20 : 0.01
        augment: hflip ,crop 32 pad 4
flatten
dense 10
"""

EXPECTED = """#  header comment
network Messy
input 32x32x3  # the input

block stage(filters, convs=2):
    repeat convs: conv 3x3x{filters} relu

    maxpool 2  # halve it
stage(8, convs=3)
stage(16)
concat:
    branch:
        conv 1x1x{ 2*4 }
    identity
residual:
    conv 3x3x32
    batchnorm relu
train:
    epochs 3
    schedule step:
        20: 0.01
    augment: hflip, crop 32 pad 4
flatten
dense 10
"""


def test_format_messy_text():
    assert format_text(MESSY) == EXPECTED


def test_format_is_idempotent_and_keeps_meaning_of_messy_text():
    once = format_text(MESSY)
    assert format_text(once) == once
    assert cnnspec.loads(once).model_dump() == cnnspec.loads(MESSY).model_dump()


@pytest.mark.parametrize("path", ALL_SPECS, ids=[p.stem for p in ALL_SPECS])
def test_shipped_specs_are_formatted_and_keep_their_meaning(path, tmp_path):
    text = path.read_text()
    formatted = format_text(text, str(path))
    assert formatted == text  # shipped specs are kept in the canonical layout
    assert format_text(formatted) == formatted
    # parse(fmt(x)) == parse(x), from a copy of specs/ so that includes resolve alike
    copy = tmp_path / "specs"
    shutil.copytree(SPECS, copy)
    messier = text.replace("\n\n", "\n\n\n").replace("    ", "  ")  # fmt must undo this
    (copy / path.name).write_text(format_text(messier, str(path)))
    assert (copy / path.name).read_text() == text
    assert cnnspec.load(copy / path.name).model_dump() == cnnspec.load(path).model_dump()


def test_fmt_cli_check_and_rewrite(tmp_path):
    spec = tmp_path / "messy.cnn"
    spec.write_text(MESSY)
    check = subprocess.run([sys.executable, "-m", "cnnspec", "fmt", "--check", str(spec)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 1 and "would reformat" in check.stderr
    assert spec.read_text() == MESSY  # --check changes nothing
    subprocess.run([sys.executable, "-m", "cnnspec", "fmt", str(spec)], check=True,
                   capture_output=True)
    assert spec.read_text() == EXPECTED


def test_fmt_refuses_a_broken_spec(tmp_path):
    spec = tmp_path / "bad.cnn"
    spec.write_text("input 32x32x1\nconv 3x3x8 rellu\n")
    r = subprocess.run([sys.executable, "-m", "cnnspec", "fmt", str(spec)], capture_output=True,
                       text=True, check=False)
    assert r.returncode == 1 and "rellu" in r.stderr
    assert spec.read_text() == "input 32x32x1\nconv 3x3x8 rellu\n"


@pytest.mark.parametrize("ch", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"])
def test_fmt_keeps_a_unicode_line_break_inside_a_comment_in_the_comment(ch):
    """splitlines() broke the line there and made the rest of the comment code."""
    from cnnspec.language.fmt import format_text

    text = (f"network T\ninput 28x28x1\nconv 3x3x4 relu  # a comment{ch}dense 5 here\n"
            "flatten\ndense 10\n")
    out = format_text(text)
    assert f"# a comment{ch}dense 5 here" in out
    assert cnnspec.infer_shapes(cnnspec.loads(out)).params == cnnspec.infer_shapes(cnnspec.loads(text)).params
    assert format_text(out) == out
