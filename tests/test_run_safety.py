"""Run folders under hostile conditions: a second process, a kill between two writes,
leftover temporary files, symbolic links out of the folder, an empty checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import cnnspec
from cnnspec.training import resume
from conftest import SPECS, TINY


def _spec(tmp_path, epochs=2):
    path = tmp_path / "tiny.cnn"
    path.write_text(TINY.format(epochs=epochs))
    return cnnspec.load(path)


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnspec", *map(str, args)], check=False,
                          capture_output=True, text=True, timeout=300)


def test_a_second_process_cannot_train_into_a_folder_in_use(tmp_path):
    spec = tmp_path / "tiny.cnn"
    spec.write_text(TINY.format(epochs=500))
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "cnnspec", "compile", str(spec), "--train",
                              "--out", str(run)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run / "last.ckpt").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        lock = json.loads((run / "run.lock").read_text())
        assert lock["pid"] == first.pid
        r = _cli("compile", "--resume", run, "--epochs", "600")
        assert r.returncode == 1
        assert f"is being trained by process {first.pid}" in r.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # its process is gone: the lock is stale, and resume takes the folder over
    import torch

    done = torch.load(run / "last.ckpt", weights_only=True)["epoch"]
    r = _cli("compile", "--resume", run, "--epochs", done + 1)
    assert r.returncode == 0, r.stderr
    assert not (run / "run.lock").exists()  # released at the end
    epochs = [m["epoch"] for m in json.loads((run / "metrics.json").read_text())["epochs"]]
    assert epochs == list(range(1, done + 2))


def test_resume_restores_the_epoch_a_kill_kept_from_metrics_json(tmp_path):
    """A kill between the checkpoint's rename and metrics.json: the checkpoint has it."""
    run = tmp_path / "run"
    cnnspec.train(_spec(tmp_path), out=run, export=False)
    doc = json.loads((run / "metrics.json").read_text())
    second = doc["epochs"][1]
    doc["epochs"] = doc["epochs"][:1]  # as if killed before metrics.json caught up
    (run / "metrics.json").write_text(json.dumps(doc))
    (run / ".last.ckpt.x1y2z3w4").write_bytes(b"half a checkpoint")  # an interrupted write
    result = resume(run, epochs=3, export=False)
    assert [m["epoch"] for m in result.metrics] == [1, 2, 3]
    assert result.metrics[1] == pytest.approx(second)
    assert not (run / ".last.ckpt.x1y2z3w4").exists()


def test_nothing_is_written_through_a_link_out_of_the_run_folder(tmp_path):
    run = tmp_path / "run"
    cnnspec.train(_spec(tmp_path), out=run, export=False)
    outside = tmp_path / "precious.json"
    outside.write_text("keep me")
    (run / "metrics.json").unlink()
    os.symlink(outside, run / "metrics.json")
    with pytest.raises(cnnspec.CnnSpecError, match="symbolic link to .*precious.json, outside "
                       "the run folder"):
        resume(run, epochs=3, export=False)
    assert outside.read_text() == "keep me"


def test_an_empty_checkpoint_is_a_clear_error_not_an_interruption(tmp_path):
    run = tmp_path / "run"
    cnnspec.train(_spec(tmp_path), out=run, export=False)
    (run / "last.ckpt").write_bytes(b"")
    r = _cli("compile", "--resume", run, "--epochs", "3")
    assert r.returncode == 1
    assert "cannot resume from this run folder: EOFError" in r.stderr
    assert "interrupted" not in r.stderr


def test_the_shipped_lenet_spec_is_untouched_by_these_tests():
    assert (SPECS / "lenet5.cnn").read_text().startswith("# LeNet-5")


def test_killed_at_random_instants_and_resumed_it_ends_as_an_uninterrupted_run():
    """scripts/kill_resume.py at CI size: SIGKILL at random instants (start-up, steps,
    checkpoint writes), resumed each time; the end equals an uninterrupted run exactly.
    The full check is ``python scripts/kill_resume.py --kills 20 --epochs 40``."""
    r = subprocess.run([sys.executable, str(SPECS.parent / "scripts" / "kill_resume.py"),
                        "--kills", "3", "--epochs", "8", "--seed", "1", "--json"],
                       check=False, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)
    assert result["kills"] >= 2  # the run lived long enough to be killed more than once
    assert result["same_metrics"] and result["same_weights"]
    assert result["leftover_temporaries"] == [] and not result["lock_left"]


