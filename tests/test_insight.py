"""What a network learned: feature maps, Grad-CAM, linear probes with a suggested freeze
point, and the learning-rate range test, on a LeNet-5 trained on the embedded digits and on
a custom image folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnspec
from cnnspec.cli import main
from cnnspec.insight.features import feature_maps, gradcam, upsample
from cnnspec.insight.layers import LayerNameError, centres, conv_stages, cut_points
from cnnspec.insight.probing import fit_probe, folds_of, probe, splits, suggest
from cnnspec.insight.range_test import lr_find, suggestions
from cnnspec.training.inference import load_run
from conftest import SPECS


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    """LeNet-5 trained 3 epochs on the embedded digits (no ONNX), and PNGs of a 7 and a 1."""
    tmp = tmp_path_factory.mktemp("insight")
    cnnspec.train(cnnspec.load(SPECS / "lenet5.cnn"), out=tmp / "run", epochs=3, export=False)
    images, labels = digits
    for c in (7, 1):
        Image.fromarray(images[np.flatnonzero(labels == c)[-1]]).save(tmp / f"digit{c}.png")
    return tmp / "run", tmp / "digit7.png", tmp / "digit1.png"


def cli(capsys, *args) -> tuple[int, str, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------ layers and geometry
def test_stages_take_the_layers_that_follow_a_conv():
    resnet = cnnspec.infer_shapes(cnnspec.load(SPECS / "resnet18.cnn"))
    stages = conv_stages(resnet)
    assert len(stages) == 17  # 20 convs less the 3 shortcut projections
    stem = stages[0]
    assert (stem.name, stem.tap, stem.freeze, stem.shape_text) == ("C1", "BN1_relu", "BN1",
                                                                   "112x112x64")
    assert (stages[1].path, stages[1].tap) == ("R1.C2", "R1.BN2_relu")
    tops = cut_points(resnet)
    assert [s.name for s in tops] == ["C1"] + [f"R{i}" for i in range(1, 9)]
    assert (tops[-1].tap, tops[-1].freeze, tops[-1].shape_text) == ("A8", "R8", "7x7x512")
    lenet = cut_points(cnnspec.infer_shapes(cnnspec.load(SPECS / "lenet5.cnn")))
    assert [(s.name, s.tap) for s in lenet] == [("C1", "C1_tanh"), ("C2", "C2_tanh")]


SMALL = """network Geometry
input 64x64x1
conv 7x7x4 stride 2
avgpool 3 stride 2 pad 1
conv 3x3x4 stride 2
conv 5x5x4 valid
"""


LENET_CONVS = """network LeNetConvs
input 32x32x1
conv 5x5x6 valid
avgpool 2
conv 5x5x16 valid
"""


@pytest.mark.parametrize("text", [SMALL, LENET_CONVS], ids=["strided-padded", "lenet5"])
def test_map_cells_sit_where_their_receptive_fields_are_centred(text):
    """Measured, not trusted: with every conv weight 1 and no bias, the input gradient of one
    output cell is symmetric about its receptive field's centre; its centroid must be where
    :func:`centres` puts the cell (LeNet's valid convolutions: 2 i + 6.5, not a stretch)."""
    spec = cnnspec.loads(text)
    stage = cut_points(cnnspec.infer_shapes(spec))[-1]
    (sy, oy), (sx, ox) = centres(cnnspec.infer_shapes(spec), stage)
    model = cnnspec.build(spec).double()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
    h, w = stage.out_shape[1:]
    x = torch.ones(1, *spec.input.chw(), dtype=torch.float64, requires_grad=True)
    i, j = h // 2, w // 2  # an interior cell: its field is not clipped by the padding
    model(x)[0, :, i, j].sum().backward()
    g = x.grad[0].abs().sum(0)
    cy = (g.sum(1) * torch.arange(g.shape[0])).sum() / g.sum()
    cx = (g.sum(0) * torch.arange(g.shape[1])).sum() / g.sum()
    assert float(cy) == pytest.approx(sy * i + oy, abs=1e-9)
    assert float(cx) == pytest.approx(sx * j + ox, abs=1e-9)
    if text == LENET_CONVS:
        assert (sy, oy) == (2.0, 6.5)


def test_upsampling_on_a_same_padded_grid_is_plain_bilinear():
    cam = torch.rand(14, 14)
    ours = upsample(cam, (224, 224), ((16.0, 7.5), (16.0, 7.5)))
    plain = torch.nn.functional.interpolate(cam[None, None], size=(224, 224), mode="bilinear",
                                            align_corners=False)[0, 0]
    assert torch.allclose(ours, plain, atol=1e-6)


# ------------------------------------------------------------------ features
def test_features_write_a_grid_per_conv_layer_and_the_filters(run, tmp_path, capsys):
    folder, seven, _ = run
    r = feature_maps(folder, seven, out=tmp_path / "f")
    assert r["predicted"] == "7" and r["probability"] > 0.5
    assert [(row["layer"], row["shape"]) for row in r["layers"]] == [("C1", "28x28x6"),
                                                                     ("C2", "10x10x16")]
    assert r["note"] == f"{seven}: 28x28 L converted to the input 32x32x1 (grayscale)"
    for row in r["layers"]:
        with Image.open(row["file"]) as im:
            assert im.format == "PNG" and im.width > 100
    # the grid shows what the network computes: C2's mean is that of C1 .. C2_tanh run by hand
    loaded = load_run(folder)
    children = list(loaded.model.named_children())
    front = torch.nn.Sequential(*[m for n, m in children[:[n for n, _ in children]
                                                         .index("C2_tanh") + 1]])
    with Image.open(seven) as im:
        pixels = np.asarray(im.convert("L").resize((32, 32), Image.Resampling.BILINEAR))
    with torch.no_grad():
        maps = front(loaded.norm(torch.from_numpy(pixels.copy())[None, None].float() / 255))
    assert r["layers"][1]["mean"] == pytest.approx(float(maps.mean()), abs=1e-5)
    assert all(row["silent"] == 0 for row in r["layers"])
    with Image.open(r["filters"]) as im:
        assert im.format == "PNG"
    code, out, _ = cli(capsys, "features", folder, seven, "--layers", "C2")
    assert code == 0 and "/C2.png" in out and "/C1.png" not in out
    assert (folder / "insight" / f"features-{seven.stem}" / "C2.png").exists()


def test_a_wrong_layer_name_is_an_error_that_lists_the_conv_layers(run, capsys):
    folder, seven, _ = run
    with pytest.raises(LayerNameError, match="did you mean C2.*its conv layers: C1, C2"):
        feature_maps(folder, seven, layers=["C3"])
    code, _, err = cli(capsys, "gradcam", folder, seven, "--layer", "F1")
    assert code == 1 and "F1 is a dense layer of LeNet5, not a conv layer" in err
    assert "Traceback" not in err
    code, _, err = cli(capsys, "gradcam", folder, seven, "--layer", "X9")
    assert code == 1 and "no conv layer named 'X9'" in err
    code, _, err = cli(capsys, "gradcam", folder, seven, "--class", "seven")
    assert code == 1 and "no class 'seven'" in err and "0, 1, 2" in err
    code, _, err = cli(capsys, "features", folder, seven.parent / "missing.png")
    assert code == 1 and "missing.png: no such image" in err


# ------------------------------------------------------------------ Grad-CAM
def test_gradcam_is_selvaraju_et_al_computed_by_hand(run, tmp_path):
    folder, seven, _ = run
    r = gradcam(folder, seven, out=tmp_path / "cam7.png")
    assert (r["class"], r["predicted"], r["layer"]) == ("7", "7", "C2")
    # by hand: the network split after C2's tanh, autograd for d y^7 / d A
    loaded = load_run(folder)
    children = list(loaded.model.named_children())
    k = [n for n, _ in children].index("C2_tanh")
    front = torch.nn.Sequential(*[m for _, m in children[:k + 1]])
    back = torch.nn.Sequential(*[m for _, m in children[k + 1:]])
    with Image.open(seven) as im:
        pixels = np.asarray(im.convert("L").resize((32, 32), Image.Resampling.BILINEAR))
    x = loaded.norm(torch.from_numpy(pixels.copy())[None, None].float() / 255)
    a = front(x).detach().requires_grad_(True)
    score = back(a)[0, loaded.classes.index("7")]
    (g,) = torch.autograd.grad(score, a)
    cam = torch.relu((g[0].mean((1, 2))[:, None, None] * a[0]).sum(0)).detach().numpy()
    # cells centred at 2 i + 6.5 (valid convolutions), linear between, held at the edges
    centre = 2 * np.arange(10) + 6.5
    rows = np.array([np.interp(np.arange(32), centre, cam[:, j]) for j in range(10)]).T
    full = np.array([np.interp(np.arange(32), centre, rows[y]) for y in range(32)])
    assert np.abs(r["map"] - full / full.max()).max() < 1e-4
    assert r["map"].shape == (32, 32) and r["map"].max() == pytest.approx(1.0)
    # another class: another map
    other = gradcam(folder, seven, class_name="1", out=tmp_path / "cam1.png")
    assert other["class"] == "1" and other["probability"] < r["probability"]
    assert np.abs(other["map"] - r["map"]).mean() > 0.05
    with Image.open(tmp_path / "cam7.png") as im:
        assert im.format == "PNG"


def test_gradcam_command_writes_into_the_run_folder(run, capsys):
    folder, _, one = run
    code, out, _ = cli(capsys, "gradcam", folder, one)
    assert code == 0, out
    assert "Grad-CAM for class 1" in out and "at C2 (10x10x16)" in out
    assert (folder / "insight" / f"gradcam-{one.stem}-1-C2.png").exists()


# ------------------------------------------------------------------ probes
def test_probe_rule_and_fit():
    rows = [{"layer": n, "val_accuracy": a} for n, a in
            [("C1", 0.5), ("C2", 0.80), ("C3", 0.79), ("C4", 0.6)]]
    assert suggest(rows, 0.02)["layer"] == "C3"
    assert suggest(rows, 0.0)["layer"] == "C2"
    assert suggest(rows, 0.5)["layer"] == "C4"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()  # linearly separable
    train_acc, val_acc = fit_probe(x[:300], y[:300], x[300:], y[300:], 2)
    assert train_acc > 0.97 and val_acc > 0.95
    noise = torch.randint(0, 4, (400,), generator=g)  # no signal: held-out near chance
    _, val_acc = fit_probe(x[:300], noise[:300], x[300:], noise[300:], 4)
    assert val_acc < 0.45


def test_folds_are_stratified_and_hold_each_image_out_once():
    labels = torch.tensor([0] * 23 + [1] * 7 + [2] * 10)
    fold = folds_of(labels, 5, seed=3)
    for c, n in ((0, 23), (1, 7), (2, 10)):
        per_fold = torch.bincount(fold[labels == c], minlength=5)
        assert per_fold.sum() == n and per_fold.max() - per_fold.min() <= 1
    pairs = splits(labels, None, 5, seed=3)
    held = torch.cat([va for _, va in pairs])
    assert sorted(held.tolist()) == list(range(40))  # every image held out exactly once
    assert all(set(tr.tolist()).isdisjoint(va.tolist()) for tr, va in pairs)
    assert torch.equal(folds_of(labels, 5, seed=3), fold)  # the seed fixes it


def test_probe_on_the_digits_is_far_above_chance_at_the_last_conv(run):
    folder, _, _ = run
    r = probe(folder, max_images=1000)
    assert (r["images"], r["held_out"], r["folds"]) == (1000, 1000, 5)  # each image held out once
    assert r["chance"] == pytest.approx(0.1, abs=0.02)
    c1, c2 = r["rows"]
    assert (c2["layer"], c2["features"]) == ("C2", 16)
    assert c2["val_accuracy"] > 0.6 > 0.1 + 0.4  # 84% measured after 3 epochs
    assert c2["val_accuracy"] > c1["val_accuracy"]
    assert r["suggested"] == "C2" and r["line"] == "freeze up to C2"
    assert (folder / "insight" / "probe-digits.png").exists()
    assert probe(folder, max_images=1000)["rows"] == r["rows"]  # deterministic


def test_probe_on_a_custom_folder_from_the_cli(run, digit_folder, tmp_path, capsys):
    folder, _, _ = run
    plot = tmp_path / "probe.png"
    code, out, _ = cli(capsys, "probe", folder, "--data", digit_folder, "-o", plot,
                       "--format", "json")
    assert code == 0
    r = json.loads(out)
    assert r["classes"] == ["digit1", "digit4", "digit7"] and r["images"] == 180
    assert r["rows"][-1]["val_accuracy"] > 0.8  # three digit classes, features of ten
    assert plot.exists()
    code, out, _ = cli(capsys, "probe", folder, "--data", digit_folder, "-o", plot)
    assert "in the transfer: section write:" in out and "    freeze up to C" in out
    (tmp_path / "flat").mkdir()
    code, _, err = cli(capsys, "probe", folder, "--data", tmp_path / "flat")
    assert code == 1 and "Traceback" not in err


# ------------------------------------------------------------------ learning-rate range test
def test_suggestions_on_a_known_curve():
    lrs = list(np.geomspace(1e-5, 10, 100))
    loss = [(np.log10(lr) + 1) ** 2 + 1 for lr in lrs]  # minimum at lr 0.1
    minimum, steepest = suggestions(lrs, loss)
    assert minimum == pytest.approx(0.01, rel=0.1)
    assert steepest == pytest.approx(1e-5)  # a parabola falls fastest at its far end
    assert suggestions(lrs[:3], loss[:3]) == (None, None)


def test_lr_find_touches_no_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = lr_find(cnnspec.load(SPECS / "lenet5.cnn"), steps=60, start=1e-4, end=100.0)
    assert r["lrs"][0] == pytest.approx(1e-4)
    ratios = np.diff(np.log(r["lrs"]))
    assert np.allclose(ratios, np.log(1e6) / 59)  # exponential growth
    assert r["stopped"] is not None and "diverged" in r["stopped"]  # lr 100 on SGD
    assert 1e-4 < r["suggested"] < r["lrs"][-1]
    assert 0.005 < r["suggested"] < 2.0  # LeNet-5's own rate is 0.1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr-find-LeNet5.png"]


def test_probe_keeps_a_train_val_folder_split(run, tmp_path, digits):
    from conftest import write_digit_folder

    folder, _, _ = run
    images, labels = digits
    write_digit_folder(tmp_path / "split" / "train", images, labels, (1, 7), 20)
    later = np.concatenate([np.flatnonzero(labels == c)[20:35] for c in (1, 7)])
    write_digit_folder(tmp_path / "split" / "val", images[later], labels[later], (1, 7), 15)
    r = probe(folder, tmp_path / "split", tmp_path / "p.png")
    assert (r["held_out"], r["folds"]) == (30, None)
    assert r["chance"] == pytest.approx(0.5)


RGB = """network Colours
input 24x24x3
conv 3x3x8 relu
maxpool 2
conv 3x3x16
batchnorm relu
globalavgpool
flatten
dense 3
train:
    epochs 2
    batch 16
    optimizer adam lr 0.01
"""


def test_every_command_on_a_custom_rgb_folder(tmp_path, capsys):
    """A run on a folder of 40x30 RGB images (red, green, blue squares on noise): features
    draws colour filters, Grad-CAM reads a 64x48 image converted to 24x24, probe and
    lr-find read the folder."""
    rng = np.random.default_rng(0)
    data = tmp_path / "colours"
    for c, name in enumerate(("red", "green", "blue")):
        (data / name).mkdir(parents=True)
        for i in range(24):
            img = rng.integers(0, 60, (30, 40, 3), dtype=np.uint8)
            y, x = rng.integers(0, 14), rng.integers(0, 24)
            img[y:y + 14, x:x + 14, c] = 230
            Image.fromarray(img).save(data / name / f"{i}.png")
    spec_file = tmp_path / "colours.cnn"
    spec_file.write_text(RGB)
    cnnspec.train(cnnspec.load(spec_file), data=data, out=tmp_path / "run", export=False)
    big = tmp_path / "big.png"
    Image.open(data / "red" / "0.png").resize((64, 48)).save(big)
    r = feature_maps(tmp_path / "run", big)
    assert [row["layer"] for row in r["layers"]] == ["C1", "C2"]
    assert r["layers"][1]["shape"] == "12x12x16"  # C2 + batch norm + relu
    assert r["note"] == f"{big}: 64x48 RGB converted to the input 24x24x3 (RGB)"
    with Image.open(r["filters"]) as im:
        assert im.mode == "RGBA" and im.format == "PNG"
    g = gradcam(tmp_path / "run", big, out=tmp_path / "cam.png")
    assert g["layer"] == "C2" and g["map"].shape == (24, 24)
    p = probe(tmp_path / "run", data, tmp_path / "probe.png", folds=3)
    assert p["classes"] == ["blue", "green", "red"] and p["held_out"] == 72
    assert p["rows"][-1]["val_accuracy"] > 0.6  # colour is linear in pooled features
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, _ = cli(capsys, "lr-find", spec_file, "--data", data, "--steps", "30",
                       "-o", tmp_path / "lr.png", "--format", "json")
    assert code == 0 and json.loads(out)["steps"] <= 30
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "lr.png"])


