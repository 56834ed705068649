"""cnnspec/report/results.py and the other text reports, held to golden files
(tests/testdata/golden; rewritten only with ``pytest --update-goldens``): an evaluation, a
data report, predictions, a run's end, override previews, emitted source and graphs."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

import cnnspec
from cnnspec.emit import emit
from cnnspec.report import graph as g
from cnnspec.report.preview import override_lines
from cnnspec.report.results import (
    prediction_line,
    render_data_report,
    render_evaluation,
    run_lines,
)
from cnnspec.training.settings import apply_overrides
from conftest import SPECS

EVALUATION = {
    "run": "runs/LeNet5", "data": "digits", "images": 360, "subset": "validation images",
    "accuracy": 0.9583, "classes": ["zero", "one", "two"],
    "per_class": [{"precision": 0.975, "recall": 0.95, "f1": 0.962, "support": 120},
                  {"precision": 0.93, "recall": 0.99, "f1": 0.959, "support": 120},
                  {"precision": 0.97, "recall": 0.935, "f1": 0.952, "support": 120}],
    "confusion": [[114, 4, 2], [1, 119, 0], [2, 6, 112]],
    "skipped": ["digits/two/broken.png"],
}

DATA = {
    "root": "shapes", "total_images": 7,
    "classes": [{"name": "circle", "images": 4, "sizes": {"32x32": 3, "64x48": 1},
                 "modes": {"RGB": 4}},
                {"name": "square", "images": 3, "sizes": {"32x32": 3}, "modes": {"L": 2, "RGB": 1},
                 "other_sizes": 2}],
    "unreadable": [{"path": "shapes/square/x.png", "reason": "cannot decode"}],
    "duplicates": [["shapes/circle/a.png", "shapes/circle/b.png"]],
    "warnings": ["class square has 3 images; 250 or more per class is usual"],
    "meets_minimum": False, "problems": ["square: 3 images, fewer than 250"],
}


def text(fn, *args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    fn(*args, Console(file=out, width=120, color_system=None, force_terminal=False),
       Console(file=err, width=120, color_system=None, force_terminal=False))
    return out.getvalue(), err.getvalue()


def test_evaluation_golden(golden):
    out, err = text(lambda o, e: render_evaluation(EVALUATION, o, e))
    golden("results/evaluation.txt", out)
    assert err == "skipped unreadable image digits/two/broken.png\n"


@pytest.mark.parametrize("minimum", [(0, 0), (2, 250)])
def test_data_report_golden(golden, minimum):
    out, _ = text(lambda o, e: render_data_report(DATA, o, *minimum))
    golden(f"results/data-{minimum[0]}x{minimum[1]}.txt", out)


def test_prediction_and_run_lines(golden):
    run = SimpleNamespace(final={"val_accuracy": 0.979, "val_loss": 0.0712, "epoch": 20},
                          seconds=41.23, export="model.onnx: ONNX Runtime agrees (max |diff| 2e-06)",
                          out="runs/LeNet5")
    lines = [prediction_line({"image": "seven.png", "top": [
        {"class": "7", "probability": 0.981}, {"class": "1", "probability": 0.0123}]}),
        *run_lines(run, 44.9), *run_lines(SimpleNamespace(**{**vars(run), "export": None,
                                                             "final": {**run.final, "epoch": 1}}), 2.0)]
    golden("results/lines.txt", "\n".join(lines) + "\n")


def test_override_lines_golden(golden):
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    given = {"epochs": 12, "lr": 0.05, "compile": False}
    lines = override_lines(spec.train, apply_overrides(spec.train, given), given)
    golden("results/overrides.txt", "\n".join(lines) + "\n")
    assert override_lines(spec.train, spec.train, {}) == []


@pytest.mark.parametrize("name", ["lenet5", "convnext_tiny"])
def test_emitted_source_golden(golden, name, monkeypatch):
    monkeypatch.chdir(SPECS.parent)
    golden(f"emit/{name}.py.txt", emit(cnnspec.infer_shapes(cnnspec.load(f"specs/{name}.cnn"))))


def test_graph_goldens(golden):
    shaped = cnnspec.infer_shapes(cnnspec.load(SPECS / "resnet18.cnn"))
    data = g.build_graph(shaped)
    golden("graph/resnet18.mmd", g.to_mermaid(data))
    golden("graph/resnet18.dot", g.to_dot(data, shaped.spec.name))


def test_the_confusion_picture_stays_linear_and_draws_every_name_or_its_index(tmp_path):
    """Issue 29, findings 16, 20 and 30: 1,000 classes (ImageNet-sized) without a text per
    cell; a name the font cannot draw (CJK here, a control character, bytes that are not
    UTF-8) as its index, not empty boxes; no raw matplotlib warning."""
    import warnings

    import torch

    from cnnspec.report.plots import _drawable, plot_confusion

    assert _drawable(["cat", "猫", "a\x1bb", "bad\udcff", "x" * 40]) == [
        "cat", "#1", "#2", "#3", "x" * 23 + "..."]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        plot_confusion(torch.eye(4, dtype=torch.long) * 5, ["猫", "犬", "a", "b"],
                       tmp_path / "small.png", "T")
        plot_confusion(torch.randint(0, 9, (1000, 1000)), [f"n{i}" for i in range(1000)],
                       tmp_path / "big.png", "T")
    assert [str(w.message) for w in seen] == []
    from PIL import Image

    assert Image.open(tmp_path / "big.png").size == (1400, 1400)  # capped, not 0.5 in/class
