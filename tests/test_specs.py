"""The shipped specs hold their reference parameter counts, analytically and when built."""

from __future__ import annotations

import pytest
import torch

import cnnspec
from conftest import SPECS

# Reference totals: LeNet-5 (LeCun et al. 1998) on 32x32x1; torchvision's alexnet and
# vgg16 (torchvision/models docs, "num_params"); the transition variant is derived by hand
# in test_transition_saving below.
REFERENCE = {
    "lenet5": 61_706,
    "lenet5-adam": 61_706,
    "alexnet": 61_100_840,
    "alexnet2012": 62_378_344,
    "alexnet-custom": 460_163,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg16-transition": 129_281_576,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "googlenet": 6_624_904,
    "densenet121": 7_978_856,
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "convnext_tiny": 28_589_128,
}


def test_every_shipped_spec_is_held_to_a_number():
    assert sorted(p.stem for p in SPECS.glob("*.cnn")) == sorted(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_spec_starts_with_a_source_line(name):
    first = (SPECS / f"{name}.cnn").read_text().splitlines()[0]
    assert first.startswith("# ") and len(first) > 30


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_analytic_parameters_match_reference(name):
    spec = cnnspec.load(SPECS / f"{name}.cnn")
    assert cnnspec.infer_shapes(spec).params == REFERENCE[name]
    assert cnnspec.summarize(spec).totals.params == REFERENCE[name]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_built_module_has_the_analytic_parameters(name):
    spec = cnnspec.load(SPECS / f"{name}.cnn")
    with torch.device("meta"):  # shapes only: 138M parameters without allocating them
        model = cnnspec.build(spec)
    assert sum(p.numel() for p in model.parameters()) == REFERENCE[name]
    for _, path, info in cnnspec.infer_shapes(spec).walk():  # every layer, nested ones included
        module = model.get_submodule(path)
        assert sum(p.numel() for p in module.parameters()) == info.params, path
    buffers = sum(b.numel() for b in model.buffers())
    assert buffers == cnnspec.infer_shapes(spec).buffers  # batch-norm statistics, never counted as parameters


def test_transition_saving():
    """Each 3x3x512 conv on 512 channels (2,359,808 params) becomes 1x1x128 (65,664) plus
    3x3x512 on 128 channels (590,336): the saving the course asks about."""
    plain = cnnspec.infer_shapes(cnnspec.load(SPECS / "vgg16.cnn")).params
    with_t = cnnspec.infer_shapes(cnnspec.load(SPECS / "vgg16-transition.cnn")).params
    # stage 4: first conv sees 256 channels: 1,180,160 -> 32,896 + 590,336;
    # then five convs on 512 channels: 2,359,808 -> 65,664 + 590,336 each.
    saving = (1_180_160 - 32_896 - 590_336) + 5 * (2_359_808 - 65_664 - 590_336)
    assert plain - with_t == saving == 9_075_968


def test_lenet5_forward_shape_and_names():
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    model = cnnspec.build(spec)
    out = model(torch.zeros(3, 1, 32, 32))
    assert out.shape == (3, 10)
    assert list(model.state_dict())[:2] == ["C1.weight", "C1.bias"]
    assert [i.out_shape for i in cnnspec.infer_shapes(spec).layers][:4] == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5)]


def test_alexnet_forward_at_native_size():
    spec = cnnspec.load(SPECS / "alexnet.cnn")
    torch.manual_seed(0)
    model = cnnspec.build(spec).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 1000)
    shapes = {i.name: i.out_shape for i in cnnspec.infer_shapes(spec).layers}
    assert shapes["C1"] == (64, 55, 55) and shapes["M3"] == (256, 6, 6)


def test_alexnet_accepts_torchvision_weights_in_order():
    """Same layout as torchvision.models.alexnet: every tensor fits, in order, and outputs agree."""
    from torchvision.models import alexnet

    ref = alexnet(weights=None).eval()
    model = cnnspec.build(cnnspec.load(SPECS / "alexnet.cnn")).eval()
    ours, theirs = model.state_dict(), ref.state_dict()
    assert [v.shape for v in ours.values()] == [v.shape for v in theirs.values()]
    model.load_state_dict(dict(zip(ours, theirs.values())))
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max().item() < 1e-5


def test_summary_of_vgg16_allocates_nothing():
    """summary never builds the module: torch is not even imported by it."""
    import subprocess
    import sys

    code = ("import sys, cnnspec; s = cnnspec.load(sys.argv[1]); "
            "print(cnnspec.summarize(s).totals.params, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(SPECS / "vgg16.cnn")],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["138357544", "False"]


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


def test_avgpool_count_include_pad_off_averages_only_the_input():
    """``count_include_pad off`` (PyTorch's count_include_pad=False): a padded 3x3 window at
    a corner of an all-ones map averages the 4 input pixels it covers (1.0), where the
    default divides by all 9 (4/9); a maxpool refuses the setting at its place."""
    import torch

    spec = cnnspec.loads("network P\ninput 4x4x1\navgpool 3 stride 1 pad 1 count_include_pad off\n"
                         "avgpool 3 stride 1 pad 1 as AVG\n")
    model = cnnspec.build(spec).eval()
    assert model.M1.count_include_pad is False and model.AVG.count_include_pad is True
    ones = torch.ones(1, 1, 4, 4)
    assert model.M1(ones)[0, 0, 0, 0].item() == 1.0
    assert abs(model.AVG(ones)[0, 0, 0, 0].item() - 4 / 9) < 1e-7
    from cnnspec.emit import emit

    assert "nn.AvgPool2d(kernel_size=(3, 3), stride=1, padding=1, count_include_pad=False)" in \
        emit(cnnspec.infer_shapes(spec))
    with pytest.raises(cnnspec.SpecError) as info:
        cnnspec.loads("network P\ninput 4x4x1\nmaxpool 3 pad 1 count_include_pad off\n", "p.cnn")
    assert str(info.value.diagnostics[0].span).startswith("p.cnn:3:")
    assert "count_include_pad is an avgpool setting" in info.value.diagnostics[0].message
