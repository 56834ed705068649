"""The input pipeline: the decoded cache, streaming statistics, the Dataset and its batches,
fused geometric augmentation, workers, threads, per-step schedules, user callbacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnspec
from cnnspec import ir
from cnnspec.data import ImageSet, augmentation, channel_stats, load_data, loader
from cnnspec.data.transforms import BatchGeometry
from cnnspec.errors import DataError
from cnnspec.training import Callback
from cnnspec.training.optim import make_scheduler
from cnnspec.training.settings import choose_threads
from conftest import ROOT

INPUT = ir.InputShape(height=28, width=28, channels=1)


def test_second_load_reads_the_cache_and_a_changed_file_decodes_again(digit_folder, monkeypatch):
    first = load_data(digit_folder, INPUT)
    assert first.cache is not None and first.cache.endswith(".u8")
    from cnnspec.data import cache

    def no_decode(*_):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache, "decode_with_origin", no_decode)
    second = load_data(digit_folder, INPUT)  # a hit: nothing decoded
    assert second.cache == first.cache
    assert np.array_equal(second.array, first.array) and np.array_equal(second.labels, first.labels)
    monkeypatch.undo()
    target = min((digit_folder / "digit4").iterdir())
    Image.new("L", (28, 28), 255).save(target)  # same name, other pixels, other size/mtime
    third = load_data(digit_folder, INPUT)
    assert third.cache != first.cache
    row = third.files.index(str(target))
    assert int(third.array[row].min()) == 255


def test_cache_command_lists_and_clears(digit_folder):
    load_data(digit_folder, INPUT)
    env = dict(os.environ)
    show = subprocess.run([sys.executable, "-m", "cnnspec", "cache"], capture_output=True,
                          text=True, env=env, check=True).stdout
    assert os.environ["CNNSPEC_CACHE_DIR"] in show and "entr" in show
    subprocess.run([sys.executable, "-m", "cnnspec", "cache", "--clear"], env=env, check=True)
    left = [p for p in os.scandir(os.environ["CNNSPEC_CACHE_DIR"])
            if p.name.endswith((".u8", ".json"))]
    assert left == []


def test_corrupt_images_are_skipped_and_named_also_with_workers(digit_folder):
    bad = digit_folder / "digit1" / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    images = load_data(digit_folder, INPUT, workers=2)
    assert [p for p, _ in images.skipped] == [str(bad)]
    assert len(images) == 180 and str(bad) not in images.files


def test_a_class_with_no_readable_image_is_an_error(tmp_path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "a" / "x.png")
    (tmp_path / "b" / "y.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="class folder 'b' has no readable images"):
        load_data(tmp_path, INPUT)


def test_streaming_statistics_equal_the_whole_tensor(digit_folder):
    images = load_data(digit_folder, INPUT)
    idx = np.arange(0, len(images), 2)
    mean, std = channel_stats(images, idx, chunk_bytes=4 * 28 * 28 * 7)  # 7 images a chunk
    x = torch.from_numpy(images.array[idx]).float() / 255
    assert mean == pytest.approx([x.mean().item()], abs=1e-6)
    assert std == pytest.approx([x.std().item()], abs=1e-6)


def _batches(spec, images, workers):
    data = ImageSet(images, np.arange(len(images)), augmentation(spec.train.augment, spec.input))
    dl = loader(data, 16, shuffle=True, workers=workers, seed=3,
                generator=torch.Generator().manual_seed(3))
    dl.batch_sampler.set_epoch(1)
    return [(x.clone(), y.clone()) for x, y in dl]


def test_augmented_batches_do_not_depend_on_the_number_of_workers(digit_folder):
    spec = cnnspec.loads("input 28x28x1\nflatten\ndense 3\ntrain:\n    augment: crop 28 pad 2, "
                         "rotate 10, hflip, random_erasing 0.5\n")
    images = load_data(digit_folder, INPUT)
    zero, two = _batches(spec, images, 0), _batches(spec, images, 2)
    assert len(zero) == 12 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                                   for a, b in zip(zero, two, strict=True))
    plain = [x for x, _ in _batches(cnnspec.loads("input 28x28x1\nflatten\ndense 3\n"), images, 0)]
    assert not all(torch.equal(a, b[0]) for a, b in zip(plain, zero, strict=True))  # augmented


def test_an_error_in_a_worker_names_the_file(digit_folder):
    images = load_data(digit_folder, INPUT)

    def broken(x, generator=None):
        raise ValueError("boom")

    dl = loader(ImageSet(images, np.arange(len(images)), broken), 8, shuffle=False, workers=1)
    with pytest.raises(DataError, match=r"digit1.*0000\.png.*ValueError: boom"):
        next(iter(dl))


def test_fused_geometry_draws_the_crop_shifts_and_flips_of_torchvision():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(400, 1, 16, 16, dtype=torch.uint8)
    x[:, :, 7, 7] = 255  # one bright pixel: where it lands tells the shift
    crop = BatchGeometry([ir.Augmentation(kind="crop", size=16, pad=2)])(x, g)
    where = crop.flatten(1).argmax(1)
    dy, dx = where // 16 - 7, where % 16 - 7
    assert set(dx.tolist()) == set(range(-2, 3)) == set(dy.tolist())  # v2.RandomCrop's range
    assert (crop > 0).flatten(1).sum(1).eq(1).all()  # shifted, not blurred
    flips = BatchGeometry([ir.Augmentation(kind="hflip")])(x, g)
    landed = flips.flatten(1).argmax(1) % 16
    assert set(landed.tolist()) == {7, 8} and 150 < int((landed == 8).sum()) < 250
    still = BatchGeometry([ir.Augmentation(kind="rotate", degrees=0.0)])(x, g)
    assert torch.equal(still, x)
    turned = BatchGeometry([ir.Augmentation(kind="rotate", degrees=90.0)])(x, g)
    assert not torch.equal(turned, x)


def test_threads_default_and_overrides(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert choose_threads(None, 416_520, 1)[0] == 1  # LeNet-5: small
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(None, 10**10, 0) == (3, "OMP_NUM_THREADS")
    assert choose_threads(2, 10**10, 0) == (2, "threads setting")


@pytest.mark.parametrize("kind", ["cosine", "onecycle", "warmup"])
def test_schedules_advance_per_step_as_pytorch_does(kind):
    epochs, per = 6, 7
    text = {"cosine": "schedule cosine", "onecycle": "schedule onecycle",
            "warmup": "schedule step warmup 2:\n        5: 0.01"}[kind]
    cfg = cnnspec.loads(f"input 8x8x1\nflatten\ndense 2\ntrain:\n    epochs {epochs}\n"
                        f"    optimizer sgd lr 0.1\n    {text}\n").train
    ours = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    theirs = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = make_scheduler(cfg, ours, per)
    s = torch.optim.lr_scheduler
    ref = {"cosine": lambda o: s.CosineAnnealingLR(o, T_max=epochs * per),
           "onecycle": lambda o: s.OneCycleLR(o, max_lr=0.1, total_steps=epochs * per),
           "warmup": lambda o: s.LinearLR(o, start_factor=1 / 3, total_iters=2 * per)}[kind](theirs)
    a, b = [], []
    for _ in range(epochs * per):
        a.append(ours.param_groups[0]["lr"])
        b.append(theirs.param_groups[0]["lr"])
        ours.step()
        theirs.step()
        sched.step()
        ref.step()
    if kind == "warmup":  # LinearLR stands for the ramp; then the step schedule's own rates
        assert a[:2 * per] == pytest.approx(b[:2 * per], rel=1e-9)
        assert a[2 * per:4 * per] == [0.1] * (2 * per) and a[4 * per:] == [0.01] * (2 * per)
    else:
        assert a == pytest.approx(b, rel=1e-6, abs=1e-12)
    assert len(set(a[:per])) == per  # it moved within the first epoch


def test_a_user_callback_sees_every_epoch_and_can_stop_the_run(tmp_path):
    class StopAfterTwo(Callback):
        def __init__(self):
            self.seen, self.steps = [], 0

        def on_step_end(self, trainer, step, loss):
            self.steps += 1

        def on_epoch_end(self, trainer, epoch, metrics):
            self.seen.append((epoch, round(metrics["val_accuracy"], 6)))
            trainer.stop = epoch == 1

    cb = StopAfterTwo()
    spec = cnnspec.loads("network T\ninput 28x28x1\nflatten\ndense 10\ntrain:\n    epochs 5\n"
                         "    batch 100\n    optimizer adam lr 0.01\n")
    run = cnnspec.train(spec, out=tmp_path / "run", export=False, callbacks=[cb])
    assert [e for e, _ in cb.seen] == [0, 1] and len(run.metrics) == 2
    assert cb.steps == 2 * 40  # 4,000 training digits in batches of 100
    assert cb.seen[1][1] == round(run.metrics[1]["val_accuracy"], 6)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (info["workers"], info["threads"], info["steps_per_epoch"]) == (0, 1, 40)


def test_only_the_run_folder_names_the_run_files():
    """Training, resume, evaluate, predict and transfer go through RunFolder."""
    names = ('"run.json"', '"last.ckpt"', '"metrics.json"', '"spec.json"', '"classes.json"',
             'weights.safetensors"', '"model.onnx"', '"curves.png"', '"spec.cnn"')
    offenders = [f"{p.relative_to(ROOT)}: {n}" for p in (ROOT / "cnnspec").rglob("*.py")
                 if p.name != "run_folder.py" for n in names if n in p.read_text()]
    assert offenders == []


def _dds(path) -> None:
    """A .png that is a DDS file of a pixel format Pillow does not implement: opening it
    raises NotImplementedError (not one of Pillow's usual errors)."""
    import struct

    header = struct.pack("<4sIIIIIII44s", b"DDS ", 124, 0x1007, 8, 8, 0, 0, 0, b"\0" * 44)
    fmt = struct.pack("<II4sIIIII", 32, 0x4, b"ZZZZ", 0, 0, 0, 0, 0)
    path.write_bytes(header + fmt + struct.pack("<IIIII", 0x1000, 0, 0, 0, 0) + b"\0" * 64)


def test_undecodable_formats_and_dangling_links_are_skipped_not_fatal(digit_folder, tmp_path,
                                                                      monkeypatch):
    """Issue 29, finding 24: a DDS named .png (NotImplementedError) was an internal error in
    data and predict and stopped training; a dangling or looping link (a git-annex or DVC
    file not yet fetched) stopped training, though `cnnspec data` lists it as unreadable."""
    from cnnspec.data.folder import read_image

    monkeypatch.setenv("CNNSPEC_CACHE_DIR", str(tmp_path / "cache"))
    _dds(digit_folder / "digit1" / "texture.png")
    (digit_folder / "digit4" / "annexed.png").symlink_to(tmp_path / "not-fetched")
    (digit_folder / "digit7" / "loop.png").symlink_to(digit_folder / "digit7" / "loop.png")
    images = load_data(digit_folder, INPUT)
    skipped = {Path(p).name for p, _ in images.skipped}
    assert skipped == {"texture.png", "annexed.png", "loop.png"} and len(images) == 180
    with pytest.raises(DataError, match="cannot read the image"):
        read_image(digit_folder / "digit1" / "texture.png", INPUT)
