"""torchrun: real process groups (gloo on the CPU) started by real torchrun processes.

Two processes with the global batch split between them must train the network a single
process trains with that batch; one run folder, each epoch recorded once; resume continues
the whole group; a killed rank ends the group with a non-zero status and a message.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnspec.data.images import EpochBatches
from cnnspec.errors import CnnSpecError
from cnnspec.training.distributed import Group

# No batch norm, no dropout, no augmentation: the same global batch gives the same gradient
# however it is split. SGD with momentum, so the optimizer state matters across a resume.
PLAIN = """network Plain
input 28x28x1
conv 5x5x6 relu
maxpool 2
conv 5x5x8 relu
maxpool 2
flatten
dense 32 relu
dense 10
train:
    epochs 2
    batch 66
    optimizer sgd lr 0.01 momentum 0.5
    seed 3
"""


def _cnnspec(*args, torchrun: int = 0, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc-per-node", str(torchrun), "-m", "cnnspec"] if torchrun
                else [sys.executable, "-m", "cnnspec"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, *map(str, args)], check=False, capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def test_sampler_splits_every_global_batch_between_the_ranks():
    n, batch = 103, 10  # 10 full batches and a tail of 3
    single = list(EpochBatches(n, batch, shuffle=True, generator=torch.Generator().manual_seed(5)))
    ranks = [list(EpochBatches(n, batch, shuffle=True, rank=r, world_size=2,
                               generator=torch.Generator().manual_seed(5))) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 11
    for b, (_, positions) in enumerate(single):
        a, c = ranks[0][b][1], ranks[1][b][1]
        assert a + c == positions  # rank 0 takes the first share, rank 1 the rest
        assert abs(len(a) - len(c)) <= 1 and min(len(a), len(c)) >= 1
        assert ranks[0][b][0] != ranks[1][b][0]  # their own augmentation seeds
    # a tail with fewer images than processes is left out rather than given to one of them
    assert len(EpochBatches(101, 10, shuffle=False, rank=0, world_size=2)) == 10
    assert EpochBatches(101, 10, shuffle=False).global_size(10) == 1


def test_global_batch_must_split_evenly():
    assert Group(world_size=4).per_process_batch(256) == 64
    with pytest.raises(CnnSpecError, match="batch 63 is the global batch and must split evenly "
                       "over the 2 processes.*use batch 62 or 64"):
        Group(world_size=2).per_process_batch(63)
    with pytest.raises(CnnSpecError, match="use a batch of at least 4, a multiple of 4"):
        Group(world_size=4).per_process_batch(3)
    # a resumed run keeps its batch: name the process counts that split it
    with pytest.raises(CnnSpecError, match=r"--nproc-per-node \(x nodes\) = 1, 2, 4, 8, 16, 32, 64$"):
        Group(world_size=3).per_process_batch(64, resuming=True)


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "2"}, ("WORLD_SIZE=2 is set but RANK, MASTER_ADDR, MASTER_PORT are not: "
                          "start many processes with torchrun")),
    ({"WORLD_SIZE": "abc"}, "must be whole numbers: WORLD_SIZE=abc"),
    ({"WORLD_SIZE": "2", "RANK": "x", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, "RANK=x"),
])
def test_a_torchrun_environment_without_torchrun_is_a_clear_error(monkeypatch, env, message):
    from cnnspec.training.distributed import from_env

    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(CnnSpecError, match=re.escape(message)):
        from_env()


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs gloo")
def test_a_group_trains_what_one_process_trains_and_resumes_as_a_group(tmp_path):
    spec = tmp_path / "plain.cnn"
    spec.write_text(PLAIN)
    one = _cnnspec("compile", spec, "--train", "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    # three processes for one epoch (4,000 images = 60 x 66 + 40: the last batch is shared
    # 14/13/13), then a group of two resumes it to the second epoch
    first = _cnnspec("compile", spec, "--train", "--epochs", "1", "--out", tmp_path / "two",
                     torchrun=3)
    assert first.returncode == 0, first.stderr
    assert "torchrun: 3 processes (gloo), global batch 66 = 22 per process" in first.stderr
    assert first.stdout.count("val accuracy") == 1  # only rank 0 reports
    resumed = _cnnspec("compile", "--resume", tmp_path / "two", "--epochs", "2", torchrun=2)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "plain.cnn", "two"]

    a = load_file(tmp_path / "one" / "weights.safetensors")
    b = load_file(tmp_path / "two" / "weights.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    ma = json.loads((tmp_path / "one" / "metrics.json").read_text())["epochs"]
    mb = json.loads((tmp_path / "two" / "metrics.json").read_text())["epochs"]
    assert [m["epoch"] for m in mb] == [1, 2]  # each epoch once
    for x, y in zip(ma, mb, strict=True):  # all-reduced: the whole batch's and val set's numbers
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-4)
        assert y["val_accuracy"] == pytest.approx(x["val_accuracy"], abs=1e-3)
    info = json.loads((tmp_path / "two" / "run.json").read_text())
    assert (info["world_size"], info["backend"], info["global_batch"],
            info["batch_per_process"]) == (2, "gloo", 66, 33)  # as last resumed
    assert json.loads((tmp_path / "one" / "run.json").read_text())["world_size"] == 1


def _children(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids]


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_killing_one_rank_ends_the_group_with_a_message(tmp_path):
    spec = tmp_path / "plain.cnn"
    spec.write_text(PLAIN.replace("epochs 2", "epochs 200"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "cnnspec", "compile", str(spec), "--train", "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "run" / "last.ckpt").exists():  # training is under way
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the first epoch never ended"
            time.sleep(0.5)
        victim = next(p for p in _children(proc.pid) if _rank_of(p) == 1)
        os.kill(victim, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "Signal 9 (SIGKILL)" in stderr and "rank" in stderr and "FAILED" in stderr
    assert not any(p.name.startswith("run-") for p in tmp_path.iterdir())


@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="needs gloo")
def test_processes_that_see_different_data_are_stopped_before_training(tmp_path):
    """Issue 29, finding 26: different image counts ended in SIGABRT and an internal
    error, different class names trained silently with wrong labels. A launcher gives each
    rank its own folder (as another mount or copy on another machine would)."""
    from PIL import Image

    for rank, classes in ((0, ("cat", "dog")), (1, ("cat", "fox"))):
        for c in classes:
            (tmp_path / f"d{rank}" / c).mkdir(parents=True)
            for i in range(6):
                Image.new("L", (28, 28), 40 * i).save(tmp_path / f"d{rank}" / c / f"{i}.png")
    spec = tmp_path / "t.cnn"
    spec.write_text("network T\ninput 28x28x1\nflatten\ndense 2\ntrain:\n    epochs 1\n"
                    "    batch 4\n    workers 0\n")
    launcher = tmp_path / "launch.py"
    launcher.write_text("import os, sys\nfrom cnnspec.cli import main\n"
                        f"main(['compile', {str(spec)!r}, '--train', '--out', "
                        f"{str(tmp_path / 'run')!r}, '--data', "
                        f"{str(tmp_path)!r} + '/d' + os.environ['RANK']])\n")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc-per-node", "2", str(launcher)], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    assert r.returncode != 0
    said = ("error: rank 1 sees other data than rank 0: 12 images in classes cat, fox "
            "against rank 0's 12 images in classes cat, dog")
    assert f"rank 0: {said}" in r.stderr and f"rank 1: {said}" in r.stderr, r.stderr[-3000:]
    assert "internal error" not in r.stderr
    assert not (tmp_path / "run" / "last.ckpt").exists()
