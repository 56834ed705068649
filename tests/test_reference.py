"""The classic networks, held to torchvision tensor for tensor.

For each reference spec: the exact parameter count (torchvision's model docs list the same
"num_params"), torchvision's state_dict loads into the compiled module in order with every
shape matching, and both give the same output on the same input.
"""

from __future__ import annotations

import pytest
import torch
from torchvision import models

import cnnspec
from cnnspec.transfer import children_first
from conftest import SPECS

REFERENCE = [
    ("alexnet", lambda: models.alexnet(weights=None), 61_100_840),
    ("vgg11", lambda: models.vgg11(weights=None), 132_863_336),
    ("vgg13", lambda: models.vgg13(weights=None), 133_047_848),
    ("vgg16", lambda: models.vgg16(weights=None), 138_357_544),
    ("vgg19", lambda: models.vgg19(weights=None), 143_667_240),
    ("vgg16_bn", lambda: models.vgg16_bn(weights=None), 138_365_992),
    ("resnet18", lambda: models.resnet18(weights=None), 11_689_512),
    ("resnet50", lambda: models.resnet50(weights=None), 25_557_032),
    ("googlenet", lambda: models.googlenet(weights=None, aux_logits=False, init_weights=True),
     6_624_904),
    ("densenet121", lambda: models.densenet121(weights=None), 7_978_856),
    ("mobilenet_v2", lambda: models.mobilenet_v2(weights=None), 3_504_872),
    ("efficientnet_b0", lambda: models.efficientnet_b0(weights=None), 5_288_548),
    ("convnext_tiny", lambda: models.convnext_tiny(weights=None), 28_589_128),
]


# How torchvision's state_dict keys are ordered to match the spec's (the identity elsewhere).
# torchvision's ConvNeXt block registers layer_scale on itself, before its layers; the
# transfer loader's children_first takes a module's own tensors after its sub-modules'.
KEY_ORDER = {"convnext_tiny": children_first}


@pytest.mark.parametrize(("name", "make", "params"), REFERENCE, ids=[r[0] for r in REFERENCE])
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

    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, expected = model(x), ref(x)
    assert got.shape == (1, 1000)
    assert (got - expected).abs().max().item() < 1e-5


@pytest.mark.parametrize(("name", "make", "params"), REFERENCE, ids=[r[0] for r in REFERENCE])
def test_macs_equal_torchs_flop_counter(name, make, params):
    """MACs per 224x224 image equal torch.utils.flop_counter.FlopCounterMode's count on the
    torchvision model, halved (it counts FLOPs = 2 x MACs of convolutions and matrix
    products; batch norms, pooling and activations are not counted on either side)."""
    from torch.utils.flop_counter import FlopCounterMode

    ref = make().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ref(torch.rand(1, 3, 224, 224))
    assert cnnspec.infer_shapes(cnnspec.load(SPECS / f"{name}.cnn")).macs == \
        counter.get_total_flops() // 2


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
