"""docs/errors.md holds true: every example message in its tables is produced by a real
command here (or, where it takes a GPU, a torchrun group or an exporter bug, by the test
named in ELSEWHERE, which must quote it). A documented message that the code no longer
prints, or a new row without a scenario, fails.

Matching: runs of digits count as equal (``step 2`` ~ ``step 5``), whitespace is collapsed,
and ``...`` in an example stands for any text; paths of this machine are replaced by the
ones the example shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, SPECS

DOC = ROOT / "docs" / "errors.md"
TINY = """network Tiny
input 12x12x1
conv 3x3x4 relu
maxpool 2
flatten
dense 3
train:
    epochs 1
    batch 4
    optimizer sgd lr 0.05
"""


def examples() -> list[str]:
    """The first cell of every table row of docs/errors.md (the example message)."""
    rows = re.findall(r"^\| `(.+?)`(?: \(.*?\))? \| ", DOC.read_text(), flags=re.MULTILINE)
    return rows


def _norm(text: str) -> str:
    return re.sub(r"\d+", "#", " ".join(text.split()))


def _matches(example: str, output: str) -> bool:
    pattern = ".*?".join(re.escape(part.strip()) for part in _norm(example).split("..."))
    return re.search(pattern, _norm(output)) is not None


def _images(folder: Path, classes, per_class=4) -> Path:
    for k, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(np.full((12, 12), 20 * k + i, np.uint8)).save(
                folder / name / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder with photos/ (3 classes), a tiny spec and its finished run runs/r."""
    tmp = tmp_path_factory.mktemp("errors_doc")
    _images(tmp / "photos", ["a", "b", "c"])
    (tmp / "tiny.cnn").write_text(TINY + '    data "photos"\n')
    here = os.getcwd()
    os.chdir(tmp)
    try:
        assert _main(["compile", "tiny.cnn", "--train", "--out", "runs/r"]) == 0
    finally:
        os.chdir(here)
    return tmp


def _main(args) -> int:
    """cnnspec's entry point in this process: its exit status."""
    from cnnspec.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code or 0
    return 0


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _run_copy(tmp: Path) -> str:
    shutil.rmtree(tmp / "runs" / "r2", ignore_errors=True)
    shutil.copytree(tmp / "runs" / "r", tmp / "runs" / "r2")
    return "runs/r2"


