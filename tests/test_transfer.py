"""cnnspec/transfer.py: transfer learning on real digits: weights from a run folder, frozen layers bit-identical
after training, frozen batch-norm statistics unchanged, a new head, torchvision's VGG-16
state_dict into specs/vgg16.cnn, mismatches refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import cnnspec
from cnnspec.report.summary import summarize
from cnnspec.training.optim import param_groups
from cnnspec.transfer import NEVER, freeze_plan, load_into, match_weights, read_weights
from conftest import SPECS

NET = """network Small
input 28x28x1
conv 3x3x8 bias off        # C1
batchnorm relu             # BN1
maxpool 2
conv 3x3x16 bias off       # C2
batchnorm relu             # BN2
maxpool 2
conv 3x3x16 relu           # C3
flatten
dense 32 relu              # F1
dense 10                   # F2
train:
    epochs {epochs}
    batch 64
    optimizer adam lr 0.003
"""


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A run folder of NET trained 1 epoch on the 10 embedded digit classes."""
    out = tmp_path_factory.mktemp("source") / "run"
    cnnspec.train(cnnspec.loads(NET.format(epochs=1)), out=out, export=False)
    return out


def target(source, rules: str, epochs: int = 2) -> cnnspec.Spec:
    return cnnspec.loads(NET.format(epochs=epochs) + f'transfer:\n    from "{source}"\n{rules}')


def test_freeze_up_to_c2_keeps_c1_c2_and_their_statistics(tmp_path, source_run, digit_folder):
    spec = target(source_run, "    freeze up to C2\n    classes from data\n")
    run = cnnspec.train(spec, data=digit_folder, out=tmp_path / "run")
    before = load_file(source_run / "weights.safetensors")
    after = load_file(tmp_path / "run" / "weights.safetensors")
    for key in ("C1.weight", "BN1.weight", "BN1.bias", "BN1.running_mean", "BN1.running_var",
                "C2.weight"):
        assert torch.equal(before[key], after[key]), key  # bit-identical after 2 epochs
    # BN2 comes after C2: it trains, and its statistics follow the new data
    for key in ("BN2.running_mean", "C3.weight", "F1.weight"):
        assert not torch.equal(before[key], after[key]), key
    assert after["F2.weight"].shape == (3, 32) and run.model.F2.out_features == 3
    info = json.loads((tmp_path / "run" / "run.json").read_text())["transfer"]
    assert info["matched"] == "by name" and info["frozen"] == ["C1", "BN1", "C2"]
    assert [r["tensor"] for r in info["replaced"]] == ["F2.weight", "F2.bias"]
    assert info["loaded"] == len(before) - 2
    # the frozen layers keep the input standardisation they learnt with: the source run's
    norm = json.loads((tmp_path / "run" / "run.json").read_text())["normalize"]
    source_norm = json.loads((source_run / "run.json").read_text())["normalize"]
    assert (norm["mean"], norm["std"], norm["source"]) == (
        source_norm["mean"], source_norm["std"], "the transferred run")
    assert run.export.relative_error < 1e-4  # the transferred network exports too
    assert run.final["val_accuracy"] > 0.8
    # the run is usable as any other: evaluate rebuilds the 3-output head from classes.json
    from cnnspec.training import evaluate_run

    report = evaluate_run(tmp_path / "run", digit_folder)
    assert report["accuracy"] > 0.8 and len(report["classes"]) == 3


def test_torchvision_convnext_state_dict_matches_by_order_with_its_layer_scales():
    """torchvision lists each block's layer_scale before the block's layers; the loader
    matches it to the spec's layerscale layer, and the outputs agree."""
    from torchvision import models

    torch.manual_seed(0)
    ref = models.convnext_tiny(weights=None).eval()
    with torch.no_grad():
        for key, p in ref.named_parameters():
            if key.endswith("layer_scale"):
                p.uniform_(0.5, 1.5)  # not 1e-6: a block must count in the output
    model = cnnspec.build(cnnspec.load(SPECS / "convnext_tiny.cnn")).eval()
    m = match_weights(model.state_dict(), ref.state_dict(), None)
    assert (m.method, m.mismatches, m.unused) == ("by order", [], [])
    assert torch.equal(m.loaded["R1.LS1.scale"], ref.state_dict()["features.1.0.layer_scale"])
    model.load_state_dict(m.loaded)
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max().item() < 1e-5