def test_outputs_that_are_not_regular_files_are_refused(run, tmp_path, capsys):
    """Renaming a picture over a FIFO or a device would replace it: refused, left intact."""
    import os

    folder, seven, _ = run
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.png"
    loop.symlink_to(tmp_path / "loop2.png")
    (tmp_path / "loop2.png").symlink_to(loop)
    (tmp_path / "adir.png").mkdir()
    for target, message in ((fifo, "not a regular file"), (loop, "cannot write"),
                            (tmp_path / "adir.png", "is a directory"),
                            (tmp_path / "x.txt", "pictures are written as .png"),
                            ("", "empty")):
        code, _, err = cli(capsys, "gradcam", folder, seven, "-o", target)
        assert code in (1, 2) and message in err, (target, err)
        assert "Traceback" not in err
    assert fifo.is_fifo()
    code, _, err = cli(capsys, "probe", folder, "-o", fifo)
    assert code == 1 and "not a regular file" in err
    r = gradcam(folder, seven, out=tmp_path / "cam.svg")  # the suffix picks the format
    assert (tmp_path / "cam.svg").read_text().lstrip().startswith("<?xml")
    assert r["file"].endswith("cam.svg")


def test_damaged_run_files_and_odd_class_names(run, tmp_path, capsys):
    import json
    import shutil

    folder, seven, _ = run
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    info = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**info, "data": 42}))
    code, _, err = cli(capsys, "probe", copy)
    assert code == 1 and "run.json: damaged (data is '42', not a folder name)" in err
    (copy / "run.json").write_text(json.dumps(info))
    classes = json.loads((copy / "classes.json").read_text())
    classes[7] = "../../evil"
    (copy / "classes.json").write_text(json.dumps(classes))
    r = gradcam(copy, seven, class_name="../../evil")
    assert Path(r["file"]).parent == copy / "insight"  # the name cannot leave the folder
    assert Path(r["file"]).name == "gradcam-digit7-evil-C2.png"