HEAD = "network T\ninput 28x28x1\n"
# example (its start) -> a function of the scratch folder giving (args, path replacements)
SCENARIOS = {
    "lenet.cnn:7:22: error: optimizer: the learning rate": lambda t: (
        ["check", _write(t, "lenet.cnn", HEAD + "conv 5x5x6 relu\nflatten\ndense 10\ntrain:\n"
                         "    optimizer sgd lr 1e39\n").name], {}),
    "t.cnn:4:1: error: 'epochs' is a setting": lambda t: (
        ["check", _write(t, "t.cnn", HEAD + "conv 3x3x4\nepochs 3\nflatten\ndense 10\n").name],
        {}),
    "t.cnn:3:1: error: C1: 99,999,999,999,990 parameters": lambda t: (
        ["check", _write(t, "t.cnn", HEAD + "conv 3x3x9999999999999\nflatten\ndense 10\n")
         .name], {}),
    "t.cnn:3:9: error: cannot read the included file": lambda t: (
        ["check", _fifo_include(t)], {str(t): "/tmp/x"}),
    "t.cnn:6:1: error: transfer: from": lambda t: (
        ["check", str(_write(t, "specs/t.cnn", HEAD + "flatten\ndense 10\ntransfer:\n"
                             '    from "runs/source"\n').relative_to(t))],
        {str(t): "/home/me"}),
    "lenet.cnn: 5,000,000 bytes": lambda t: (
        ["check", _write(t, "lenet.cnn", "#" * 4_999_999 + "\n").name], {}),
    "photos: holds 3 image(s) but no class folders": lambda t: (
        ["compile", SPECS / "lenet5.cnn", "--train", "--data", _flat(t / "flat" / "photos")],
        {str(t / "flat") + "/": ""}),
    "photos: no such data folder": lambda t: (
        (t / "nowhere" / "photoz").mkdir(parents=True, exist_ok=True),
        ["compile", SPECS / "lenet5.cnn", "--train", "--data", "nowhere/photos"],
        {"nowhere/": ""})[1:],
    "photos/cat.png: cannot read the image": lambda t: (
        ["predict", "runs/r", _write(t, "photos/cat.png", "not a png").relative_to(t),
         "--backend", "torch"], {}),
    "LeNet5 ends in 10 outputs but": lambda t: (
        ["compile", SPECS / "lenet5.cnn", "--train", "--data",
         _images(t / "twelve", [f"c{i}" for i in range(12)], 1)], {}),
    "the loss exploded to": lambda t: (
        ["compile", SPECS / "lenet5.cnn", "--train", "--lr", "1e6", "--epochs", "1",
         "--out", "runs/exploded"], {}),
    "runs/r is being trained by process": lambda t: (
        ["compile", "--resume", _locked(t), "--epochs", "2"],
        {"r2": "r", socket.gethostname(): "host-1"}),
    "runs/r already holds a run": lambda t: (
        ["compile", "tiny.cnn", "--train", "--out", "runs/r"], {}),
    "runs/r: cannot resume from this run folder: EOFError": lambda t: (
        ["compile", "--resume", _damage(t, "last.ckpt", b""), "--epochs", "2"], {"r2": "r"}),
    "runs/r/metrics.json is a symbolic link": lambda t: (
        ["compile", "--resume", _linked(t), "--epochs", "2"],
        {"r2": "r", str(t / "outside.json"): "/etc/x"}),
    "runs/r/model.onnx: no such file": lambda t: (
        ["predict", _damage(t, "model.onnx", None), "photos/a/0.png"], {"r2": "r"}),
    "runs/r/best.safetensors: not a readable safetensors file": lambda t: (
        ["evaluate", _damage(t, "best.safetensors", b"garbage"), "--weights", "best"],
        {"r2": "r"}),
    "runs/r/weights.safetensors does not fit LeNet5": lambda t: (
        ["evaluate", _lenet_with_tiny_weights(t)], {"r3": "r"}),
}



def _resume_batch(t):
    from cnnspec.training.distributed import Group

    return lambda: Group(world_size=3).per_process_batch(64, resuming=True), {}


def _sync_on_cpu(t):
    import torch
    from torch import nn

    from cnnspec.training.distributed import Group, sync_batchnorm

    return (lambda: sync_batchnorm(nn.Sequential(nn.BatchNorm2d(3)), Group(world_size=2),
                                   torch.device("cpu")), {})


def _device_under_torchrun(t):
    from cnnspec.training.distributed import join

    env = {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}

    def call():
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            join("cuda:1")
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return call, {}


def _exporter_disagrees(t):
    """A module whose output changes between calls: the exported graph keeps the traced
    value, so ONNX Runtime and PyTorch disagree, as an exporter bug would make them."""
    from torch import nn

    import cnnspec
    from cnnspec.export import export_onnx

    class Drift(nn.Module):
        calls = 0

        def forward(self, x):
            self.calls += 1
            return x.flatten(1) * (1 + 0.002 * self.calls)

    spec = cnnspec.loads(TINY, "tiny.cnn")
    return lambda: export_onnx(Drift(), spec, t / "m.onnx"), {str(t) + "/": ""}


# example (its start) -> a function of the scratch folder giving (a call that must raise a
# CnnSpecError, path replacements): messages that need a torchrun group or a GPU to reach
# from the command line, or an exporter bug
CALLS = {
    "... this run's batch is fixed": _resume_batch,
    "sync_batchnorm on: torch's SyncBatchNorm runs on GPUs only": _sync_on_cpu,
    "--device cuda:1: under torchrun each process": _device_under_torchrun,
    "ONNX Runtime disagrees with PyTorch": _exporter_disagrees,
}