def test_killed_inside_its_file_writes_and_resumed_it_ends_as_an_uninterrupted_run():
    """scripts/kill_in_writes.py at CI size: SIGKILL from inside a write (a half-written
    temporary file, a complete one not yet renamed, a renamed one whose folder entry is not
    flushed), in turn, resumed each time; the end equals an uninterrupted run exactly. The
    full check is ``python scripts/kill_in_writes.py --kills 20 --epochs 40``."""
    r = subprocess.run([sys.executable, str(SPECS.parent / "scripts" / "kill_in_writes.py"),
                        "--kills", "3", "--epochs", "4", "--seed", "1", "--json"],
                       check=False, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)
    assert result["kills"] == 3
    assert {c["phase"] for c in result["log"] if "kill" in c} == {
        "mid-write", "before-rename", "after-rename"}
    assert result["same_metrics"] and result["same_weights"]
    assert result["leftover_temporaries"] == [] and not result["lock_left"]


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ")
def test_a_full_disk_is_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    """A file size limit (as a full disk would) while writing epoch 2's checkpoint: torch
    raised a RuntimeError traceback; now one message names the file, and the run resumes
    from epoch 1 once there is room."""
    import resource

    import torch

    run = tmp_path / "run"
    cnnspec.train(cnnspec.load(SPECS / "lenet5.cnn"), out=run, epochs=1, export=False)

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # last.ckpt is ~750 KB

    r = subprocess.run([sys.executable, "-m", "cnnspec", "compile", "--resume", str(run),
                        "--epochs", "2"], check=False, capture_output=True, text=True,
                       timeout=300, preexec_fn=limited)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"cannot write {run / 'last.ckpt'}:" in r.stderr
    assert "the disk may be full or a file size limit reached" in r.stderr
    assert torch.load(run / "last.ckpt", weights_only=True)["epoch"] == 1  # the good one
    assert not [p.name for p in run.glob(".*")]  # no half-written temporary left
    assert [m["epoch"] for m in resume(run, epochs=2, export=False).metrics] == [1, 2]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished LeNet-5 run (1 epoch, with model.onnx) and a digit to predict."""
    from PIL import Image

    tmp = tmp_path_factory.mktemp("finished")
    cnnspec.train(cnnspec.load(SPECS / "lenet5.cnn"), out=tmp / "run", epochs=1)
    Image.new("L", (28, 28), 0).save(tmp / "digit.png")
    return tmp / "run", tmp / "digit.png"


DAMAGE = {  # file -> ways to damage it
    "classes.json": [b"", b"{not json", b'{"a": 1}', b"[1, 2]", b"\xff\xfe"],
    "run.json": [b"", b"[]", b'{"normalize": 5}', b'{"normalize": {"mean": [0.1], "std": [0]}}'],
    "spec.json": [b"", b"null"],
    "spec.cnn": [b"", b"\xff\xfe", b"network"],
    "metrics.json": [b"", b'{"epochs": 3}'],
    "weights.safetensors": [b"", b"garbage"],
}


def _main(capsys, *args) -> tuple[int, str]:
    """cnnspec's entry point in this process (its error handling is what is tested):
    (exit status, stderr)."""
    from cnnspec.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name, content", [(n, c) for n, cs in DAMAGE.items() for c in cs])
def test_a_damaged_run_file_is_named_never_a_traceback(finished, tmp_path, capsys, name,
                                                       content):
    """One in seven hostile run folders gave a traceback in evaluate, predict or resume."""
    import shutil

    run, digit = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / name).write_bytes(content)
    for args in (["predict", copy, digit, "--backend", "torch"], ["predict", copy, digit],
                 ["evaluate", copy], ["compile", "--resume", copy, "--epochs", "2"]):
        code, stderr = _main(capsys, *args)
        assert code in (0, 1), (args, stderr[-2000:])
        assert "internal error" not in stderr, (args, stderr)
        if code == 1:
            assert "error" in stderr


@pytest.mark.parametrize("name, key, value", [
    ("run.json", "data", -1), ("run.json", "device", -1), ("run.json", "normalize", "x"),
    ("run.json", "overrides", []), ("spec.json", "train", None), ("spec.json", "train", "x"),
    ("spec.json", "train", {"split": 7})])
def test_a_run_file_entry_of_the_wrong_type_is_named(finished, tmp_path, capsys, name, key,
                                                     value):
    """Found by scripts/hostile.py: run.json's data or device as a number, spec.json's train
    settings as null, gave a TypeError / AttributeError traceback in evaluate or resume."""
    import shutil

    run, _ = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    doc = json.loads((copy / name).read_text())
    (copy / name).write_text(json.dumps({**doc, key: value}))
    for args in (["evaluate", copy], ["compile", "--resume", copy, "--epochs", "2"]):
        code, stderr = _main(capsys, *args)
        assert code == 1, (args, stderr[-2000:])
        assert f"{copy / name}: damaged (" in stderr, (args, stderr)


@pytest.mark.parametrize("name", ["run.json", "classes.json", "spec.cnn", "spec.json",
                                  "last.ckpt"])
def test_a_fifo_in_place_of_a_run_file_is_named_not_waited_on(finished, tmp_path, name):
    """Found by scripts/hostile.py: a FIFO in place of a run file blocked evaluate, predict
    and resume forever (opening it waits for a writer)."""
    import os
    import shutil

    run, digit = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / name).unlink()
    os.mkfifo(copy / name)
    for args in (["evaluate", copy], ["predict", copy, digit, "--backend", "torch"],
                 ["compile", "--resume", copy, "--epochs", "2"]):
        if (name == "last.ckpt" and args[0] != "compile") or (
                name == "spec.json" and args[0] == "predict"):
            continue  # files those commands do not read
        r = subprocess.run([sys.executable, "-m", "cnnspec", *map(str, args)], check=False,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1, (args, r.stderr[-2000:])
        assert f"{copy / name}: damaged (not a regular file)" in r.stderr, (args, r.stderr)


def test_nan_weights_give_an_error_not_nan_percent(finished, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    run, digit = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    weights = load_file(copy / "weights.safetensors")
    weights = {k: v.float().fill_(float("nan")) if v.is_floating_point() else v
               for k, v in weights.items()}
    save_file(weights, copy / "weights.safetensors")
    r = _cli("predict", copy, digit, "--backend", "torch")
    assert r.returncode == 1 and "nan%" not in r.stdout
    assert "the network's outputs are not finite (NaN or inf)" in r.stderr
