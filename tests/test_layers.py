"""cnnspec/layers: the registry of layer kinds, and the kinds added with it (se,
stochastic_depth, layernorm, pointwise, layerscale), checked against torch itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import cnnspec
from cnnspec import layers
from cnnspec.errors import SpecError
from conftest import SPECS

PACKAGE = SPECS.parent / "cnnspec"

ALL_NEW = """\
network New
input 14x14x8
se 2 silu
layernorm eps 1e-6
pointwise 32 gelu
pointwise 8 bias off
layerscale 0.5
residual:
    conv 3x3x8 groups 8
    se 4
    layerscale 1e-3
    stochastic_depth 0.2
groupnorm 4 relu
globalavgpool
flatten
layernorm
layerscale 2
dense 3
"""


def test_every_kind_module_declares_its_kind_and_words_are_unique():
    modules = {p.stem for p in (PACKAGE / "layers").glob("*.py")} - {
        "__init__", "base", "calls", "formulas", "activations"}
    assert {k.model.__module__.rsplit(".", 1)[1] for k in layers.KINDS} == modules
    words = [w for k in layers.KINDS for w in k.words]
    assert len(words) == len(set(words))
    rules = [r for k in layers.KINDS for r in k.rules]
    assert len(rules) == len(set(rules))
    assert {"se", "layernorm", "pointwise", "layerscale", "stochastic_depth",
            "groupnorm"} <= set(words)


def test_counts_of_the_new_kinds_equal_torch():
    """Parameters equal the built module's; MACs equal FlopCounterMode's FLOPs / 2."""
    spec = cnnspec.loads(ALL_NEW)
    shaped = cnnspec.infer_shapes(spec)
    model = cnnspec.build(spec).eval()
    assert shaped.params == sum(p.numel() for p in model.parameters())
    # se 2 on 8 channels: fc1 8*2 + 2, fc2 2*8 + 8; layer scale: 8; pointwise 8->32 + bias
    assert [i.params for i in shaped.layers[:5]] == [42, 16, 288, 256, 8]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(torch.rand(1, 8, 14, 14))
    assert out.shape == (1, 3)
    assert shaped.macs == counter.get_total_flops() // 2


def test_pointwise_computes_a_1x1_convolution_and_layernorm_normalises_channels():
    spec = cnnspec.loads("network P\ninput 5x6x4\npointwise 3\nlayernorm\n")
    model = cnnspec.build(spec, seed=0).eval()
    pw, ln = model.P1, model.LN1
    conv = torch.nn.Conv2d(4, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(pw.weight[:, :, None, None])
        conv.bias.copy_(pw.bias)
    x = torch.rand(2, 4, 5, 6)
    with torch.no_grad():
        y = pw(x)
        assert torch.allclose(y, conv(x), atol=1e-6)
        z = ln(y)
    # each position's 3 channels: mean 0, (biased) variance 1
    assert torch.allclose(z.mean(dim=1), torch.zeros(2, 5, 6), atol=1e-5)
    # (variance var / (var + eps), eps = 1e-5: just under 1 where a position's channels agree)
    assert torch.allclose(z.var(dim=1, unbiased=False), torch.ones(2, 5, 6), atol=1e-2)
    assert not torch.allclose(y.var(dim=1, unbiased=False), torch.ones(2, 5, 6), atol=1e-2)


def test_groupnorm_is_torchs_and_its_groups_must_divide_the_channels():
    spec = cnnspec.loads("network G\ninput 4x4x6\ngroupnorm 3 eps 1e-3\n")
    model = cnnspec.build(spec, seed=0).eval()
    ref = torch.nn.GroupNorm(3, 6, eps=1e-3)
    x = torch.rand(2, 6, 4, 4)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-6)
    assert cnnspec.infer_shapes(spec).params == 12
    with pytest.raises(SpecError) as err:
        cnnspec.loads("network G\ninput 4x4x6\ngroupnorm 4\n")
    assert err.value.diagnostics[0].message == \
        "GN1: groupnorm 4: the groups must divide the 6 channels"
    assert err.value.diagnostics[0].hint == ("6 channels split into 1, 2, 3, 6 groups; 32 is "
                                             "usual (Wu & He 2018)")


def test_stochastic_depth_drops_whole_images_in_training_and_nothing_in_evaluation():
    spec = cnnspec.loads("network S\ninput 4x4x2\nresidual:\n    conv 1x1x2 bias off\n"
                         "    stochastic_depth 0.5\n")
    model = cnnspec.build(spec, seed=0)
    x = torch.rand(64, 2, 4, 4)
    torch.manual_seed(0)
    body = model.R1.C1(x)
    out = model.train()(x) - x  # the body's share per image: dropped (0) or body / (1 - p)
    kept = [bool((o.abs() > 0).any()) for o in out]
    assert 10 < sum(kept) < 54
    for o, b, k in zip(out, body, kept, strict=True):
        assert torch.allclose(o, b * 2 if k else torch.zeros_like(b), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), x + model.R1.C1(x), atol=1e-6)


def test_stochastic_depth_outside_a_residual_body_is_refused_at_its_line():
    text = ("network T\ninput 8x8x3\nstochastic_depth 0.1\nresidual:\n    conv 3x3x3\n"
            "    stochastic_depth 0.2\n    shortcut:\n        stochastic_depth 0.1\n")
    with pytest.raises(SpecError) as err:
        cnnspec.loads(text)
    diags = err.value.diagnostics
    assert [(d.span.line, d.span.col) for d in diags] == [(3, 1), (8, 9)]
    assert diags[0].message == ("stochastic_depth belongs in a residual: body, not at the top "
                                "level: there it would drop the whole signal of an image")


def test_stochastic_depth_must_end_a_body_that_has_other_layers():
    text = ("network T\ninput 8x8x3\nresidual:\n    stochastic_depth 0.1\n    conv 3x3x3\n"
            "residual:\n    stochastic_depth 0.1\nresidual:\n    conv 3x3x3\n"
            "    stochastic_depth 0.1\n")
    with pytest.raises(SpecError) as err:
        cnnspec.loads(text)
    assert [(d.span.line, d.message.split(":")[0]) for d in err.value.diagnostics] == [
        (4, "stochastic_depth must be the last line of the residual"),
        (7, "stochastic_depth")]
    assert "nothing to drop" in err.value.diagnostics[1].message
    with pytest.raises(SpecError) as err:
        cnnspec.loads("network T\ninput 8x8x3\nresidual:\n    conv 3x3x3\n"
                      "    stochastic_depth 0.1\n    stochastic_depth 0.1\n")
    assert [(d.span.line, d.message) for d in err.value.diagnostics] == [
        (5, "stochastic_depth is given twice in this residual body")]


@pytest.mark.parametrize(("text", "message"), [
    ("se 4 softmax", ("se: softmax is not an activation between the two 1x1 convolutions (it "
                     "would mix the squeezed channels)")),
    ("se 0", "se: the squeeze channels must be greater than 0, got 0"),
    ("layerscale 0", "layerscale: the initial scale must be greater than 0.0, got 0.0"),
    ("pointwise 0", "pointwise: the number of outputs must be greater than 0, got 0"),
    ("layernorm eps 0", "layernorm: eps must be greater than 0.0, got 0.0"),
])
def test_value_errors_of_the_new_kinds(text, message):
    with pytest.raises(SpecError) as err:
        cnnspec.loads(f"network T\ninput 8x8x4\n{text}\n")
    assert err.value.diagnostics[0].message == message


def test_se_and_pointwise_need_a_feature_map():
    for word in ("se 2", "pointwise 4"):
        with pytest.raises(SpecError) as err:
            cnnspec.loads(f"network T\ninput 8x8x4\nflatten\n{word}\n")
        assert "needs an HxWxC input, got a flat input of 256" in err.value.diagnostics[0].message


KIND_FILE = '''\
"""``scale V``: multiplies its input by a constant V (a kind written for a test)."""

from __future__ import annotations

from typing import Literal

from .base import Kind, Node, same_shape
from .calls import ModuleCall


class Scale(Node):
    kind: Literal["scale2"] = "scale2"
    factor: float


GRAMMAR = """
scale2: "scale2" number
"""

KIND = Kind(Scale, grammar=GRAMMAR, rules=("scale2",), prefix="X", args=(("factor", "num"),),
            infer=same_shape, describe=lambda info: f"x {info.layer.factor:g}",
            module=lambda info: ModuleCall("Hardtanh", (-info.layer.factor, info.layer.factor)))
'''


def test_a_new_kind_is_one_file(tmp_path):
    """A copy of the package with one file added to cnnspec/layers/ (and nothing else
    changed) parses, checks, names, counts, builds, summarises and emits the new word."""
    root = tmp_path / "tree"
    shutil.copytree(PACKAGE, root / "cnnspec", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(root / "cnnspec" / "grammar", ignore_errors=True)
    shutil.copytree(SPECS.parent / "grammar", root / "cnnspec" / "grammar")
    (root / "cnnspec" / "layers" / "scale2.py").write_text(KIND_FILE)
    script = textwrap.dedent("""
        import cnnspec, torch
        from cnnspec.emit import emit
        spec = cnnspec.loads("network T\\ninput 4x4x1\\nscale2 0.5\\nflatten\\ndense 2\\n")
        assert cnnspec.__file__.startswith(%r), cnnspec.__file__
        shaped = cnnspec.infer_shapes(spec)
        print(spec.layers[0].name, shaped.layers[0].out_shape, shaped.params)
        print(next(l for l in str(cnnspec.summarize(spec)).splitlines() if "X1" in l))
        model = cnnspec.build(spec).eval()
        print(model(torch.full((1, 1, 4, 4), 3.0)).shape, "Hardtanh" in emit(shaped))
    """) % str(root)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       cwd=tmp_path, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                       check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "X1 (1, 4, 4) 34"
    assert "scale2" in lines[1] and "x 0.5" in lines[1]
    assert lines[2] == "torch.Size([1, 2]) True"


@pytest.mark.parametrize("name", ["lenet5", "alexnet2012", "resnet18", "googlenet",
                                  "densenet121", "efficientnet_b0", "convnext_tiny"])
def test_bias_counts_equal_the_built_modules(name):
    """LayerInfo.biases (what ``bias train`` keeps training) = the parameters named bias."""
    spec = cnnspec.load(SPECS / f"{name}.cnn")
    model = cnnspec.build(spec)
    expected = sum(p.numel() for k, p in model.named_parameters() if k.endswith(".bias"))
    assert sum(i.biases for i in cnnspec.infer_shapes(spec).layers) == expected > 0
