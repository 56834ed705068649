"""cnnspec/report/summary.py and render.py: the summary people read, pinned by golden files
and checked against independent counts (the built module, hooks on its layers, the
exported ONNX graph) and published figures."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import torch
from rich.console import Console

import cnnspec
from cnnspec.report.diff import diff
from cnnspec.report.render import render
from conftest import SPECS, rendered

ALL = sorted(p.stem for p in SPECS.glob("*.cnn"))


@pytest.mark.parametrize("name", ["lenet5", "vgg16", "vgg16-transition", "mobilenet_v2",
                                  "efficientnet_b0", "convnext_tiny"])
@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_summary_golden(name, fmt, golden, in_root):
    summary = cnnspec.summarize(cnnspec.load(f"specs/{name}.cnn"))
    ext = {"table": "txt", "markdown": "md", "json": "json"}[fmt]
    golden(f"summary/{name}.{ext}", rendered(render, summary, fmt))


# Published figures: torchvision's model documentation (pytorch.org/vision/stable/models.html,
# the "GFLOPS" column, which counts multiply-accumulates at 224x224: AlexNet 0.71,
# VGG-16 15.47, ResNet-50 4.09).
@pytest.mark.parametrize(("name", "gmacs"), [("alexnet", 0.71), ("vgg16", 15.47), ("resnet50", 4.09)])
def test_macs_match_published_figures(name, gmacs):
    macs = cnnspec.infer_shapes(cnnspec.load(SPECS / f"{name}.cnn")).macs
    assert abs(macs / 1e9 - gmacs) / gmacs < 0.01


def _hooked_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    """MACs counted on the built module with forward hooks on Conv2d and Linear layers."""
    total = 0

    def conv_hook(m, inputs, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m, inputs, out):
        nonlocal total
        total += out[0].numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_three_way_parameters_and_hooked_macs(name, tmp_path):
    """analytic parameters == unique tensors of the built module == initializers of the exported
    ONNX graph; analytic MACs == MACs counted by hooks on the module's conv and dense layers."""
    import onnx

    spec = cnnspec.load(SPECS / f"{name}.cnn")
    torch.manual_seed(0)
    model = cnnspec.build(spec).eval()
    unique = {p.data_ptr(): p.numel() for p in model.parameters()}
    assert sum(unique.values()) == cnnspec.infer_shapes(spec).params

    c, h, w = spec.input.chw()
    x = torch.rand(1, c, h, w)
    assert _hooked_macs(model, x) == cnnspec.infer_shapes(spec).macs

    # optimize=False: the exporter would otherwise fold eval-mode batch norms into the convs
    report = cnnspec.export_onnx(model, spec, tmp_path / "m.onnx", example=torch.rand(2, c, h, w),
                                 optimize=False)
    graph = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False).graph
    names = {n for n, _ in model.named_parameters()}
    sizes = {t.name: int(torch.tensor(t.dims).prod()) if t.dims else 1 for t in graph.initializer}
    assert names <= set(sizes), sorted(names - set(sizes))[:5]
    assert sum(sizes[n] for n in names) == cnnspec.infer_shapes(spec).params
    assert report.relative_error < 1e-4


def test_depth_folds_blocks_and_keeps_totals():
    spec = cnnspec.load(SPECS / "resnet18.cnn")
    full, folded = cnnspec.summarize(spec), cnnspec.summarize(spec, depth=0)
    assert all(r.depth == 0 for r in folded.layers)
    assert [r.name for r in folded.layers][:5] == ["C1", "BN1", "M1", "R1", "A1"]
    assert len(folded.layers) == 22 and len(full.layers) > 60
    assert sum(r.params for r in folded.layers) == folded.totals.params == 11_689_512
    assert folded.totals == full.totals


@pytest.mark.parametrize("width", [50, 80, 120, 200])
@pytest.mark.parametrize("name", ["lenet5", "resnet18"])
def test_summary_tables_fit_the_terminal_and_never_cut_a_number(name, width):
    """Arguments wrap; numbers and columns stay whole; a table that cannot fit says so."""


    from cnnspec.report.render import _cells, render

    summary = cnnspec.summarize(cnnspec.load(SPECS / f"{name}.cnn"))
    buf = io.StringIO()
    render(summary, "table", Console(file=buf, width=width, force_terminal=True,
                                     color_system=None))
    text = buf.getvalue()
    lines = text.splitlines()
    assert "…" not in text
    for cells in _cells(summary):  # every parameter count and MAC count, whole
        for number in cells[4:]:
            assert f" {number} " in text
    header = next(line for line in lines if "Layer" in line)
    assert all(col in text for col in ("Layer", "Type", "Arguments", "Params", "MACs"))
    table_width = len(header)
    if table_width > width:  # the minimum does not fit: said, then nothing cut
        assert f"the terminal has {width}" in " ".join(text.split())
    else:
        assert max(len(line) for line in lines if line.startswith(("┃", "│", "┏", "└"))) <= width
    if name == "lenet5" and width == 80:  # fits, with the arguments wrapped
        assert "the terminal has" not in text and table_width <= 80


def test_piped_and_wide_tables_are_plain_and_unwrapped():
    r = subprocess.run([sys.executable, "-m", "cnnspec", "summary", str(SPECS / "resnet18.cnn")],
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    assert not set("┏┃━│┡╇┗┛┓") & set(r.stdout) and "\x1b[" not in r.stdout  # plain text
    assert r.stdout.splitlines()[1].startswith("+---")
    row = next(line for line in r.stdout.splitlines() if line.startswith("| C1 "))
    assert "7x7x64, stride 2, pad 3, bias off" in row  # one line per layer


def test_a_summary_prints_as_its_table_and_renders_html_in_jupyter():
    summary = cnnspec.summarize(cnnspec.load(SPECS / "lenet5.cnn"))
    text = str(summary)
    assert text.startswith("LeNet5: input 32x32x1 -> output 10\n+") and "| F1    | dense" in text
    html = summary._repr_html_()
    assert html.startswith("<table><caption>LeNet5: input 32x32x1 -&gt; output 10</caption>")
    assert html.count("<tr>") == 1 + len(summary.layers) and "48,120" in html

    d = diff(cnnspec.load(SPECS / "vgg16.cnn"), cnnspec.load(SPECS / "vgg16-transition.cnn"))
    assert "C8 → C9" in str(d) and "<td" in d._repr_html_()
