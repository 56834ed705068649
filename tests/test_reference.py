"""The classic networks, held to torchvision tensor for tensor.

For each reference spec: the exact parameter count (torchvision's model docs list the same
"num_params"), torchvision's state_dict loads into the compiled module in order with every
shape matching, and both give the same output on the same input, of the spec's input size
(224x224x3 for most; the evaluation crop of torchvision's weights where the spec says so:
EfficientNet-B1..B4 and V2, Inception v3 at 299x299). Entries over ~30M parameters or
~5 GMACs are marked slow: they run in CI and are skipped by `pytest -m "not slow"`.
"""

from __future__ import annotations

import pytest
import torch
from torchvision import models

import cnnspec
from cnnspec.transfer import children_first
from conftest import SPECS


def slow(name, make, params):
    """A large entry (over ~30M parameters or ~5 GMACs): still run in CI, skipped by
    `pytest -m "not slow"`."""
    return pytest.param(name, make, params, marks=pytest.mark.slow, id=name)


REFERENCE = [
    ("alexnet", lambda: models.alexnet(weights=None), 61_100_840),
    ("vgg11", lambda: models.vgg11(weights=None), 132_863_336),
    ("vgg13", lambda: models.vgg13(weights=None), 133_047_848),
    ("vgg16", lambda: models.vgg16(weights=None), 138_357_544),
    ("vgg19", lambda: models.vgg19(weights=None), 143_667_240),
    ("vgg16_bn", lambda: models.vgg16_bn(weights=None), 138_365_992),
    slow("vgg11_bn", lambda: models.vgg11_bn(weights=None), 132_868_840),
    slow("vgg13_bn", lambda: models.vgg13_bn(weights=None), 133_053_736),
    slow("vgg19_bn", lambda: models.vgg19_bn(weights=None), 143_678_248),
    ("resnet18", lambda: models.resnet18(weights=None), 11_689_512),
    ("resnet34", lambda: models.resnet34(weights=None), 21_797_672),
    ("resnet50", lambda: models.resnet50(weights=None), 25_557_032),
    slow("resnet101", lambda: models.resnet101(weights=None), 44_549_160),
    slow("resnet152", lambda: models.resnet152(weights=None), 60_192_808),
    slow("wide_resnet50_2", lambda: models.wide_resnet50_2(weights=None), 68_883_240),
    slow("wide_resnet101_2", lambda: models.wide_resnet101_2(weights=None), 126_886_696),
    ("resnext50_32x4d", lambda: models.resnext50_32x4d(weights=None), 25_028_904),
    slow("resnext101_32x8d", lambda: models.resnext101_32x8d(weights=None), 88_791_336),
    slow("resnext101_64x4d", lambda: models.resnext101_64x4d(weights=None), 83_455_272),
    ("squeezenet1_0", lambda: models.squeezenet1_0(weights=None), 1_248_424),
    ("squeezenet1_1", lambda: models.squeezenet1_1(weights=None), 1_235_496),
    ("googlenet", lambda: models.googlenet(weights=None, aux_logits=False, init_weights=True),
     6_624_904),
    slow("inception_v3",
         lambda: models.inception_v3(weights=None, aux_logits=False, init_weights=True),
         23_834_568),
    ("densenet121", lambda: models.densenet121(weights=None), 7_978_856),
    slow("densenet161", lambda: models.densenet161(weights=None), 28_681_000),
    ("densenet169", lambda: models.densenet169(weights=None), 14_149_480),
    slow("densenet201", lambda: models.densenet201(weights=None), 20_013_928),
    ("mobilenet_v2", lambda: models.mobilenet_v2(weights=None), 3_504_872),
    ("efficientnet_b0", lambda: models.efficientnet_b0(weights=None), 5_288_548),
    ("efficientnet_b1", lambda: models.efficientnet_b1(weights=None), 7_794_184),
    ("efficientnet_b2", lambda: models.efficientnet_b2(weights=None), 9_109_994),
    ("efficientnet_b3", lambda: models.efficientnet_b3(weights=None), 12_233_232),
    ("efficientnet_b4", lambda: models.efficientnet_b4(weights=None), 19_341_616),
    slow("efficientnet_v2_s", lambda: models.efficientnet_v2_s(weights=None), 21_458_488),
    slow("efficientnet_v2_m", lambda: models.efficientnet_v2_m(weights=None), 54_139_356),
    slow("efficientnet_v2_l", lambda: models.efficientnet_v2_l(weights=None), 118_515_272),
    ("regnet_x_400mf", lambda: models.regnet_x_400mf(weights=None), 5_495_976),
    ("regnet_x_800mf", lambda: models.regnet_x_800mf(weights=None), 7_259_656),
    ("regnet_x_1_6gf", lambda: models.regnet_x_1_6gf(weights=None), 9_190_136),
    ("regnet_x_3_2gf", lambda: models.regnet_x_3_2gf(weights=None), 15_296_552),
    slow("regnet_x_8gf", lambda: models.regnet_x_8gf(weights=None), 39_572_648),
    slow("regnet_x_16gf", lambda: models.regnet_x_16gf(weights=None), 54_278_536),
    slow("regnet_x_32gf", lambda: models.regnet_x_32gf(weights=None), 107_811_560),
    ("regnet_y_400mf", lambda: models.regnet_y_400mf(weights=None), 4_344_144),
    ("regnet_y_800mf", lambda: models.regnet_y_800mf(weights=None), 6_432_512),
    ("regnet_y_1_6gf", lambda: models.regnet_y_1_6gf(weights=None), 11_202_430),
    ("regnet_y_3_2gf", lambda: models.regnet_y_3_2gf(weights=None), 19_436_338),
    slow("regnet_y_8gf", lambda: models.regnet_y_8gf(weights=None), 39_381_472),
    slow("regnet_y_16gf", lambda: models.regnet_y_16gf(weights=None), 83_590_140),
    slow("regnet_y_32gf", lambda: models.regnet_y_32gf(weights=None), 145_046_770),
    ("convnext_tiny", lambda: models.convnext_tiny(weights=None), 28_589_128),
    slow("convnext_small", lambda: models.convnext_small(weights=None), 50_223_688),
    slow("convnext_base", lambda: models.convnext_base(weights=None), 88_591_464),
    slow("convnext_large", lambda: models.convnext_large(weights=None), 197_767_336),
]


