"""Messages a newcomer meets: a flat image folder, evaluate without --data, a transfer
source that is not there (real CLI processes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import cnnspec
from conftest import SPECS
from conftest import run_cli as _cli


def _flat(folder, n=3):
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full((20, 20), 40 * i, np.uint8)).save(folder / f"{i}.png")
    return folder


def test_a_flat_folder_says_images_go_in_class_subfolders(tmp_path):
    flat = _flat(tmp_path / "flat")
    r = _cli("data", flat)
    assert r.returncode == 1
    assert ("error: no class folders (3 image(s) lie directly in the folder): images must be "
            "in class subfolders: DIR/<class>/<image>") in r.stdout
    r = _cli("compile", SPECS / "lenet5.cnn", "--train", "--data", flat, "--out", tmp_path / "run")
    assert r.returncode == 1 and not (tmp_path / "run").exists()
    assert (f"{flat}: holds 3 image(s) but no class folders; images must be in class "
            "subfolders: DIR/<class>/<image>") in r.stderr


def test_loose_images_beside_class_folders_are_a_warning(tmp_path, digit_folder):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(digit_folder / "stray.png")
    r = _cli("data", digit_folder)
    assert r.returncode == 0
    assert (f"warning: 1 image(s) lie directly in {digit_folder}, outside any class folder, "
            "and are not used") in r.stdout


def test_evaluate_defaults_to_the_runs_own_validation_images(tmp_path, digit_folder):
    run = cnnspec.train(cnnspec.load(SPECS / "lenet5.cnn"), data=digit_folder,
                        out=tmp_path / "run", epochs=2, export=False)
    r = _cli("evaluate", tmp_path / "run", "--format", "json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert (report["images"], report["subset"]) == (36, "the run's validation images")
    assert report["accuracy"] == run.final["val_accuracy"]


def test_conversions_are_announced_once(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "rgb" / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)).save(
                tmp_path / "rgb" / c / f"{i}.png")
    r = _cli("compile", SPECS / "lenet5.cnn", "--train", "--data", tmp_path / "rgb", "--epochs",
             "1", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    line = "images converted to the input 32x32x1 (grayscale): 12 x 48x64 RGB"
    assert r.stderr.count(line) == 1
    # decoded once: the same line comes from the cache on the next run
    r = _cli("compile", SPECS / "lenet5.cnn", "--train", "--data", tmp_path / "rgb", "--epochs",
             "1", "--out", tmp_path / "run2")
    assert r.stderr.count(line) == 1


def test_hostile_images_are_named_and_skipped_and_odd_ones_read(tmp_path):
    """Empty, text named .png, truncated, a decompression bomb, a FIFO: each named with its
    reason and skipped, in `cnnspec data` and in training; CMYK, 16-bit and palette images
    are read; an image over Pillow's warning limit is read and named, no raw warning."""
    import os

    rng = np.random.default_rng(0)
    root = tmp_path / "d"
    for c in "ab":
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(root / c / f"{i}.png")
    b = root / "b"
    (b / "empty.png").write_bytes(b"")
    (b / "text.png").write_text("hello, not an image")
    (b / "truncated.png").write_bytes((root / "a" / "0.png").read_bytes()[:60])
    Image.new("L", (14000, 13000)).save(b / "bomb.png")  # 182 M pixels: over 2 x 89.5 M
    Image.new("L", (9500, 9500)).save(b / "big.png")  # 90.25 M: over the warning limit
    Image.fromarray(rng.integers(0, 256, (28, 28, 4), dtype=np.uint8), "CMYK").save(b / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 65535, (28, 28), dtype=np.uint16)).save(b / "gray16.png")
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).convert("P").save(
        b / "palette.png")
    os.mkfifo(b / "fifo.png")
    bad = {"bomb.png": "decompression bomb", "empty.png": "cannot identify image file",
           "fifo.png": "not a regular file", "text.png": "cannot identify image file",
           "truncated.png": "runcated"}

    r = _cli("data", root)
    assert r.returncode == 0, r.stderr
    assert "DecompressionBombWarning" not in r.stderr
    for name, reason in bad.items():
        line = next(x for x in r.stdout.splitlines() if x.startswith(f"unreadable: {b / name}"))
        assert reason in line
    assert f"warning: {b / 'big.png'}: 9500x9500 (90 M pixels)" in r.stdout
    assert "| b     |      9 |" in r.stdout  # 5 + cmyk + 16-bit + palette + big

    r = _cli("compile", SPECS / "lenet5.cnn", "--train", "--data", root, "--epochs", "1",
             "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert "DecompressionBombWarning" not in r.stderr
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    skipped = {os.path.basename(s["path"]): s["reason"] for s in info["skipped"]}
    assert set(skipped) == set(bad)
    assert info["train_images"] + info["val_images"] == 14


@pytest.mark.parametrize(("text", "message", "hint"), [
    ("Conv 3x3x4 relu\n", "unknown word 'Conv'", "the language's words are lowercase: write 'conv'"),
    ("conv 3x3x4 relu\nMaxPool 2\n", "unknown word 'MaxPool'",
     "the language's words are lowercase: write 'maxpool'"),
    ("conv 3x3x4 relu\nflatten\ndropout 50\n", ("dropout 50: the dropout probability is a "
     "fraction in [0, 1), not a percentage"), "write dropout 0.5"),
    ('conv 3x3x4 relu\nflatten\ndense 2\ntransfer:\n    from "x.pth"\n    freeze up to c1\n',
     "transfer: there is no layer 'c1'", "layer names are case-sensitive: did you mean 'C1'?"),
])
def test_a_newcomers_slips_get_the_fix_in_the_hint(text, message, hint):
    """Issue 29, finding 8: capitals in a keyword, a percentage for a probability, a layer
    name in the wrong case."""
    with pytest.raises(cnnspec.SpecError) as exc:
        cnnspec.loads("network T\ninput 28x28x1\n" + text)
    d = exc.value.diagnostics[0]
    assert (d.message, d.hint) == (message, hint)


def test_a_malformed_world_size_does_not_turn_an_error_into_a_traceback(tmp_path):
    """Issue 29, finding 21: the error printer read WORLD_SIZE with int()."""
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "cnnspec", "check", str(tmp_path / "nope.cnn")],
                       capture_output=True, text=True, env={**os.environ, "WORLD_SIZE": "abc"},
                       check=False, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"error: {tmp_path / 'nope.cnn'}: no such file"


