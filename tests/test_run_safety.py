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
from conftest import SPECS

TINY = """network Tiny
input 28x28x1
conv 3x3x4 relu
maxpool 2
flatten
dense 10
train:
    epochs {epochs}
    batch 128
    optimizer sgd lr 0.05
"""


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
    (run / ".last.ckpt.x1y2z3").write_bytes(b"half a checkpoint")  # an interrupted write
    result = resume(run, epochs=3, export=False)
    assert [m["epoch"] for m in result.metrics] == [1, 2, 3]
    assert result.metrics[1] == pytest.approx(second)
    assert not (run / ".last.ckpt.x1y2z3").exists()


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