def test_lr_find_without_a_fall_suggests_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = lr_find(cnnspec.load(SPECS / "lenet5.cnn"), steps=20, start=100.0, end=1e5)
    assert r["suggested"] is None and "lower --start" in r["stopped"]
    with pytest.raises(cnnspec.CnnSpecError, match="between 1e-30 and 1e6"):
        lr_find(cnnspec.load(SPECS / "lenet5.cnn"), start=1e38, end=1e40)


def test_gradcam_on_a_two_channel_network(tmp_path):
    spec_file = tmp_path / "two.cnn"
    spec_file.write_text("network Two\ninput 16x16x2\nconv 3x3x4 relu\nconv 3x3x4 relu\n"
                         "flatten\ndense 10\ntrain:\n    epochs 1\n    batch 200\n")
    cnnspec.train(cnnspec.load(spec_file), out=tmp_path / "run", export=False)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(image)
    r = gradcam(tmp_path / "run", image, class_name="3")
    assert r["map"].shape == (16, 16) and Path(r["file"]).exists()


def test_gradcam_at_a_layer_with_a_1x1_map_is_refused_naming_a_larger_one(tmp_path):
    """Issue 29, finding 4b: a constant map, or "nothing at C3 speaks for ...", before."""
    spec_file = tmp_path / "head.cnn"
    spec_file.write_text("network Head\ninput 16x16x1\nconv 3x3x4 relu\nglobalavgpool\n"
                         "conv 1x1x10\nflatten\ntrain:\n    epochs 1\n    batch 200\n")
    cnnspec.train(cnnspec.load(spec_file), out=tmp_path / "run", export=False)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(image)
    with pytest.raises(cnnspec.CnnSpecError, match=r"--layer C2: its map is 1x1 .*the last "
                       r"layer with a larger map is C1 \(16x16x4\): --layer C1"):
        gradcam(tmp_path / "run", image, layer="C2")
    assert gradcam(tmp_path / "run", image)["layer"] == "C1"