def test_mistakes_about_the_data_come_before_the_summary_and_the_build(tmp_path):
    """Issue 29, finding 8: a misspelt data folder (with the sibling it meant) and a head
    smaller than the data's classes (the embedded digits named as such) are found before
    anything is printed or built."""
    spec = tmp_path / "t.cnn"
    spec.write_text("network T\ninput 28x28x1\nflatten\ndense 2\n")
    (tmp_path / "photos" / "a").mkdir(parents=True)
    r = _cli("compile", spec, "--train", "--data", tmp_path / "photoz")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == (f"error: {tmp_path / 'photoz'}: no such data folder; did you "
                                f"mean {tmp_path / 'photos'}?")
    r = _cli("compile", spec, "--train")
    assert r.returncode == 1 and r.stdout == ""
    assert "T ends in 2 outputs but the embedded digits (no --data given) have 10 classes" \
        in r.stderr


def test_a_pickle_of_code_is_refused_without_torchs_advice(tmp_path):
    """Issue 29, finding 28: no raw torch warning, and never "weights_only=False"."""
    import torch

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"x": Evil()}, tmp_path / "q.pth")
    spec = tmp_path / "t.cnn"
    spec.write_text('network T\ninput 28x28x1\nflatten\ndense 10\ntransfer:\n    from "q.pth"\n')
    r = _cli("compile", spec, "--train", "--out", tmp_path / "run")
    assert r.returncode == 1
    assert "holds Python objects besides tensors" in r.stderr
    assert "weights_only" not in r.stderr and "Warning" not in r.stderr


def test_epoch_lines_in_a_log_file_give_the_images_per_second(tmp_path):
    """Issue 29, finding 10: with stderr not a terminal there is no bar, and the epoch
    lines carried no speed, which the README promises."""
    import re

    spec = tmp_path / "t.cnn"
    spec.write_text("network T\ninput 28x28x1\nflatten\ndense 10\ntrain:\n    epochs 1\n")
    r = _cli("compile", spec, "--train", "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    line = next(line for line in r.stderr.splitlines() if "epoch 1: train loss" in line)
    assert re.search(r"\| [\d,]+ img/s, \d+\.\d s$", line), line


def test_a_batch_of_one_into_batch_norm_after_global_pooling_is_refused_before_training(
        tmp_path):
    """Issue 29, finding 4: "internal error: ValueError: Expected more than 1 value per
    channel" at the first step before (exit 70)."""
    from cnnspec.training.setup import _batch_norm_fits

    spec = tmp_path / "t.cnn"
    spec.write_text("network T\ninput 28x28x1\nconv 3x3x4 relu\nglobalavgpool\nbatchnorm\n"
                    "flatten\ndense 10\ntrain:\n    epochs 1\n    batch 1\n")
    r = _cli("compile", spec, "--train", "--out", tmp_path / "run")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert ("BN1: batch norm of a 1x1x4 input normalises each channel over the images of a "
            "batch, and batch 1: one image has no variance; use batch 2 or more") in r.stderr
    shaped = cnnspec.infer_shapes(cnnspec.load(spec))
    with pytest.raises(cnnspec.CnnSpecError, match="batch 2 over 2 processes is 1 per process.*"
                       "sync_batchnorm on"):
        _batch_norm_fits(shaped, 1, 2)
    _batch_norm_fits(shaped, 2, 1)  # two images: fine


@pytest.mark.parametrize("kind", ["symbolic", "rank2", "int", "two inputs", "zero"])
def test_predict_on_a_model_that_is_not_cnnspecs_kind_says_so(tmp_path, kind):
    """Issue 29, finding 22: an internal error for each of these before."""
    import onnx
    from onnx import TensorProto, helper

    shapes = {"symbolic": ["N", "C", "H", "W"], "rank2": [1, 10], "int": [1, 1, 8, 8],
              "two inputs": [1, 1, 8, 8], "zero": [1, 0, 8, 8]}
    dtype = TensorProto.INT64 if kind == "int" else TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("x", dtype, shapes[kind])]
    if kind == "two inputs":
        inputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1]))
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", inputs,
                              [helper.make_tensor_value_info("y", dtype, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    Image.new("L", (8, 8)).save(tmp_path / "i.png")
    r = _cli("predict", tmp_path / "m.onnx", tmp_path / "i.png")
    assert r.returncode == 1 and "internal error" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"error: {tmp_path / 'm.onnx'}: ")
