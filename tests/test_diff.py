"""cnnspec/report/diff.py: parameter and MAC diffs between specs, aligned by structure (goldens, insertions, labels, JSON)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import cnnspec
from cnnspec.report.diff import diff
from cnnspec.report.render import render_diff
from conftest import SPECS, rendered


@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_diff_golden(fmt, golden, in_root):
    d = diff(cnnspec.load("specs/vgg16.cnn"), cnnspec.load("specs/vgg16-transition.cnn"))
    ext = {"table": "txt", "markdown": "md", "json": "json"}[fmt]
    golden(f"diff/vgg16-vs-transition.{ext}", rendered(render_diff, d, fmt))


def test_transition_diff_is_insertions_not_a_cascade():
    """The worked example of docs/diff.md: six 1x1x128 transitions inserted, the six 3x3x512
    convolutions after them changed, every other layer the same."""
    d = diff(cnnspec.load(SPECS / "vgg16.cnn"), cnnspec.load(SPECS / "vgg16-transition.cnn"))
    added = [r for r in d.rows if r.status == "added"]
    changed = [r for r in d.rows if r.status == "changed"]
    assert [r.type for r in added] == ["transition"] * 6
    assert [r.params_b for r in added] == [32_896] + [65_664] * 5
    assert [(r.name_a, r.name_b) for r in changed] == [
        ("C8", "C9"), ("C9", "C11"), ("C10", "C13"), ("C11", "C15"), ("C12", "C17"), ("C13", "C19")]
    assert [r.params_a for r in changed] == [1_180_160] + [2_359_808] * 5
    assert all(r.params_b == 590_336 for r in changed)
    assert not [r for r in d.rows if r.status == "removed"]
    assert {r.name_a for r in d.rows if r.status == "same"} >= {"C1", "C7", "F1", "F2", "F3"}
    assert d.totals["params_delta"] == -9_075_968
    assert d.totals["macs_a"] == 15_470_264_320 and d.totals["macs_b"] == 11_359_846_400
    assert round(d.totals["macs_pct"], 1) == -26.6


def test_diff_pairs_a_replaced_head_as_changed():
    a = cnnspec.loads("input 8x8x1\nconv 3x3x4 relu\nflatten\ndense 10\n")
    b = cnnspec.loads("input 8x8x1\nconv 3x3x4 relu\nflatten\ndense 3\n")
    rows = diff(a, b).rows
    assert [r.status for r in rows] == ["same", "same", "changed"]
    assert rows[-1].params_a == 2_570 and rows[-1].params_b == 771


def test_diff_aligns_labelled_layers_by_name():
    a = cnnspec.loads("input 8x8x1\nconv 3x3x4 as stem\nconv 3x3x8 as body\nflatten\ndense 2\n")
    b = cnnspec.loads("input 8x8x1\nconv 3x3x8 as body\nflatten\ndense 2\n")
    rows = diff(a, b).rows
    assert [(r.status, r.name_a, r.name_b) for r in rows[:2]] == [
        ("removed", "stem", None), ("changed", "body", "body")]


def test_diff_json_cli_is_machine_readable():

    r = subprocess.run([sys.executable, "-m", "cnnspec", "diff", str(SPECS / "resnet18.cnn"),
                        str(SPECS / "resnet50.cnn"), "--format", "json"], capture_output=True,
                       text=True, check=True)
    data = json.loads(r.stdout)
    assert data["totals"]["params_a"] == 11_689_512 and data["totals"]["params_b"] == 25_557_032
    assert data["totals"]["params_delta"] == 25_557_032 - 11_689_512


def test_diff_of_a_spec_with_itself_says_unchanged():
    from cnnspec.report.diff import diff
    from cnnspec.report.render import diff_footer

    spec = cnnspec.load(SPECS / "lenet5.cnn")
    footer = diff_footer(diff(spec, spec))
    assert footer[0] == "Total params: 61,706 (LeNet5) → 61,706 (LeNet5): unchanged"
    assert footer[1].endswith(": unchanged; FLOPs = 2 x MACs")