# examples shown by other tests (a NaN loss, a full disk, torchrun groups):
# example start -> (test file, a piece of the message that the test checks)
ELSEWHERE = {
    "the loss became nan at epoch 1, step 5": ("test_train_settings.py", "became nan"),
    "the validation loss became nan after epoch 3": ("test_train_settings.py",
                                                     "validation loss became nan"),
    "cannot write runs/r/last.ckpt": ("test_run_safety.py", "the disk may be full"),
    "batch 63 is the global batch": ("test_distributed.py", "must split evenly"),
    "WORLD_SIZE=2 is set but RANK": ("test_distributed.py", "is set but RANK"),
}


def _fifo_include(t: Path) -> str:
    if not (t / "fifo").exists():
        os.mkfifo(t / "fifo")
    return _write(t, "t.cnn", HEAD + 'include "fifo"\nflatten\ndense 10\n').name


def _flat(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.fromarray(np.full((12, 12), i, np.uint8)).save(folder / f"{i}.png")
    return folder


def _damage(t: Path, name: str, content: bytes | None) -> str:
    run = _run_copy(t)
    if content is None:
        (t / run / name).unlink()
    else:
        (t / run / name).write_bytes(content)
    return run


def _locked(t: Path) -> str:
    run = _run_copy(t)
    (t / run / "run.lock").write_text(json.dumps(
        {"pid": os.getppid(), "host": socket.gethostname(), "started": "2026-12-03 04:10:00"}))
    return run


def _linked(t: Path) -> str:
    run = _run_copy(t)
    (t / "outside.json").write_text("{}")
    (t / run / "metrics.json").unlink()
    (t / run / "metrics.json").symlink_to(t / "outside.json")
    return run


def _lenet_with_tiny_weights(t: Path) -> str:
    shutil.rmtree(t / "runs" / "r3", ignore_errors=True)
    shutil.copytree(t / "runs" / "r", t / "runs" / "r3")
    (t / "runs" / "r3" / "spec.cnn").write_text((SPECS / "lenet5.cnn").read_text())
    return "runs/r3"


def _find(table: dict, example: str):
    keys = [k for k in table if example.startswith((k, k.lstrip(". ")))]
    return table[keys[0]] if keys else None


def test_every_example_has_a_scenario_or_a_test_elsewhere():
    found = examples()
    assert len(found) >= 25  # the tables were read
    missing = [e for e in found if not any(_find(t, e) for t in (SCENARIOS, CALLS, ELSEWHERE))]
    assert missing == []


@pytest.mark.parametrize("example", [e for e in examples() if _find(SCENARIOS, e)])
def test_the_documented_message_is_the_one_printed(world, capsys, monkeypatch, example):
    monkeypatch.chdir(world)
    args, replace = _find(SCENARIOS, example)(world)
    capsys.readouterr()
    code = _main(args)
    printed = "".join(capsys.readouterr())
    for mine, shown in replace.items():
        printed = printed.replace(mine, shown)
    assert code in (1, 2), printed
    assert _matches(example, printed), f"documented:\n{example}\nprinted:\n{printed}"


@pytest.mark.parametrize("example", [e for e in examples() if _find(CALLS, e)])
def test_the_documented_message_is_the_one_raised(tmp_path, example):
    from cnnspec import CnnSpecError

    call, replace = _find(CALLS, example)(tmp_path)
    with pytest.raises(CnnSpecError) as info:
        call()
    printed = info.value.render()
    for mine, shown in replace.items():
        printed = printed.replace(mine, shown)
    assert _matches(example, printed), f"documented:\n{example}\nraised:\n{printed}"


@pytest.mark.parametrize("example", [e for e in examples() if _find(ELSEWHERE, e)])
def test_examples_shown_elsewhere_are_checked_there(example):
    test_file, piece = _find(ELSEWHERE, example)
    assert piece in (ROOT / "tests" / test_file).read_text()
    assert _matches(piece, example)
