"""`log tensorboard` / --tensorboard: real event files in the run folder, read back with
TensorBoard's own reader; the same weights as a run without it; a resume appends without
duplicates; a clear error when tensorboard is not installed."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import cnnspec
from cnnspec.errors import CnnSpecError

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

SPEC = """network Small
input 16x16x1
conv 3x3x4 relu
maxpool 2
flatten
dense 10
train:
    epochs {epochs}
    batch 100
    optimizer sgd lr 0.05 momentum 0.9
    schedule step:
        2: 0.01
    augment: crop 16 pad 2
    {log}
"""


def events(run) -> event_accumulator.EventAccumulator:
    acc = event_accumulator.EventAccumulator(str(run / "tensorboard"),
                                             size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tb")
    run = cnnspec.train(cnnspec.loads(SPEC.format(epochs=2, log="log tensorboard")),
                        out=tmp / "run", export=False)
    return tmp, run


def test_scalars_images_graph_and_spec_are_logged(logged):
    _, run = logged
    acc = events(run.out)
    tags = acc.Tags()
    for tag in ("loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr", "step/loss",
                "step/lr", "images_per_s"):
        assert tag in tags["scalars"], tag
    # per epoch: the metrics file's numbers, at epochs 1 and 2
    val = acc.Scalars("accuracy/val")
    assert [e.step for e in val] == [1, 2]
    assert [e.value for e in val] == pytest.approx([m["val_accuracy"] for m in run.metrics])
    assert [e.value for e in acc.Scalars("loss/train")] == pytest.approx(
        [m["train_loss"] for m in run.metrics], rel=1e-6)
    # per step, every 10: 40 steps per epoch (4,000 images / 100) -> steps 10, 20, ..., 80
    assert [e.step for e in acc.Scalars("step/loss")] == list(range(10, 81, 10))
    # the rate each step used: step 40 is epoch 1's last (0.05), step 50 is in epoch 2
    assert [round(e.value, 6) for e in acc.Scalars("step/lr")] == [0.05] * 4 + [0.01] * 4
    assert [e.value for e in acc.Scalars("lr")] == pytest.approx([0.05, 0.01])
    assert tags["images"] == ["train/augmented"]
    image = acc.Images("train/augmented")[0]
    assert image.width > 8 * 16 and image.height > 4 * 16  # 32 images, 8 per row
    assert tags["graph"] is True
    assert "spec/text_summary" in tags["tensors"]


def test_logging_changes_nothing_in_training(logged):
    tmp, run = logged
    plain = cnnspec.train(cnnspec.loads(SPEC.format(epochs=2, log="")), out=tmp / "plain",
                          export=False)
    a = load_file(run.out / "weights.safetensors")
    b = load_file(plain.out / "weights.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the image grid and the graph draw nothing


def test_a_resumed_run_appends_once(tmp_path):
    from cnnspec.training import resume

    cnnspec.train(cnnspec.loads(SPEC.format(epochs=1, log="log tensorboard")),
                  out=tmp_path / "run", export=False)
    resume(tmp_path / "run", epochs=2)
    acc = events(tmp_path / "run")
    assert [e.step for e in acc.Scalars("loss/val")] == [1, 2]
    assert [e.step for e in acc.Scalars("step/loss")] == list(range(10, 81, 10))


def test_the_command_line_flag_and_a_missing_package(tmp_path, monkeypatch):
    from cnnspec.training import tensorboard

    spec = cnnspec.loads(SPEC.format(epochs=1, log=""))
    assert not spec.train.tensorboard
    monkeypatch.setattr(tensorboard.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CnnSpecError, match="tensorboard package is not installed; pip install"):
        cnnspec.train(spec, out=tmp_path / "run", overrides={"tensorboard": True}, export=False)
    assert not (tmp_path / "run").exists()  # nothing was left behind


def test_a_file_in_place_of_the_tensorboard_folder_is_named(tmp_path):
    from cnnspec.training import resume

    cnnspec.train(cnnspec.loads(SPEC.format(epochs=1, log="log tensorboard")),
                  out=tmp_path / "run", export=False)
    import shutil

    shutil.rmtree(tmp_path / "run" / "tensorboard")
    (tmp_path / "run" / "tensorboard").write_text("not a folder")
    with pytest.raises(CnnSpecError, match="a file where the TensorBoard folder goes"):
        resume(tmp_path / "run", epochs=2)
    assert (tmp_path / "run" / "tensorboard").read_text() == "not a folder"