# How torchvision's state_dict keys are ordered to match the spec's (the identity elsewhere).
# torchvision's ConvNeXt block registers layer_scale on itself, before its layers; the
# transfer loader's children_first takes a module's own tensors after its sub-modules'.
KEY_ORDER = {f"convnext_{size}": children_first for size in ("tiny", "small", "base", "large")}


def _id(entry) -> str:
    return entry[0] if isinstance(entry, tuple) else entry.id


IDS = [_id(r) for r in REFERENCE]


@pytest.mark.parametrize(("name", "make", "params"), REFERENCE, ids=IDS)
def test_matches_torchvision(name, make, params):
    spec = cnnspec.load(SPECS / f"{name}.cnn")
    assert cnnspec.infer_shapes(spec).params == params
    assert cnnspec.infer_shapes(spec).output_shape == (1000,)

    torch.manual_seed(0)
    ref = make().eval()
    assert sum(p.numel() for p in ref.parameters()) == params
    # Random batch-norm statistics, so that buffers mapped to the wrong layer would show.
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
        # Layer norms and layer scales start as constants (1, 0, 1e-6): random values, so
        # that a tensor loaded into the wrong layer, or a block that counts for nothing
        # (1e-6 x its output), would show in the outputs.
        if isinstance(m, torch.nn.LayerNorm):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    with torch.no_grad():
        for key, p in ref.named_parameters():
            if key.endswith("layer_scale"):
                p.uniform_(0.5, 1.5)
    model = cnnspec.build(spec).eval()
    assert sum(p.numel() for p in model.parameters()) == params
    ours, theirs = model.state_dict(), ref.state_dict()
    theirs = {k: theirs[k] for k in KEY_ORDER.get(name, list)(list(theirs))}
    assert [tuple(v.shape) for v in ours.values()] == [tuple(v.shape) for v in theirs.values()]
    model.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))

    c, h, w = spec.input.chw()  # 224x224x3, or the evaluation size of the spec's weights
    x = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, expected = model(x), ref(x)
    assert got.shape == (1, 1000)
    assert (got - expected).abs().max().item() < 1e-5


@pytest.mark.parametrize(("name", "make", "params"), REFERENCE, ids=IDS)
def test_macs_equal_torchs_flop_counter(name, make, params):
    """MACs per image of the spec's input size (224x224 for most) equal
    torch.utils.flop_counter.FlopCounterMode's count on the torchvision model, halved (it
    counts FLOPs = 2 x MACs of convolutions and matrix products; batch norms, pooling and
    activations are not counted on either side)."""
    from torch.utils.flop_counter import FlopCounterMode

    spec = cnnspec.load(SPECS / f"{name}.cnn")
    ref = make().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ref(torch.rand(1, *spec.input.chw()))
    assert cnnspec.infer_shapes(spec).macs == counter.get_total_flops() // 2


def test_alexnet2012_single_tower():
    """Krizhevsky et al. 2012 without the two-GPU split: 96-256-384-384-256 filters, LRN,
    227x227x3. Parameters by layer: 34,944 + 614,656 + 885,120 + 1,327,488 + 884,992 (convs)
    + 37,752,832 + 16,781,312 + 4,097,000 (dense) = 62,378,344."""
    spec = cnnspec.load(SPECS / "alexnet2012.cnn")
    infos = [i for _, _, i in cnnspec.infer_shapes(spec).walk()]
    convs = [i.params for i in infos if i.layer.kind == "conv"]
    assert convs == [34_944, 614_656, 885_120, 1_327_488, 884_992]
    assert cnnspec.infer_shapes(spec).params == 62_378_344
    shapes = {i.name: i.out_shape for i in infos}
    assert shapes["C1"] == (96, 55, 55) and shapes["M3"] == (256, 6, 6)
    model = cnnspec.build(spec).eval()
    assert isinstance(model.N1, torch.nn.LocalResponseNorm) and model.N1.k == 2.0
    with torch.no_grad():
        assert model(torch.rand(1, 3, 227, 227)).shape == (1, 1000)
