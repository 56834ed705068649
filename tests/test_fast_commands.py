"""Commands that must start fast: check, summary, diff, fmt, data and predict (on ONNX
Runtime) import no torch; predict on ONNX Runtime gives PyTorch's answers and goes on past
an unreadable image. (benchmarks/startup.py measures the times.)"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import cnnspec
from cnnspec.training.inference import predict as predict_torch
from cnnspec.training.runtime import predict as predict_onnx
from conftest import SPECS


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    """LeNet-5 trained 2 epochs on the embedded digits (with model.onnx), and 6 digit PNGs."""
    from PIL import Image

    tmp = tmp_path_factory.mktemp("fast")
    cnnspec.train(cnnspec.load(SPECS / "lenet5.cnn"), out=tmp / "run", epochs=2)
    images, labels = digits
    folder = tmp / "pngs"
    for c in (0, 1):
        (folder / str(c)).mkdir(parents=True)
        for i in np.flatnonzero(labels == c)[:3]:
            Image.fromarray(images[i]).save(folder / str(c) / f"{i}.png")
    return tmp / "run", sorted(folder.rglob("*.png"))


def _imports(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnnspec", *args],
                       check=False, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    modules = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    return r, modules


@pytest.mark.parametrize("args", [
    ("check", str(SPECS / "lenet5.cnn")), ("summary", str(SPECS / "resnet18.cnn")),
    ("diff", str(SPECS / "vgg16.cnn"), str(SPECS / "vgg16-transition.cnn")),
    ("fmt", "--check", str(SPECS / "lenet5.cnn")), ("data", "PNGS"), ("predict", "RUN", "PNG"),
], ids=["check", "summary", "diff", "fmt", "data", "predict"])
def test_fast_commands_import_no_torch(run, args):
    folder, pngs = run
    args = [{"PNGS": str(pngs[0].parent.parent), "RUN": str(folder), "PNG": str(pngs[0])}.get(a, a)
            for a in args]
    r, modules = _imports(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "cnnspec.cli" in modules  # the import trace is there
    assert not {m for m in modules if m == "torch" or m.startswith(("torch.", "torchvision"))}


def test_predict_on_onnx_runtime_agrees_with_pytorch(run):
    folder, pngs = run
    fast = predict_onnx(folder, pngs, top_k=3, device="cpu")
    slow = predict_torch(folder, pngs, top_k=3, device="cpu")
    assert [p["image"] for p in fast] == [str(p) for p in pngs]
    for a, b in zip(fast, slow, strict=True):
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]
        np.testing.assert_allclose([t["probability"] for t in a["top"]],
                                   [t["probability"] for t in b["top"]], atol=1e-5)
    assert [p["top"][0]["class"] for p in fast] == ["0", "0", "0", "1", "1", "1"]


def test_predict_reports_each_unreadable_image_and_goes_on(run, tmp_path):
    folder, pngs = run
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    for backend in ("onnx", "torch"):
        r = subprocess.run([sys.executable, "-m", "cnnspec", "predict", str(folder), str(pngs[0]),
                            str(broken), str(tmp_path / "missing.png"), str(pngs[-1]),
                            "--backend", backend], check=False, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 1
        assert [line.split(":")[0] for line in r.stdout.splitlines()] == [str(pngs[0]),
                                                                          str(pngs[-1])]
        assert f"{broken}: cannot read the image" in r.stderr
        assert f"{tmp_path / 'missing.png'}: no such image" in r.stderr
        assert "2 of 4 image(s) could not be read" in r.stderr


def test_predict_without_model_onnx_points_to_the_torch_backend(run, tmp_path):
    import shutil

    folder, pngs = run
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    (copy / "model.onnx").unlink()
    with pytest.raises(cnnspec.CnnSpecError, match="model.onnx: no such file.*--backend torch"):
        predict_onnx(copy, pngs[:1])
    assert predict_torch(copy, pngs[:1])[0]["top"][0]["class"] == "0"


def test_model_onnx_describes_itself(run):
    import hashlib
    import json

    import onnxruntime as ort

    folder, _ = run
    meta = ort.InferenceSession(str(folder / "model.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == [str(i) for i in range(10)]
    assert (meta["network"], meta["input_size"], meta["output"]) == ("LeNet5", "32x32x1",
                                                                      "logits (N, 10)")
    assert meta["input"] == "float32 (N, 1, 32, 32) pixels in [0, 1]"
    recorded = json.loads((folder / "run.json").read_text())["normalize"]
    norm = json.loads(meta["normalize"])
    assert norm["mean"] == pytest.approx(recorded["mean"])
    assert norm["std"] == pytest.approx(recorded["std"])
    assert meta["spec_sha256"] == hashlib.sha256(
        (folder / "spec.cnn").read_text().encode()).hexdigest()
    assert meta["cnnspec_version"] == cnnspec.__version__


def test_softmax_export_outputs_probabilities_and_predict_reads_them(run, tmp_path):
    import onnxruntime as ort

    _, pngs = run
    cnnspec.train(cnnspec.load(SPECS / "lenet5.cnn"), out=tmp_path / "run", epochs=1,
                  softmax=True)
    sess = ort.InferenceSession(str(tmp_path / "run" / "model.onnx"))
    assert sess.get_modelmeta().custom_metadata_map["output"] == "probabilities (N, 10)"
    out = sess.run(None, {"input": np.random.default_rng(0).random((3, 1, 32, 32),
                                                                    dtype=np.float32)})[0]
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-5)  # rows are distributions
    fast = predict_onnx(tmp_path / "run", pngs, top_k=3)  # no second softmax on top
    slow = predict_torch(tmp_path / "run", pngs, top_k=3)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose([t["probability"] for t in a["top"]],
                                   [t["probability"] for t in b["top"]], atol=1e-5)


def test_the_readme_onnx_example_runs_and_agrees_with_predict(run, capsys):
    import re

    from conftest import ROOT

    folder, pngs = run
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using model.onnx"):]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    code = code.replace("runs/LeNet5/model.onnx", str(folder / "model.onnx"))
    exec(compile(code.replace("digit.png", str(pngs[-1])), "README.md", "exec"), {})  # noqa: S102 - our own README
    name, prob = capsys.readouterr().out.split()
    best = predict_onnx(folder, [pngs[-1]], top_k=1)[0]["top"][0]
    assert (name, float(prob)) == (best["class"], pytest.approx(best["probability"], abs=1e-6))
