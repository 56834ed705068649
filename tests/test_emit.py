"""cnnspec/emit.py: emitted PyTorch source runs, has the compiled module's state_dict keys and outputs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import cnnspec
from cnnspec.emit import emit, emitted_class
from conftest import SPECS

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
