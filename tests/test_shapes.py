"""cnnspec/shapes.py: module paths (one rule, shapes.group_name) and counts agree with the
built module of every shipped spec."""

from __future__ import annotations

import pytest
import torch

import cnnspec
from cnnspec.shapes import walk
from conftest import SPECS

SMALL = ["lenet5", "alexnet2012", "resnet18", "googlenet", "densenet121", "mobilenet_v2",
         "efficientnet_b0", "convnext_tiny"]


@pytest.mark.parametrize("name", SMALL)
def test_walked_paths_are_the_built_modules_and_hold_their_parameters(name):
    """Every path shapes.walk gives is a module of the built network (so reports, transfer
    and insight name what PyTorch names), and each layer's parameter and buffer counts are
    those of the tensors under its path."""
    spec = cnnspec.load(SPECS / f"{name}.cnn")
    model = cnnspec.build(spec)
    modules = dict(model.named_modules())
    state = model.state_dict()
    for _, path, info in walk(cnnspec.infer_shapes(spec).layers):
        assert path in modules, path
        under = [v for k, v in state.items() if k.startswith(path + ".")]
        params = sum(p.numel() for k, p in model.named_parameters() if k.startswith(path + "."))
        assert params == info.params, path
        assert sum(v.numel() for v in under) == info.params + info.buffers, path


def test_a_nested_layers_path_reaches_its_module():
    spec = cnnspec.loads("network T\ninput 8x8x3\nconcat:\n    branch:\n        conv 1x1x2\n"
                         "    branch:\n        residual:\n            conv 3x3x3\n"
                         "            shortcut:\n                conv 1x1x3\n    identity\n")
    paths = [p for _, p, _ in walk(cnnspec.infer_shapes(spec).layers)]
    assert paths == ["CAT1", "CAT1.b1.C1", "CAT1.b2.R1", "CAT1.b2.R1.C2",
                     "CAT1.b2.R1.shortcut.C3"]
    model = cnnspec.build(spec)
    assert isinstance(model.get_submodule("CAT1.b2.R1.shortcut.C3"), torch.nn.Conv2d)
