"""cnnspec fmt (canonical, idempotent, meaning-preserving) and cnnspec emit (runnable PyTorch)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

import cnnspec
from cnnspec.emit import emit, emitted_class
from cnnspec.fmt import format_text
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


EMIT = ["lenet5", "alexnet2012", "vgg16_bn", "resnet18", "googlenet", "densenet121",
        "mobilenet_v2", "efficientnet_b0", "convnext_tiny"]


@pytest.mark.parametrize("name", EMIT)
def test_emitted_source_runs_and_matches_the_compiled_module(name, tmp_path):
    spec = cnnspec.load(SPECS / f"{name}.cnn")
    source = emit(cnnspec.infer_shapes(spec))
    namespace: dict = {"__name__": "emitted"}
    exec(compile(source, f"{name}_emitted.py", "exec"), namespace)  # noqa: S102 - our own output
    torch.manual_seed(0)
    emitted = namespace[emitted_class(cnnspec.infer_shapes(spec))]().eval()
    compiled = cnnspec.build(spec).eval()
    assert sum(p.numel() for p in emitted.parameters()) == cnnspec.infer_shapes(spec).params
    assert list(emitted.state_dict()) == list(compiled.state_dict())
    emitted.load_state_dict(compiled.state_dict())
    c, h, w = spec.input.chw()
    x = torch.rand(2, c, h, w)
    with torch.no_grad():
        assert torch.allclose(emitted(x), compiled(x), atol=1e-6)


def test_emit_cli_writes_a_script_that_runs(tmp_path):
    out = tmp_path / "lenet.py"
    subprocess.run([sys.executable, "-m", "cnnspec", "emit", str(SPECS / "lenet5.cnn"), "-o", str(out)],
                   check=True)
    r = subprocess.run([sys.executable, str(out)], capture_output=True, text=True, check=True)
    assert r.stdout.splitlines() == ["61706 parameters", "torch.Size([1, 10])"]


@pytest.mark.parametrize("ch", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"])
def test_fmt_keeps_a_unicode_line_break_inside_a_comment_in_the_comment(ch):
    """splitlines() broke the line there and made the rest of the comment code."""
    from cnnspec.fmt import format_text

    text = (f"network T\ninput 28x28x1\nconv 3x3x4 relu  # a comment{ch}dense 5 here\n"
            "flatten\ndense 10\n")
    out = format_text(text)
    assert f"# a comment{ch}dense 5 here" in out
    assert cnnspec.infer_shapes(cnnspec.loads(out)).params == cnnspec.infer_shapes(cnnspec.loads(text)).params
    assert format_text(out) == out
