"""cnnspec/report/graph.py: the picture's structure as data, Mermaid and DOT text, rendered SVG."""

from __future__ import annotations

import subprocess
import sys

import cnnspec
from cnnspec.report.graph import build_graph, dot_available, to_dot, to_mermaid
from conftest import SPECS

INCEPTION = """input 28x28x16
concat:
    branch:
        conv 1x1x8
    branch:
        conv 1x1x4
        conv 3x3x8
    identity
residual:
    conv 3x3x16 stride 2
flatten
dense 2
"""


def test_branches_side_by_side_and_joins():
    g = build_graph(cnnspec.infer_shapes(cnnspec.loads(INCEPTION)))
    labels = list(g.nodes.values())
    assert labels[0] == "input\n28x28x16"
    join = next(n for n, label in g.nodes.items() if label.startswith("CAT1 concat"))
    assert g.nodes[join] == "CAT1 concat\n28x28x32"
    # three branches end in the concat node: C1, C3 and the identity (the input node)
    into_join = sorted(g.nodes[a].split()[0] for a, b in g.edges if b == join)
    assert into_join == ["C1", "C3", "input"]
    add = next(n for n, label in g.nodes.items() if label.startswith("R1 add"))
    into_add = sorted(g.nodes[a].split()[0] for a, b in g.edges if b == add)
    assert into_add == ["C4", "bn"]  # the body, and the automatic 1x1 projection's batch norm
    proj = next(n for n, label in g.nodes.items() if label.startswith("conv conv 1x1x16, stride 2"))
    assert (next(a for a, b in g.edges if b == proj)) == join  # the projection reads R1's input
    assert g.nodes[add] == "R1 add\n14x14x16"


def test_mermaid_and_dot_text():
    g = build_graph(cnnspec.infer_shapes(cnnspec.load(SPECS / "lenet5.cnn")))
    mmd = to_mermaid(g)
    assert mmd.splitlines()[0] == "flowchart TB"
    assert 'n1["C1 conv 5x5x6, stride 1, pad 0, tanh<br/>28x28x6"]' in mmd
    assert mmd.count("-->") == 8  # input + 8 layers in a chain
    dot = to_dot(g, "LeNet5")
    assert dot.startswith('digraph "LeNet5" {') and dot.count("->") == 8


def test_graph_cli_svg_or_clear_instructions(tmp_path):
    out = tmp_path / "net.svg"
    r = subprocess.run([sys.executable, "-m", "cnnspec", "graph", str(SPECS / "resnet18.cnn"),
                        "-o", str(out)], capture_output=True, text=True, check=False)
    if dot_available():
        assert r.returncode == 0, r.stderr
        svg = out.read_text()
        assert svg.lstrip().startswith("<?xml") and "R3 add" in svg and "28x28x128" in svg
    else:
        assert r.returncode == 1 and "apt-get install graphviz" in r.stderr
        assert (tmp_path / "net.dot").read_text().startswith('digraph "ResNet18"')
    assert "Traceback" not in r.stderr
