"""cnnspec/cli.py: the command line, run as a user runs it: a real process, real files, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

import cnnspec
from conftest import SPECS


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnspec", *map(str, args)],
                          capture_output=True, check=False,
                          text=True, cwd=cwd, timeout=600)


def test_check_ok():
    r = run("check", SPECS / "lenet5.cnn")
    assert r.returncode == 0
    assert "61,706 parameters" in r.stdout


def test_check_reports_error_without_traceback(tmp_path):
    bad = tmp_path / "bad.cnn"
    bad.write_text("input 32x32x1\nconv 3x3x8 rellu\n")
    r = run("check", bad)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.splitlines()
    assert lines[0] == f"{bad}:2:12: error: unexpected 'rellu'"
    assert lines[1] == "    conv 3x3x8 rellu"
    assert lines[2] == "               ^^^^^"
    assert lines[3].startswith("hint: did you mean 'relu'?")


def test_missing_spec_file(tmp_path):
    r = run("summary", tmp_path / "nope.cnn")
    assert r.returncode == 1
    assert "no such file" in r.stderr and "Traceback" not in r.stderr


def test_summary_vgg16_total():
    r = run("summary", SPECS / "vgg16.cnn")
    assert r.returncode == 0
    assert "Total params: 138,357,544" in r.stdout
    assert "15,470,264,320" in r.stdout  # MACs at 224x224 (torchvision docs: 15.47 GFLOPS)


def test_summary_json_is_machine_readable():
    r = run("summary", SPECS / "lenet5.cnn", "--format", "json")
    data = json.loads(r.stdout)
    assert data["totals"]["params"] == 61_706
    assert data["totals"]["flops"] == 2 * data["totals"]["macs"] == 833_040
    assert [row["name"] for row in data["layers"]] == ["C1", "M1", "C2", "M2", "FL1", "F1", "F2", "F3"]
    assert sum(row["params"] for row in data["layers"]) == 61_706


def test_compile_alexnet_onnx_matches_pytorch(tmp_path):
    path = tmp_path / "alexnet.onnx"
    r = run("compile", SPECS / "alexnet.cnn", "--onnx", path)
    assert r.returncode == 0, r.stderr
    assert "relative error" in r.stdout
    # Independently of the CLI's own check: a different batch size through the dynamic axis.
    spec = cnnspec.load(SPECS / "alexnet.cnn")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.shape[1:] == [3, 224, 224] and not isinstance(inp.shape[0], int)
    import onnx

    model = onnx.load(str(path))
    torch_model = cnnspec.build(spec).eval()
    # Every parameter is an initializer under its spec name (C1.weight, ...); other
    # initializers are small constants of the graph (the flatten's target shape).
    weights = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    assert set(torch_model.state_dict()) <= set(weights)
    assert sum(weights[k].numel() for k in torch_model.state_dict()) == cnnspec.infer_shapes(spec).params == 61_100_840
    torch_model.load_state_dict({k: weights[k] for k in torch_model.state_dict()})
    x = torch.rand(3, 3, 224, 224)
    got = session.run(None, {inp.name: x.numpy()})[0]
    with torch.no_grad():
        expected = torch_model(x).numpy()
    assert got.shape == (3, 1000)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-4


def test_compile_bad_data_folder_is_a_clear_error(tmp_path):
    (tmp_path / "data" / "only").mkdir(parents=True)
    r = run("compile", SPECS / "lenet5.cnn", "--train", "--data", tmp_path / "data", "--out", tmp_path / "run")
    assert r.returncode == 1
    assert "at least two" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_compile_train_overrides_are_recorded(tmp_path):
    out = tmp_path / "run"
    r = run("compile", str(SPECS / "lenet5.cnn"), "--train", "--epochs", "1", "--lr", "0.05",
                "--batch", "256", "--optimizer", "sgd", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "With --lr 0.05 --batch 256 --optimizer sgd --epochs 1" in r.stdout
    info = json.loads((out / "run.json").read_text())
    assert info["overrides"] == {"lr": 0.05, "batch": 256, "optimizer": "sgd", "epochs": 1}
    resolved = json.loads((out / "spec.json").read_text())["train"]
    assert (resolved["optimizer"]["lr"], resolved["batch"], resolved["epochs"]) == (0.05, 256, 1)
    assert resolved["optimizer"]["momentum"] == 0.9  # the same optimizer keeps its momentum
    assert json.loads((out / "metrics.json").read_text())["epochs"][0]["lr"] == 0.05


def test_compile_bad_override_is_a_clear_error(tmp_path):
    r = run("compile", str(SPECS / "lenet5.cnn"), "--train", "--lr", "0", "--out",
                str(tmp_path / "run"))
    assert r.returncode == 1 and "--lr: Input should be greater than 0 (got 0.0)" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run").exists()
    r = run("compile", str(SPECS / "lenet5.cnn"), "--lr", "0.1")
    assert r.returncode == 2 and "--lr only applies with --train" in r.stderr
    assert "built" not in r.stdout and "Total params" not in r.stdout  # refused before any work


def test_check_refuses_devices_fifos_and_huge_files(tmp_path):
    r = run("check", "/dev/zero")  # would otherwise read forever and run out of memory
    assert r.returncode == 1 and "/dev/zero: not a regular file" in r.stderr
    big = tmp_path / "big.cnn"
    big.write_text("# x\n" * 1_100_000)
    r = run("check", big)
    assert r.returncode == 1 and "4,400,000 bytes is too large for a spec" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["compile", "SPEC", "--train", "--out", ""], "--out: empty; give a folder"),
    (["compile", "SPEC", "--onnx", ""], "--onnx: empty; give a file"),
    (["emit", "COPY", "-o", "COPY"], "is the spec being read"),
    (["fmt", "FIFO"], "FIFO: not a regular file"),
    (["fmt", "/dev/zero"], "/dev/zero: not a regular file"),
])
def test_output_misuse_is_an_error_that_loses_nothing(tmp_path, args, message):
    import os
    import shutil

    copy = tmp_path / "copy.cnn"
    shutil.copy(SPECS / "lenet5.cnn", copy)
    fifo = tmp_path / "FIFO"
    os.mkfifo(fifo)
    subst = {"SPEC": str(SPECS / "lenet5.cnn"), "COPY": str(copy), "FIFO": str(fifo)}
    before = sorted(os.listdir(tmp_path))
    r = subprocess.run([sys.executable, "-m", "cnnspec", *[subst.get(a, a) for a in args]],
                       check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode in (1, 2) and message.replace("FIFO", str(fifo)) in r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(os.listdir(tmp_path)) == before  # nothing written in the current folder
    assert copy.read_text() == (SPECS / "lenet5.cnn").read_text()


@pytest.mark.parametrize("debug", [False, True])
def test_a_bug_in_cnnspec_is_one_line_asking_for_a_report_and_debug_shows_it(debug):
    """Only a bug prints a traceback, and only with --debug (a real process, a real bug:
    summarize replaced by one that divides by zero)."""
    code = ("import cnnspec.report.summary as s, cnnspec.cli as c\n"
            "s.summarize = lambda *a, **k: 1 / 0\n"
            f"c.main({['--debug'] if debug else []} + ['summary', {str(SPECS / 'lenet5.cnn')!r}])\n")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                       text=True, timeout=60)
    if debug:
        assert r.returncode == 1 and "Traceback" in r.stderr
        assert r.stderr.rstrip().endswith("ZeroDivisionError: division by zero")
    else:
        assert r.returncode == 70 and "Traceback" not in r.stderr
        assert "internal error: ZeroDivisionError: division by zero" in r.stderr
        assert "This is a bug in cnnspec, not in your input. Please report it" in r.stderr


def test_shortening_a_run_with_epochs_is_a_note_not_schedule_warnings(tmp_path):
    # one image per class: the summary and the notes are printed, then training stops (a
    # missing data folder now stops before the summary, issue 29)
    from PIL import Image

    for c in range(10):
        (tmp_path / "one" / f"c{c}").mkdir(parents=True)
        Image.new("L", (28, 28), 20 * c).save(tmp_path / "one" / f"c{c}" / "0.png")
    r = subprocess.run([sys.executable, "-m", "cnnspec", "compile", str(SPECS / "lenet5.cnn"),
                        "--train", "--epochs", "1", "--data", str(tmp_path / "one"), "--out",
                        str(tmp_path / "run")], check=False, capture_output=True, text=True,
                       timeout=120)
    assert "note: with --epochs 1 the run ends before 2 change(s) of its schedule" in r.stdout
    assert "lies beyond the last epoch" not in r.stdout + r.stderr
    assert r.returncode == 1 and "each class needs at least 2 images" in r.stderr