def test_bias_train_trains_the_biases_of_frozen_layers_only(tmp_path, source_run, digit_folder):
    """``bias train``: in frozen layers the biases train (and are in the optimizer), the
    weights stay bit-identical; the summary counts the biases as trainable."""
    spec = target(source_run, "    freeze up to C3\n    bias train\n    classes from data\n", 1)
    cnnspec.train(spec, data=digit_folder, out=tmp_path / "run", export=False)
    before = load_file(source_run / "weights.safetensors")
    after = load_file(tmp_path / "run" / "weights.safetensors")
    for key in ("C1.weight", "BN1.weight", "C2.weight", "BN2.weight", "C3.weight",
                "BN1.running_mean"):
        assert torch.equal(before[key], after[key]), key
    for key in ("BN1.bias", "BN2.bias", "C3.bias", "F1.weight"):
        assert not torch.equal(before[key], after[key]), key
    plan = freeze_plan(spec)
    groups = param_groups(cnnspec.build(spec), spec.train, plan, spec.transfer)
    # in the optimizer: the frozen layers' biases (BN1 8, BN2 16, C3 16), F1 and F2 (10
    # outputs here: `classes from data` is set when training); no frozen weight
    assert sum(p.numel() for g in groups for p in g["params"]) == 8 + 16 + 16 + 785 * 32 + 33 * 10
    totals = summarize(spec).totals
    # frozen weights: C1 72, BN1 8, C2 1,152, BN2 16, C3 2,304 (their 8 + 16 + 16 biases train)
    assert totals.non_trainable_params == 72 + 8 + 1152 + 16 + 2304
    assert "bias train" in str(summarize(spec))


def test_unfreeze_at_epoch_and_separate_head_rate(tmp_path, source_run, digit_folder):
    spec = target(source_run, "    freeze all except F2\n    unfreeze C3 at epoch 2\n"
                  "    classes 3\n    lr backbone 0.001 head 0.01\n")
    plan = freeze_plan(spec)
    assert plan.starts == {"C1": NEVER, "BN1": NEVER, "C2": NEVER, "BN2": NEVER, "C3": 1,
                           "F1": NEVER, "F2": 0}
    groups = param_groups(cnnspec.build(spec), spec.train, plan, spec.transfer)
    assert [(g["name"], g["lr"], sum(p.numel() for p in g["params"])) for g in groups] == [
        ("decay", 0.001, 3 * 3 * 16 * 16 + 16), ("head", 0.01, 32 * 3 + 3)]
    run = cnnspec.train(spec, data=digit_folder, out=tmp_path / "run", export=False)
    before = load_file(source_run / "weights.safetensors")
    after = load_file(tmp_path / "run" / "weights.safetensors")
    assert torch.equal(before["F1.weight"], after["F1.weight"])
    assert not torch.equal(before["C3.weight"], after["C3.weight"])  # trained in epoch 2
    assert [(m["lr"], m["lr_head"]) for m in run.metrics] == [(0.001, 0.01), (0.001, 0.01)]


def test_train_last_n_conv_plans(source_run):
    plan = freeze_plan(target(source_run, "    train last 2 conv\n"))
    assert [p for p, e in plan.starts.items() if e == NEVER] == ["C1", "BN1"]
    resnet = cnnspec.loads((SPECS / "resnet18.cnn").read_text() + '\ntransfer:\n    from "x.pth"\n'
                           "    train last 2 conv\n", str(SPECS / "resnet18.cnn"))
    plan = freeze_plan(resnet)
    trains = [p for p, e in plan.starts.items() if e == 0]
    assert trains == ["R8.C16", "R8.BN16", "R8.C17", "R8.BN17", "F1"]
    s = summarize(resnet)
    assert {r.name: r.status for r in s.layers if r.depth == 0}["R8"] == "trainable"
    assert s.totals.trainable_params == 4_720_640 + 513_000  # R8 and the 1000-class head
    assert s.totals.non_trainable_params == 11_689_512 - 4_720_640 - 513_000


