"""Training end to end on real digits: the main job, image folders, run folders, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import cnnspec
from cnnspec.files import atomic_write
from cnnspec.training.run_folder import RunFolder
from conftest import SPECS


@pytest.mark.slow
def test_main_job_lenet5_reaches_97_percent_on_embedded_digits(tmp_path):
    """The README's first command: specs/lenet5.cnn as written, on the embedded digits."""
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    run = cnnspec.train(spec, out=tmp_path / "run")
    print(f"LeNet-5: val accuracy {run.final['val_accuracy']:.4f} in {run.seconds:.1f} s")
    assert run.final["val_accuracy"] >= 0.97
    assert [m["epoch"] for m in run.metrics] == list(range(1, 21))
    # the lecture's step schedule, epoch by epoch: one numbering, so the spec's "11: 0.01" is
    # the rate of the record with epoch 11 (the line printed "epoch 11")
    assert [m["lr"] for m in run.metrics] == pytest.approx([0.1] * 10 + [0.01] * 5 + [0.001] * 5)
    steps = {m.epoch: m.lr for m in spec.train.schedule.steps}
    assert {m["epoch"]: m["lr"] for m in run.metrics if m["epoch"] in steps} == steps

    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"weights.safetensors", "spec.cnn", "spec.json", "classes.json", "metrics.json",
            "model.onnx"} <= files
    assert not [f for f in files if f.startswith(".")]  # no temporary files left behind
    assert (tmp_path / "run" / "spec.cnn").read_text() == (SPECS / "lenet5.cnn").read_text()
    assert run.export.relative_error < 1e-4

    # the saved weights reproduce the trained module's outputs
    fresh = cnnspec.build(spec).eval()
    fresh.load_state_dict(load_file(tmp_path / "run" / "weights.safetensors"))
    x = torch.rand(5, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(fresh(x), run.model.eval()(x))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"][-1]["val_accuracy"] == run.final["val_accuracy"]


@pytest.mark.slow
def test_adam_trains_lenet5_to_97_percent_too(tmp_path):
    """The lecture's other optimizer: specs/lenet5-adam.cnn (Adam 1e-3, multistep x0.1 at
    epochs 10 and 15) on the same digits, split and seed as the SGD main job."""
    spec = cnnspec.load(SPECS / "lenet5-adam.cnn")
    run = cnnspec.train(spec, out=tmp_path / "run", export=False)
    print(f"LeNet-5 Adam: val accuracy {run.final['val_accuracy']:.4f} in {run.seconds:.1f} s")
    assert run.final["val_accuracy"] >= 0.97
    assert [m["lr"] for m in run.metrics] == pytest.approx([1e-3] * 10 + [1e-4] * 5 + [1e-5] * 5)


def test_mixed_folder_rgb_grayscale_corrupt_hidden_trains(tmp_path, digit_folder):
    """An RGB spec on a folder of RGB PNGs and JPEGs with one grayscale image, one truncated
    file and a hidden folder: it trains, and the run names the corrupt file."""
    for i, p in enumerate(sorted(digit_folder.rglob("*.png"))):
        if i == 5:
            continue  # this one stays grayscale
        rgb = Image.open(p).convert("RGB")
        if i % 2:
            rgb.save(p.with_suffix(".jpg"), quality=95)
            p.unlink()
        else:
            rgb.save(p)
    good = next((digit_folder / "digit7").glob("*.jpg"))
    truncated = digit_folder / "digit7" / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    (digit_folder / ".cache" / "x").mkdir(parents=True)
    Image.new("RGB", (28, 28)).save(digit_folder / ".cache" / "x" / "a.png")
    spec = cnnspec.loads("network Tiny\ninput 28x28x3\nconv 3x3x8 relu\nmaxpool 2\nflatten\n"
                         "dense 3\ntrain:\n    epochs 2\n    batch 32\n    optimizer adam lr 0.003\n")
    run = cnnspec.train(spec, data=digit_folder, out=tmp_path / "run", export=False)
    assert run.classes == ["digit1", "digit4", "digit7"]  # .cache is not a class
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [s["path"] for s in info["skipped"]] == [str(truncated)]
    assert info["train_images"] + info["val_images"] == 180  # 3 x 60, the truncated one skipped
    assert run.final["val_accuracy"] > 0.8


def test_image_folder_training_writes_a_run(tmp_path, digit_folder):
    # a corrupt PNG, a hidden folder and a hidden file must not stop the run
    (digit_folder / "digit4" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (digit_folder / ".ipynb_checkpoints").mkdir()
    (digit_folder / "digit1" / ".DS_Store").write_bytes(b"\0\0")
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    run = cnnspec.train(spec, data=digit_folder, out=tmp_path / "run", epochs=4)
    assert run.classes == ["digit1", "digit4", "digit7"]
    assert json.loads((tmp_path / "run" / "classes.json").read_text()) == run.classes
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [s["path"] for s in info["skipped"]] == [str(digit_folder / "digit4" / "broken.png")]
    # 3 classes x 60 images, stratified 80/20: 48 train and 12 val per class
    assert run.final["val_accuracy"] > 0.8
    resolved = json.loads((tmp_path / "run" / "spec.json").read_text())
    assert resolved["train"]["epochs"] == 4  # the override is recorded


def test_rgb_spec_reads_grayscale_pngs(tmp_path, digit_folder):
    spec = cnnspec.loads("network Tiny\ninput 16x16x3\nconv 3x3x4 relu\nmaxpool 2\nflatten\ndense 3\n"
                         "train:\n    epochs 1\n    batch 32\n")
    run = cnnspec.train(spec, data=digit_folder, out=tmp_path / "run", export=False)
    assert run.model[0].weight.shape == (4, 3, 3, 3)
    assert len(run.metrics) == 1


def test_same_seed_same_metrics(tmp_path, digit_folder):
    spec = cnnspec.load(SPECS / "lenet5.cnn")
    a = cnnspec.train(spec, data=digit_folder, out=tmp_path / "a", epochs=2, export=False)
    b = cnnspec.train(spec, data=digit_folder, out=tmp_path / "b", epochs=2, export=False)
    strip = [{k: v for k, v in m.items() if k not in ("seconds", "images_per_s")} for m in a.metrics]
    assert strip == [{k: v for k, v in m.items() if k not in ("seconds", "images_per_s")} for m in b.metrics]


def test_too_few_outputs_for_the_classes(tmp_path, digit_folder):
    spec = cnnspec.loads("input 32x32x1\nflatten\ndense 2\n")
    with pytest.raises(cnnspec.DataError, match="3 classes"):
        cnnspec.train(spec, data=digit_folder, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_empty_class_folder_is_an_error(tmp_path, digit_folder):
    (digit_folder / "digit9").mkdir()
    with pytest.raises(cnnspec.DataError, match="digit9: class folder has no images"):
        cnnspec.train(cnnspec.load(SPECS / "lenet5.cnn"), data=digit_folder, out=tmp_path / "r")


def test_image_folder_converts_size_and_channels(tmp_path):
    from cnnspec.data import load_data
    from cnnspec.ir import InputShape

    for cls, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (40, 30), colour).save(tmp_path / cls / "a.jpg", quality=95)
        Image.new("RGB", (10, 10), colour).save(tmp_path / cls / "b.png")
    data = load_data(tmp_path, InputShape(height=8, width=8, channels=1))
    assert data.shape == (4, 1, 8, 8) and data.array.dtype == np.uint8
    assert data.classes == ["blue", "red"]
    # ITU-R 601-2 luma: red -> 76, blue -> 29 (torchvision's rgb_to_grayscale weights)
    lum = {c: int(np.median(data.array[data.labels == i])) for i, c in enumerate(data.classes)}
    assert abs(lum["red"] - 76) <= 2 and abs(lum["blue"] - 29) <= 2


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "weights.safetensors"
    target.write_text("old")

    def fail(tmp):
        Path(tmp).write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(cnnspec.CnnSpecError, match=f"cannot write {target}: No space left on "
                       r"device \(.* MiB free there\); the disk may be full"):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.safetensors"]


def test_default_run_folder_never_overwrites_an_earlier_run(tmp_path):
    base = tmp_path / "runs" / "LeNet5"
    assert RunFolder.next_free(base).path == base
    base.mkdir(parents=True)
    assert RunFolder.next_free(base).path == base  # an empty folder is free
    (base / "metrics.json").write_text("{}")
    assert RunFolder.next_free(base).path == tmp_path / "runs" / "LeNet5-2"
    (tmp_path / "runs" / "LeNet5-2").mkdir()
    (tmp_path / "runs" / "LeNet5-2" / "metrics.json").write_text("{}")
    assert RunFolder.next_free(base).path == tmp_path / "runs" / "LeNet5-3"


@pytest.mark.slow
def test_custom_alexnet_on_three_digit_classes_reaches_95_percent(tmp_path, digits):
    """The course's assignment: a custom AlexNet on 3 classes x 250 images of one's own, here
    real digits written out as a PNG image folder."""
    from conftest import write_digit_folder

    images, labels = digits
    folder = write_digit_folder(tmp_path / "data", images, labels, (3, 5, 8), 250)
    spec = cnnspec.load(SPECS / "alexnet-custom.cnn")
    run = cnnspec.train(spec, data=folder, out=tmp_path / "run", export=False)
    print(f"AlexNetCustom on 3x250 digits: val accuracy {run.final['val_accuracy']:.4f}")
    assert len(run.metrics) == 15 and run.classes == ["digit3", "digit5", "digit8"]
    assert run.final["val_accuracy"] >= 0.95


def test_train_and_val_folders_keep_their_split(tmp_path, digits):
    """root/train/<class> and root/val/<class>: the val/ images validate, whatever split says."""
    from conftest import write_digit_folder

    images, labels = digits
    write_digit_folder(tmp_path / "d" / "train", images, labels, (1, 4, 7), 40)
    # the last 15 of each class (reversed order): no image in both folders
    write_digit_folder(tmp_path / "d" / "val", images[::-1], labels[::-1], (1, 4, 7), 15)
    spec = cnnspec.loads("network Tiny\ninput 28x28x1\nconv 3x3x8 relu\nmaxpool 2\nflatten\n"
                         "dense 3\ntrain:\n    epochs 1\n    split 0.5\n")
    run = cnnspec.train(spec, data=tmp_path / "d", out=tmp_path / "run", export=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (info["train_images"], info["val_images"]) == (120, 45)
    assert run.classes == ["digit1", "digit4", "digit7"]
    (tmp_path / "d" / "val" / "digit9").mkdir()
    Image.fromarray(images[0]).save(tmp_path / "d" / "val" / "digit9" / "a.png")
    with pytest.raises(cnnspec.DataError, match="digit9 are not in"):
        cnnspec.train(spec, data=tmp_path / "d", out=tmp_path / "run2", export=False)


def test_a_head_wider_than_the_classes_reports_among_the_classes(tmp_path, digit_folder):
    """dense 10 on 3 classes, barely trained (lr 1e-9): predictions may land on the 7 spare
    outputs; accuracy, the confusion matrix, evaluate and predict count the 3 classes only."""
    from cnnspec.training import evaluate_run, predict

    spec = cnnspec.loads("network Wide\ninput 28x28x1\nflatten\ndense 10\ntrain:\n    epochs 1\n"
                         "    optimizer sgd lr 1e-9\n")
    cnnspec.train(spec, data=digit_folder, out=tmp_path / "run", export=False)
    assert (tmp_path / "run" / "confusion.png").exists()
    report = evaluate_run(tmp_path / "run", digit_folder)
    assert sum(map(sum, report["confusion"])) == 36 and len(report["confusion"]) == 3
    top = predict(tmp_path / "run", [next((digit_folder / "digit1").glob("*.png"))], top_k=10)
    assert len(top[0]["top"]) == 3
    assert sum(t["probability"] for t in top[0]["top"]) == pytest.approx(1.0)
