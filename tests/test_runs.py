"""Run folders: checkpoints, resume after a kill, evaluate, predict, and the data report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

import cnnspec
from cnnspec.data.report import data_report
from cnnspec.training import TrainingError, evaluate_run, load_run, predict, resume
from conftest import SPECS

TIMING = ("seconds", "images_per_s")


def _strip(metrics):
    return [{k: v for k, v in m.items() if k not in TIMING} for m in metrics]


@pytest.mark.slow
def test_killed_mid_epoch_then_resumed_matches_an_uninterrupted_run(tmp_path):
    """A run killed (SIGKILL) in its second epoch and resumed ends with the same metrics and
    weights as a run that was never interrupted, with the same seed."""
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    whole = cnnspec.train(spec, out=tmp_path / "whole", epochs=2, export=False)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "cnnspec", "compile", str(SPECS / "lenet5.cnn"),
                             "--train", "--epochs", "2", "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline:
        metrics = killed / "metrics.json"
        if metrics.exists() and len(json.loads(metrics.read_text())["epochs"]) >= 1:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # during epoch 2: nothing of it was saved
    proc.wait()
    assert len(json.loads((killed / "metrics.json").read_text())["epochs"]) == 1
    assert not (killed / "weights.safetensors").exists()

    resumed = resume(killed, export=False)
    assert _strip(resumed.metrics) == _strip(whole.metrics)
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    assert not [p.name for p in killed.iterdir() if p.name.startswith(".")]  # no temp files


def test_run_folder_evaluate_and_predict(tmp_path, digit_folder):
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    run = cnnspec.train(spec, data=digit_folder, out=tmp_path / "run", epochs=15, export=False)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"spec.cnn", "spec.json", "run.json", "classes.json", "last.safetensors", "last.ckpt",
            "best.safetensors", "weights.safetensors", "metrics.json", "metrics.csv", "curves.png",
            "confusion.png"} <= names
    csv_lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,lr,train_loss") and len(csv_lines) == 16
    assert Image.open(tmp_path / "run" / "curves.png").size[0] > 800

    # on the run's own folder: its 36 validation images only, scored as the run scored them
    r = evaluate_run(tmp_path / "run", digit_folder)
    assert (r["images"], r["subset"]) == (36, "the run's validation images")
    assert r["classes"] == ["digit1", "digit4", "digit7"]
    matrix = torch.tensor(r["confusion"])
    assert matrix.sum(1).tolist() == [12, 12, 12]
    assert r["accuracy"] == pytest.approx(run.final["val_accuracy"])  # weights = last epoch
    # on another folder with the same classes: every image of it
    other = tmp_path / "other"
    shutil.copytree(digit_folder, other)
    r = evaluate_run(tmp_path / "run", other)
    assert (r["images"], r["subset"]) == (180, "all images")
    matrix = torch.tensor(r["confusion"])
    assert matrix.sum(1).tolist() == [60, 60, 60]
    assert r["accuracy"] == pytest.approx(matrix.diag().sum().item() / 180) and r["accuracy"] > 0.8

    sevens = sorted((digit_folder / "digit7").iterdir())[:3]
    preds = predict(tmp_path / "run", sevens, top_k=2)
    assert [len(p["top"]) for p in preds] == [2, 2, 2]
    for p in preds:  # softmax probabilities, best first, of different classes
        probs = [t["probability"] for t in p["top"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert len({t["class"] for t in p["top"]}) == 2
    assert [p["top"][0]["class"] for p in preds] == ["digit7"] * 3


def test_wrong_weights_file_is_a_clear_error(tmp_path, digit_folder):
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    cnnspec.train(spec, data=digit_folder, out=tmp_path / "run", epochs=1, export=False)
    (tmp_path / "run" / "best.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(cnnspec.WeightsError, match="not a readable safetensors file"):
        load_run(tmp_path / "run", "best")
    with pytest.raises(cnnspec.CnnSpecError, match="not a run folder"):
        load_run(tmp_path)


def test_data_report(tmp_path, digit_folder):
    (digit_folder / "digit1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    src = min((digit_folder / "digit4").iterdir())
    (digit_folder / "digit4" / "copy.png").write_bytes(src.read_bytes())
    Image.new("RGB", (40, 30), (255, 0, 0)).save(digit_folder / "digit7" / "red.jpg")
    r = data_report(digit_folder, min_classes=3, min_per_class=61)
    assert [c["name"] for c in r["classes"]] == ["digit1", "digit4", "digit7"]
    assert [c["images"] for c in r["classes"]] == [60, 61, 61]
    assert r["classes"][2]["sizes"] == {"28x28": 60, "40x30": 1}
    assert r["classes"][2]["modes"] == {"L": 60, "RGB": 1}
    assert [u["path"] for u in r["unreadable"]] == [str(digit_folder / "digit1" / "broken.png")]
    assert r["duplicates"] == [[str(src), str(digit_folder / "digit4" / "copy.png")]]
    assert not r["meets_minimum"] and r["problems"] == [
        "class digit1: 60 readable images, fewer than 61"]
    cli = subprocess.run([sys.executable, "-m", "cnnspec", "data", str(digit_folder),
                          "--min-classes", "3", "--min-per-class", "250"], capture_output=True,
                         text=True, check=False)
    assert cli.returncode == 1 and "NOT met" in cli.stdout


def test_a_run_stopped_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    """A NaN loss in the first epoch (lr 1e30 overflows two stacked layers) stops the run; with no checkpoint to resume
    from, the run folder it started is removed, so the next run can use the name."""
    spec = cnnspec.loads("network Boom\ninput 28x28x1\nflatten\ndense 64 relu\ndense 64 relu\n"
                         "dense 10\ntrain:\n    epochs 2\n    optimizer sgd lr 1e30\n")
    with pytest.raises(TrainingError, match="the loss became nan at epoch 1.*no checkpoint and "
                                            "the run folder is removed"):
        cnnspec.train(spec, out=tmp_path / "run", export=False)
    assert not (tmp_path / "run").exists()


def test_a_run_killed_before_its_first_epoch_can_be_started_again(tmp_path, digit_folder):
    spec = cnnspec.loads("network Tiny\ninput 28x28x1\nflatten\ndense 3\ntrain:\n    epochs 1\n")
    out = tmp_path / "run"
    out.mkdir()
    # what kill -9 in the first epoch leaves: the start files, run.json (written first) too
    (out / "run.json").write_text('{"network": "Tiny", "steps_per_epoch": 32}')
    (out / "spec.json").write_text("{}")
    with pytest.raises(cnnspec.CnnSpecError, match="this one stopped before, start it again"):
        resume(out)
    run = cnnspec.train(spec, data=digit_folder, out=out, export=False)
    assert run.final["epoch"] == 1
    with pytest.raises(cnnspec.CnnSpecError, match="already holds a run"):
        cnnspec.train(spec, data=digit_folder, out=out, export=False)


def test_resume_refuses_data_whose_classes_changed(tmp_path, digit_folder):
    spec = cnnspec.loads("network Tiny\ninput 28x28x1\nflatten\ndense 4\ntrain:\n    epochs 2\n")
    out = tmp_path / "run"
    cnnspec.train(spec, data=digit_folder, out=out, export=False)
    ckpt = torch.load(out / "last.ckpt", weights_only=True)
    ckpt["epoch"] = 1  # as if it had been interrupted after the first epoch
    torch.save(ckpt, out / "last.ckpt")
    (digit_folder / "digit0").mkdir()
    Image.new("L", (28, 28)).save(digit_folder / "digit0" / "a.png")
    with pytest.raises(cnnspec.CnnSpecError, match="classes changed since the run started"):
        resume(out)


def test_resume_with_more_epochs_trains_a_finished_run_on(tmp_path):
    spec = cnnspec.loads("network Tiny\ninput 28x28x1\nflatten\ndense 10\ntrain:\n    epochs 1\n"
                         "    batch 256\n    optimizer sgd lr 0.1\n    schedule cosine\n")
    out = tmp_path / "run"
    cnnspec.train(spec, out=out, export=False)
    again = resume(out, export=False)  # finished: nothing more to train
    assert len(again.metrics) == 1
    longer = resume(out, epochs=3, export=False)
    assert [m["epoch"] for m in longer.metrics] == [1, 2, 3]
    # the cosine schedule is worked out for 3 epochs from epoch 1 on: 0.1 (1 + cos(pi/3)) / 2
    assert longer.metrics[1]["lr"] == pytest.approx(0.075)
    assert json.loads((out / "spec.json").read_text())["train"]["epochs"] == 3
    assert json.loads((out / "run.json").read_text())["overrides"]["epochs"] == 3
    with pytest.raises(cnnspec.CnnSpecError, match="--epochs 2 is not more than the 3 epochs"):
        resume(out, epochs=2)


def test_a_resumed_run_with_dropout_and_a_worker_equals_an_uninterrupted_one(tmp_path):
    """Issue 29, finding 5: with dropout and DataLoader workers, a resumed run's final
    weights differed from an uninterrupted run's (0.145 here before the fix): the workers'
    base seed was drawn from torch's global generator when the loader's iterator started,
    which shifted the dropout masks after a resume. The loaders now have a generator of
    their own."""
    from safetensors.torch import load_file

    text = ("network Drop\ninput 28x28x1\nconv 3x3x4 relu\nmaxpool 2\nflatten\ndropout 0.5\n"
            "dense 10\ntrain:\n    epochs {e}\n    batch 256\n    workers 1\n"
            "    optimizer sgd lr 0.05 momentum 0.9\n    augment: crop 28 pad 2\n")
    cnnspec.train(cnnspec.loads(text.format(e=3)), out=tmp_path / "straight", export=False)
    cnnspec.train(cnnspec.loads(text.format(e=1)), out=tmp_path / "resumed", export=False)
    resume(tmp_path / "resumed", epochs=3, export=False)
    a = load_file(tmp_path / "straight" / "weights.safetensors")
    b = load_file(tmp_path / "resumed" / "weights.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0.0


def test_resume_refuses_an_edited_spec_and_changed_images(tmp_path, digit_folder):
    """Issue 29, finding 25: after relu -> tanh in spec.cnn (same shapes) a resume trained
    another network without a word; after images were added it split them anew, leaking
    validation images into training."""
    from PIL import Image

    spec = cnnspec.loads("network Tiny\ninput 28x28x1\nconv 3x3x4 relu\nflatten\ndense 3\n"
                         "train:\n    epochs 1\n")
    out = tmp_path / "run"
    cnnspec.train(spec, data=digit_folder, out=out, export=False)
    original = (out / "spec.cnn").read_text()
    (out / "spec.cnn").write_text(original.replace("relu", "tanh"))
    with pytest.raises(cnnspec.CnnSpecError, match="spec.cnn was edited since the run started"):
        resume(out, epochs=2)
    (out / "spec.cnn").write_text(original)
    Image.new("L", (28, 28), 128).save(digit_folder / "digit1" / "new.png")
    with pytest.raises(cnnspec.CnnSpecError, match=r"images changed since the run started "
                       r"\(180 -> 181 images\)"):
        resume(out, epochs=2)
    (digit_folder / "digit1" / "new.png").unlink()
    assert resume(out, epochs=2, export=False).final["epoch"] == 2