def test_summary_shows_frozen_layers_and_totals(source_run):
    s = summarize(target(source_run, "    freeze up to C2\n    unfreeze C2 at epoch 3\n"
                         "    classes 3\n"))
    status = {r.name: r.status for r in s.layers}
    assert status == {"C1": "frozen", "BN1": "frozen", "M1": "", "C2": "frozen until epoch 3",
                      "BN2": "trainable", "M2": "", "C3": "trainable", "FL1": "", "F1": "trainable",
                      "F2": "new head"}
    frozen = 3 * 3 * 8 + 2 * 8 + 3 * 3 * 8 * 16  # C1 (bias off), BN1, C2 (bias off)
    assert s.totals.non_trainable_params == frozen
    assert s.totals.trainable_params == s.totals.params - frozen
    assert s.layers[-1].params == 32 * 3 + 3  # the new head's 3 outputs


def test_torchvision_vgg16_state_dict_into_vgg16_with_3_classes(tmp_path):
    """A torchvision VGG-16 checkpoint (random weights: no download here) saved with
    torch.save, loaded into specs/vgg16.cnn with classes 3 by order and shape."""
    from torchvision.models import vgg16

    reference = vgg16(weights=None)
    torch.save(reference.state_dict(), tmp_path / "vgg16.pth")
    spec = cnnspec.loads((SPECS / "vgg16.cnn").read_text()
                         + f'\ntransfer:\n    from "{tmp_path / "vgg16.pth"}"\n    freeze up to C13\n'
                         "    classes 3\n", str(SPECS / "vgg16.cnn"))
    model = cnnspec.build(spec)
    head = freeze_plan(spec).head
    m, _where = load_into(model, spec, tmp_path / "vgg16.pth", head)
    assert m.method == "by order" and head == "F3"
    assert [(k, a, b) for k, a, b in m.replaced] == [("F3.weight", (3, 4096), (1000, 4096)),
                                                    ("F3.bias", (3,), (1000,))]
    assert len(m.loaded) == 30 and not m.mismatches and not m.unused
    assert torch.equal(model.C1.weight, reference.features[0].weight)
    assert torch.equal(model.F2.weight, reference.classifier[3].weight)
    assert summarize(spec).totals.trainable_params == (25088 * 4096 + 4096 + 4096 * 4096 + 4096
                                                      + 4096 * 3 + 3)


def test_wrong_shapes_give_a_table_exit_1_and_write_nothing(tmp_path, source_run, digit_folder):
    weights = load_file(source_run / "weights.safetensors")
    weights["C2.weight"] = torch.zeros(32, 8, 3, 3)
    del weights["C3.bias"]
    save_file(weights, tmp_path / "bad.safetensors")
    spec_file = tmp_path / "t.cnn"
    spec_file.write_text(NET.format(epochs=1) + 'transfer:\n    from "bad.safetensors"\n'
                         "    classes from data\n")
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "cnnspec", "compile", str(spec_file), "--train",
                        "--data", str(digit_folder), "--out", str(out)],
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "2 tensor(s) do not fit the spec" in r.stderr
    lines = [" ".join(line.split()) for line in r.stderr.splitlines()]
    assert "C2.weight C2.weight 16x8x3x3 32x8x3x3" in lines
    assert "C3.bias - 16 missing" in lines
    assert not out.exists()


