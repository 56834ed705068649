"""The shipped specs hold their reference parameter counts, analytically and when built."""

from __future__ import annotations

import pytest

import cnnspec
from conftest import SPECS

# Reference totals: LeNet-5 (LeCun et al. 1998) on 32x32x1; the torchvision models' own
# counts (torchvision/models docs, "num_params"; inception_v3 without its auxiliary head),
# which tests/test_reference.py rebuilds; the transition variant is derived by hand in
# test_transition_saving below.
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
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg19_bn": 143_678_248,
    "vgg16-transition": 129_281_576,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "googlenet": 6_624_904,
    "inception_v3": 23_834_568,
    "squeezenet1_0": 1_248_424,
    "squeezenet1_1": 1_235_496,
    "densenet121": 7_978_856,
    "densenet161": 28_681_000,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_v2_s": 21_458_488,
    "efficientnet_v2_m": 54_139_356,
    "efficientnet_v2_l": 118_515_272,
    "convnext_tiny": 28_589_128,
    "convnext_small": 50_223_688,
    "convnext_base": 88_591_464,
    "convnext_large": 197_767_336,
    "regnet_x_400mf": 5_495_976,
    "regnet_x_800mf": 7_259_656,
    "regnet_x_1_6gf": 9_190_136,
    "regnet_x_3_2gf": 15_296_552,
    "regnet_x_8gf": 39_572_648,
    "regnet_x_16gf": 54_278_536,
    "regnet_x_32gf": 107_811_560,
    "regnet_y_400mf": 4_344_144,
    "regnet_y_800mf": 6_432_512,
    "regnet_y_1_6gf": 11_202_430,
    "regnet_y_3_2gf": 19_436_338,
    "regnet_y_8gf": 39_381_472,
    "regnet_y_16gf": 83_590_140,
    "regnet_y_32gf": 145_046_770,
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


def test_transition_saving():
    """Each 3x3x512 conv on 512 channels (2,359,808 params) becomes 1x1x128 (65,664) plus
    3x3x512 on 128 channels (590,336): the saving the course asks about."""
    plain = cnnspec.infer_shapes(cnnspec.load(SPECS / "vgg16.cnn")).params
    with_t = cnnspec.infer_shapes(cnnspec.load(SPECS / "vgg16-transition.cnn")).params
    # stage 4: first conv sees 256 channels: 1,180,160 -> 32,896 + 590,336;
    # then five convs on 512 channels: 2,359,808 -> 65,664 + 590,336 each.
    saving = (1_180_160 - 32_896 - 590_336) + 5 * (2_359_808 - 65_664 - 590_336)
    assert plain - with_t == saving == 9_075_968


def test_summary_of_vgg16_allocates_nothing():
    """summary never builds the module: torch is not even imported by it."""
    import subprocess
    import sys

    code = ("import sys, cnnspec; s = cnnspec.load(sys.argv[1]); "
            "print(cnnspec.summarize(s).totals.params, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(SPECS / "vgg16.cnn")],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["138357544", "False"]
