"""cnnspec/builder.py: the built nn.Module has the spec's names, the analytic parameter counts and torchvision's outputs."""

from __future__ import annotations

import pytest
import torch

import cnnspec
from conftest import SPECS
from test_specs import REFERENCE

# Reference totals: LeNet-5 (LeCun et al. 1998) on 32x32x1; torchvision's alexnet and
# vgg16 (torchvision/models docs, "num_params"); the transition variant is derived by hand
# in test_transition_saving below.



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