def test_unreadable_and_pickled_files_are_refused(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(cnnspec.CnnSpecError, match="cannot read weights"):
        read_weights(tmp_path / "junk.pth")

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(cnnspec.CnnSpecError, match="cannot read weights: UnpicklingError"):
        read_weights(tmp_path / "evil.pth")  # weights_only=True: the object is never built
    with pytest.raises(cnnspec.CnnSpecError, match="no such weights file or run folder"):
        read_weights(tmp_path / "missing.safetensors")


@pytest.mark.parametrize(("rules", "message", "hint"), [
    ("    freeze up to C9\n", "transfer: there is no layer 'C9'", None),
    ("    freeze all except F3, Fl\n", "transfer: there is no layer 'F3'", None),
    ("    train last 4 conv\n", "train last 4 conv, but the network has 3 conv layers", None),
    ("    freeze up to C1\n    freeze up to C2\n", ("transfer: freeze, train last or freeze all is "
     "given twice"), None),
    ("    lr backbone 0.1 head 0.01\n", "lr backbone ... head ... needs a new head", "classes"),
    ("    classes 1\n", "transfer: classes", None),
])
def test_transfer_mistakes_are_spec_errors(source_run, rules, message, hint):
    with pytest.raises(cnnspec.SpecError) as exc:
        target(source_run, rules)
    first = exc.value.diagnostics[0]
    assert message in first.message
    if hint:
        assert hint in first.hint
    assert first.span is not None and first.span.line > 17


def test_unknown_layer_names_are_shown_under_the_name(source_run):
    with pytest.raises(cnnspec.SpecError) as exc:
        target(source_run, "    freeze all except F1, F9\n")
    span = exc.value.diagnostics[0].span
    line = exc.value.diagnostics[0].span.line
    text = (NET.format(epochs=1) + f'transfer:\n    from "{source_run}"\n'
            "    freeze all except F1, F9\n").splitlines()[line - 1]
    assert text[span.col - 1:span.end_col - 1] == "F9"


def test_a_transfer_section_needs_from():
    with pytest.raises(cnnspec.SpecError, match="where do the weights come from"):
        cnnspec.loads(NET.format(epochs=1) + "transfer:\n    classes 3\n")


@pytest.mark.parametrize(("rules", "message"), [
    ("    freeze all\n", "nothing trains in the first epoch: every layer is frozen"),
    ("    freeze up to F2\n    unfreeze C2 at epoch 2\n", "nothing trains in the first epoch"),
    ("    freeze up to C2\n    unfreeze C2 at epoch 1\n",
     "unfreeze C2 at epoch 1 is the start of training"),
    ("    freeze up to C2\n    unfreeze C2 at epoch 2\n    unfreeze C1, C2 at epoch 3\n",
     r"unfreeze C2 is given twice \(at epochs 2 and 3\)"),
    ("    unfreeze C1 at epoch 3\n", "unfreeze C1: C1 is not frozen"),
    ("    freeze up to C1\n    unfreeze F1 at epoch 2\n", "unfreeze F1: F1 is not frozen"),
])
def test_freeze_rules_that_cannot_train_are_spec_errors(source_run, rules, message):
    with pytest.raises(cnnspec.SpecError, match=message):
        target(source_run, rules)


def test_weights_files_in_other_shapes(tmp_path, source_run):
    spec = target(source_run, "    freeze up to C2\n    classes 3\n")
    model = cnnspec.build(spec)
    weights = load_file(source_run / "weights.safetensors")
    # a training checkpoint: the state_dict beside other entries
    torch.save({"epoch": 3, "best_acc": torch.tensor(0.9), "state_dict": weights},
               tmp_path / "ckpt.pth")
    m, _ = load_into(model, spec, tmp_path / "ckpt.pth", "F2")
    assert m.method == "by name" and not m.mismatches
    # torchvision-style names in a .safetensors file: no order to match by
    save_file({f"features.{i}.weight": v for i, v in enumerate(weights.values())},
              tmp_path / "renamed.safetensors")
    with pytest.raises(cnnspec.CnnSpecError, match="does not keep the order of its tensors"):
        load_into(model, spec, tmp_path / "renamed.safetensors", "F2")
    # the same network with its 10-class head, into a spec that forgot `classes`
    no_head = target(source_run, "    freeze up to C2\n")
    other = dict(weights, **{"F2.weight": torch.zeros(3, 32), "F2.bias": torch.zeros(3)})
    save_file(other, tmp_path / "three.safetensors")
    with pytest.raises(cnnspec.CnnSpecError, match="F2 is the last dense layer.*classes from data"):
        load_into(cnnspec.build(no_head), no_head, tmp_path / "three.safetensors", None)


def test_lr_override_is_refused_when_transfer_sets_the_rates(tmp_path, source_run, digit_folder):
    spec = target(source_run, "    classes 3\n    lr backbone 0.001 head 0.01\n")
    with pytest.raises(cnnspec.CnnSpecError, match="--lr: this spec's transfer: section sets"):
        cnnspec.train(spec, data=digit_folder, out=tmp_path / "run", overrides={"lr": 0.5})
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("source", "message"), [
    ('""', "is a folder without weights.safetensors or last.safetensors"),
    ('"picture.png"', "is not a weights file"),
    ('"nothere"', "does not exist"),
])
def test_check_names_a_source_that_cannot_be_one(tmp_path, source, message):
    import subprocess
    import sys

    (tmp_path / "picture.png").write_bytes(b"not weights")
    spec = tmp_path / "t.cnn"
    spec.write_text(NET.format(epochs=1) + f"transfer:\n    from {source}\n")
    r = subprocess.run([sys.executable, "-m", "cnnspec", "check", str(spec)],
                       capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 1 and message in r.stderr, r.stderr


def test_bias_train_rules(source_run):
    """bias train needs a freeze rule; with freeze all it is a plan (the biases train); the
    summary marks layers whose biases train as 'weights frozen', trainable."""
    with pytest.raises(cnnspec.SpecError) as err:
        target(source_run, "    bias train\n")
    d = err.value.diagnostics[0]
    assert (d.span.line, d.message) == (NET.count("\n") + 3, ("transfer: bias train keeps the "
                                        "biases of frozen layers training, but no layer is frozen"))
    spec = target(source_run, "    freeze all\n    bias train\n")  # no error: biases train
    rows = {r.name: (r.status, r.trainable) for r in summarize(spec).layers}
    assert rows["C1"] == ("frozen", False)  # bias off: nothing of it trains
    assert rows["C3"] == ("weights frozen", True)
    assert rows["BN1"] == ("weights frozen", True)
    with pytest.raises(cnnspec.SpecError) as err:
        target(source_run, "    freeze all\n")
    assert err.value.diagnostics[0].hint == ("leave some layers trainable (freeze all except "
                                             "F2), or add classes N for a new head")


def test_bn_train_needs_a_frozen_batch_norm_and_bias_train_is_announced(source_run):
    assert target(source_run, "    freeze up to C3\n    bn train\n").transfer.bn_train  # BN1, BN2
    with pytest.raises(cnnspec.SpecError) as err:
        target(source_run, "    freeze up to C1\n    bn train\n")
    assert err.value.diagnostics[0].message == (
        "transfer: bn train: no frozen layer is a batch norm, so no running statistics are "
        "kept from updating")
    from cnnspec.training.announce import transfer_lines

    plan = freeze_plan(target(source_run, "    freeze up to C2\n    bias train\n"))
    assert transfer_lines(plan, None) == [
        "  frozen: C1, BN1, C2", "  trainable: BN2, C3, F1, F2",
        "  bias train: the frozen layers' biases train, their weights stay"]


def test_a_frozen_layer_with_sub_modules_is_frozen_whole():
    """se's module holds fc1 and fc2: their keys (SE1.fc1.weight) belong to layer SE1."""
    from cnnspec.transfer import apply_plan

    spec = cnnspec.loads("network T\ninput 8x8x4\nse 2\nconv 3x3x4\nflatten\ndense 2\n"
                         'transfer:\n    from "w.safetensors"\n    freeze up to SE1\n'
                         "    bias train\n")
    model = cnnspec.build(spec)
    apply_plan(model, freeze_plan(spec), 0)
    trains = {k: p.requires_grad for k, p in model.named_parameters()}
    assert trains == {"SE1.fc1.weight": False, "SE1.fc1.bias": True, "SE1.fc2.weight": False,
                      "SE1.fc2.bias": True, "C1.weight": True, "C1.bias": True,
                      "F1.weight": True, "F1.bias": True}
