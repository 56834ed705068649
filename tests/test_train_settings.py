"""The train: section's settings, each seen working in a real (short) run on the real digits:
optimizers, weight-decay exemption, gradient clipping, label smoothing, callbacks,
normalisation, augmentation and command-line overrides."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import cnnspec
from cnnspec import ir
from cnnspec.builder import build
from cnnspec.data import augmentation
from cnnspec.errors import CnnSpecError
from cnnspec.training import resume
from cnnspec.training.optim import make_optimizer, param_groups
from cnnspec.training.settings import apply_overrides
from conftest import SPECS

TINY = """network Tiny
input 28x28x1
conv 3x3x4 stride 2 bias off
batchnorm relu
flatten
dense 10
train:
    epochs {epochs}
    batch 128
{extra}"""


def tiny(extra: str = "", epochs: int = 2) -> ir.Spec:
    return cnnspec.loads(TINY.format(epochs=epochs, extra=extra))


def test_weight_decay_exempts_biases_and_batchnorm():
    spec = tiny("    optimizer sgd lr 0.1 momentum 0.9 nesterov\n"
                "    weight_decay 5e-4 except bias, batchnorm\n")
    groups = param_groups(cnnspec.build(spec), spec.train)
    # conv 3x3x1x4 = 36 and dense 14*14*4*10 = 7,840 weights decay (a stride-2 conv pads
    # 'same' by default: 28 -> 14); the batchnorm's 4 + 4 and the dense layer's 10 biases do not
    assert [(g["name"], sum(p.numel() for p in g["params"]), g["weight_decay"])
            for g in groups] == [("decay", 36 + 7840, 5e-4), ("no_decay", 4 + 4 + 10, 0.0)]
    opt = make_optimizer(spec.train, groups)
    assert type(opt) is torch.optim.SGD and opt.defaults["nesterov"] is True
    plain = tiny("    weight_decay 5e-4\n")
    assert [g["name"] for g in param_groups(cnnspec.build(plain), plain.train)] == ["decay"]


@pytest.mark.parametrize(("line", "cls", "setting"), [
    ("optimizer adamw lr 0.002 betas 0.8 0.99", torch.optim.AdamW, ("betas", (0.8, 0.99))),
    ("optimizer rmsprop lr 0.01 momentum 0.5 alpha 0.9", torch.optim.RMSprop, ("alpha", 0.9)),
    ("optimizer adam lr 0.003 eps 1e-6", torch.optim.Adam, ("eps", 1e-6)),
])
def test_optimizers_are_torch_optimizers_with_the_written_settings(line, cls, setting):
    spec = tiny(f"    {line}\n")
    opt = make_optimizer(spec.train, param_groups(cnnspec.build(spec), spec.train))
    assert type(opt) is cls
    assert opt.defaults[setting[0]] == setting[1]
    assert opt.defaults["lr"] == spec.train.optimizer.lr


def test_clip_grad_norm_bounds_every_step(tmp_path):
    """SGD without momentum moves the weights by lr x gradient; with the gradient's norm
    clipped to 1e-4, 32 steps at lr 1 move them by at most 32 x 1e-4 in L2 norm."""
    spec = tiny("    optimizer sgd lr 1.0\n    clip_grad_norm 1e-4\n", epochs=1)
    # train() builds with the spec's seed: these are its initial weights
    start = torch.nn.utils.parameters_to_vector(
        build(cnnspec.infer_shapes(spec), seed=spec.train.seed).parameters()).detach()
    run = cnnspec.train(spec, out=tmp_path / "run", export=False)
    moved = (torch.nn.utils.parameters_to_vector(run.model.parameters()).detach() - start).norm()
    steps = -(-4000 // 128)
    assert 0 < moved <= steps * 1e-4 * 1.0001
    unclipped = cnnspec.train(tiny("    optimizer sgd lr 1.0\n", epochs=1), out=tmp_path / "b",
                              export=False)
    assert (torch.nn.utils.parameters_to_vector(unclipped.model.parameters()).detach()
            - start).norm() > 100 * steps * 1e-4


def test_label_smoothing_raises_the_loss_floor(tmp_path):
    """With label smoothing 0.2 over 10 classes the best possible loss is the entropy of the
    smoothed target q = (0.82, 0.02 x 9), H(q) = 0.87 nats; cross-entropy H(q, p) >= H(q)."""
    run = cnnspec.train(tiny("    optimizer adam lr 0.01\n    label_smoothing 0.2\n", epochs=2),
                        out=tmp_path / "run", export=False)
    q = torch.tensor([0.82] + [0.02] * 9)
    floor = float(-(q * q.log()).sum())
    assert floor == pytest.approx(0.867, abs=1e-3)
    assert all(m["train_loss"] > floor for m in run.metrics)
    plain = cnnspec.train(tiny("    optimizer adam lr 0.01\n", epochs=2), out=tmp_path / "b",
                          export=False)
    assert plain.final["train_loss"] < floor  # the same run without smoothing goes below it


def test_early_stop_and_checkpoint_callbacks(tmp_path):
    """val_accuracy cannot improve by more than 1.0: the run stops after patience 2 epochs
    past its first, keeps every epoch's weights and the best by val_loss."""
    spec = tiny("    optimizer adam lr 0.01\n    early_stop val_accuracy patience 2 min_delta 1.0\n"
                "    checkpoint best val_loss, every 1\n", epochs=10)
    run = cnnspec.train(spec, out=tmp_path / "run", export=False)
    assert [m["epoch"] for m in run.metrics] == [1, 2, 3] and run.stopped_early
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["stopped_early"] is True
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"epoch-001.safetensors", "epoch-002.safetensors", "epoch-003.safetensors",
            "best.safetensors", "last.ckpt", "weights.safetensors"} <= files
    best_epoch = min(run.metrics, key=lambda m: m["val_loss"])["epoch"]
    best = load_file(tmp_path / "run" / "best.safetensors")
    kept = load_file(tmp_path / "run" / f"epoch-{best_epoch:03d}.safetensors")
    assert all(torch.equal(best[k], kept[k]) for k in best)
    # a resumed run that had stopped early does not train on
    again = resume(tmp_path / "run", export=False)
    assert len(again.metrics) == 3


def test_checkpoint_last_keeps_no_best(tmp_path):
    cnnspec.train(tiny("    checkpoint last\n", epochs=1), out=tmp_path / "run", export=False)
    assert not (tmp_path / "run" / "best.safetensors").exists()
    assert (tmp_path / "run" / "last.safetensors").exists()


def test_given_normalisation_is_used_and_recorded(tmp_path):
    run = cnnspec.train(tiny("    augment: normalize mean 0.5 std 0.25\n", epochs=1),
                        out=tmp_path / "run", export=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["normalize"]["mean"] == [0.5] and info["normalize"]["std"] == [0.25]
    assert info["normalize"]["source"] == "spec"
    assert run.final["epoch"] == 1


def test_new_augmentations_keep_the_input_size_and_dtype():
    spec = cnnspec.loads("input 28x28x3\nflatten\ndense 2\ntrain:\n    augment: "
                         "random_resized_crop 20 scale 0.5 1.0, color_jitter brightness 0.4 "
                         "saturation 0.4 hue 0.1, random_erasing 1.0 scale 0.1 0.1\n")
    t = augmentation(spec.train.augment, spec.input)
    torch.manual_seed(0)
    x = torch.full((3, 28, 28), 200, dtype=torch.uint8)
    y = t(x)
    assert y.shape == (3, 28, 28) and y.dtype == torch.uint8
    # random_erasing p=1 with scale 0.1: about 10% of the pixels (78 of 784) are zeroed
    assert 0.05 < float((y == 0).all(0).float().mean()) < 0.15


def test_overrides_replace_settings_and_are_checked():
    cfg = cnnspec.load(SPECS / "lenet5.cnn").train
    new = apply_overrides(cfg, {"optimizer": "adam", "lr": 0.001, "batch": 32})
    assert (new.optimizer.name, new.optimizer.lr, new.optimizer.momentum, new.batch) == (
        "adam", 0.001, 0.0, 32)  # adam has no momentum: the spec's 0.9 is dropped
    with pytest.raises(CnnSpecError, match=r"--lr: .*greater than 0 \(got -1.0\)"):
        apply_overrides(cfg, {"lr": -1.0})
    with pytest.raises(CnnSpecError, match="warmup 3 must be shorter than the run"):
        apply_overrides(tiny("    schedule cosine warmup 3\n", epochs=10).train, {"epochs": 2})


def test_mixup_and_cutmix_mix_whole_batches_with_their_labels(tmp_path):
    from cnnspec.data import batch_augmentation

    spec = tiny("    augment: hflip, mixup 1.0\n", epochs=2)
    mix = batch_augmentation(spec.train.augment, 10)
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8)
    mixed, soft = mix(x, y)
    assert soft.shape == (8, 10) and torch.allclose(soft.sum(1), torch.ones(8))
    lam = soft[0, 0].item()  # MixUp: x' = lam x + (1 - lam) x.roll(1), labels alike
    assert 0 < lam < 1 and torch.allclose(mixed, lam * x + (1 - lam) * x.roll(1, 0))
    assert augmentation(spec.train.augment, spec.input) is not None  # hflip stays per image
    run = cnnspec.train(tiny("    optimizer adam lr 0.01\n    augment: mixup 0.2, cutmix 1.0\n"),
                        out=tmp_path / "run", export=False)
    assert run.final["val_accuracy"] > 0.6  # it still learns the digits


def test_overrides_that_the_spec_would_refuse_are_refused():
    adam = tiny("    optimizer adam lr 0.001\n").train
    with pytest.raises(CnnSpecError, match="--momentum: optimizer adam has no momentum"):
        apply_overrides(adam, {"momentum": 0.9})
    nesterov = tiny("    optimizer sgd lr 0.1 momentum 0.9 nesterov\n").train
    with pytest.raises(CnnSpecError, match="nesterov, which needs a momentum above 0"):
        apply_overrides(nesterov, {"momentum": 0.0})
    with pytest.raises(CnnSpecError, match="--seed: .*less than or equal to 9223372036854775807"):
        apply_overrides(adam, {"seed": 2**64})
    with pytest.raises(CnnSpecError, match="--lr: Input should be a finite number"):
        apply_overrides(adam, {"lr": float("inf")})


@pytest.mark.parametrize(("line", "message"), [
    ("    optimizer sgd lr 1e999\n", "optimizer: the learning rate is too large"),
    ("    weight_decay 1e400\n", "train: the weight decay is too large"),
    ("    seed 99999999999999999999\n", "train: the seed must be at most 9223372036854775807"),
    ("    augment: normalize mean 0 std 1e-50\n", "normalize: the std must be at least 1e-06"),
    ("    schedule step:\n        1: 0\n", "schedule: the learning rate must be greater than 0"),
    ("    optimizer adam lr 0.001\n    schedule cosine min_lr 1\n",
     "min_lr 1 must be below the optimizer's lr 0.001"),
])
def test_out_of_range_numbers_are_one_clear_error(line, message):
    with pytest.raises(cnnspec.SpecError) as exc:
        tiny(line)
    assert len(exc.value.diagnostics) == 1 and message in exc.value.diagnostics[0].message


def test_diverging_weights_stop_before_a_nan_checkpoint(tmp_path):
    """One step per epoch (batch 4000) at lr 1e30: the loss of that step is finite, the
    weights after it are not. The run must stop on the validation loss instead of
    checkpointing NaN weights."""
    spec = cnnspec.loads("network Boom\ninput 28x28x1\nflatten\ndense 64 relu\ndense 64 relu\n"
                         "dense 10\ntrain:\n    epochs 2\n    batch 4000\n"
                         "    optimizer sgd lr 1e30\n")
    with pytest.raises(cnnspec.CnnSpecError, match="the validation loss became nan after epoch 1"):
        cnnspec.train(spec, out=tmp_path / "run", export=False)
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_batch_norm_never_trains_on_a_last_batch_of_one_image(tmp_path):
    """4,000 training digits in batches of 1,333 leave 1: batch norm after a dense layer
    raised "Expected more than 1 value per channel" on it; now it is left out, and said."""
    import json

    spec = cnnspec.loads("network BN\ninput 28x28x1\nconv 3x3x4 relu\nmaxpool 2\nflatten\n"
                         "dense 16\nbatchnorm relu\ndense 10\ntrain:\n    epochs 1\n"
                         "    batch 1333\n    optimizer sgd lr 0.01\n")
    run = cnnspec.train(spec, out=tmp_path / "run", export=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (info["steps_per_epoch"], info["dropped_per_epoch"]) == (3, 1)
    assert run.final["epoch"] == 1


def test_ema_weights_are_the_hand_computed_moving_average(tmp_path):
    """``ema 0.8``: after every optimizer step w_ema = 0.8 w_ema + 0.2 w, from w_ema = the
    starting weights (batch-norm running statistics averaged the same way, counters
    copied). Worked out here by hand from the weights after each step; the run's
    weights.safetensors, last.safetensors, validation and model.onnx hold the average."""
    from cnnspec.training import Callback

    spec = tiny("    optimizer sgd lr 0.5\n    ema 0.8\n    workers 0\n", epochs=1)
    seen: list[dict] = []

    class Record(Callback):
        def on_train_start(self, trainer):
            seen.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

        def on_step_end(self, trainer, step, loss):
            seen.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})

    run = cnnspec.train(spec, out=tmp_path / "run", callbacks=[Record()])
    steps = -(-4000 // 128)
    assert len(seen) == steps + 1
    by_hand = {k: v.double() for k, v in seen[0].items()}
    for w in seen[1:]:
        by_hand = {k: 0.8 * by_hand[k] + 0.2 * w[k].double() for k in w}
    saved = load_file(tmp_path / "run" / "weights.safetensors")
    for key, value in saved.items():
        if key.endswith("num_batches_tracked"):
            assert int(value) == int(seen[-1][key]) == steps  # copied, not averaged
        else:
            assert torch.allclose(value.double(), by_hand[key], rtol=1e-5, atol=1e-6), key
    last = load_file(tmp_path / "run" / "last.safetensors")
    assert all(torch.equal(last[k], saved[k]) for k in saved)
    # the raw weights moved past their average: the average is not the last step's weights
    weight = next(k for k in saved if k.endswith("weight") and saved[k].dim() > 1)
    assert not torch.allclose(saved[weight], seen[-1][weight], atol=1e-4)
    # validation ran on the average: evaluating it gives the recorded accuracy
    from cnnspec.training import evaluate_run

    report = evaluate_run(tmp_path / "run")
    assert report["accuracy"] == pytest.approx(run.final["val_accuracy"], abs=1e-9)
    assert "weights averaged (EMA 0.8)" in " ".join(cnnspec.summarize(spec).training["extras"])


def test_ema_survives_a_resume(tmp_path):
    """The average is in last.ckpt: 1 epoch then --epochs 2 equals 2 epochs straight."""
    extra = "    optimizer sgd lr 0.2\n    ema 0.9\n    workers 0\n"
    straight = cnnspec.train(tiny(extra, epochs=2), out=tmp_path / "a", export=False)
    cnnspec.train(tiny(extra, epochs=1), out=tmp_path / "b", export=False)
    resumed = resume(tmp_path / "b", epochs=2, export=False)
    a = load_file(tmp_path / "a" / "weights.safetensors")
    b = load_file(tmp_path / "b" / "weights.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.final["val_accuracy"] == straight.final["val_accuracy"]


def test_set_replaces_settings_and_labelled_layers_values_and_is_recorded(tmp_path):
    """Issue 29, finding 9: --set NAME=VALUE for a setting (lr), a kind with one layer
    (dropout) and a labelled layer's field (C1.out_channels), recorded in run.json; wrong
    names and values are refused with what there is."""
    from cnnspec.training.settings import assign

    spec = tiny("    optimizer sgd lr 0.1\n" , epochs=1).model_copy(update={"layers": [
        *tiny().layers[:-1], ir.Dropout(p=0.5, name="D1"), tiny().layers[-1]]})
    changed, overrides, done = assign(spec, ["dropout=0.3", "lr=0.01", "C1.out_channels=8"])
    assert overrides == {"lr": 0.01} and done == {"dropout": "0.3", "lr": "0.01",
                                                    "C1.out_channels": "8"}
    by_name = {layer.name: layer for layer in changed.layers}
    assert by_name["D1"].p == 0.3 and by_name["C1"].out_channels == 8
    assert cnnspec.infer_shapes(changed).params != cnnspec.infer_shapes(spec).params
    for pair, message in [("dropoot=0.3", "neither a setting nor a layer"),
                          ("D1.q=0.3", "D1 has no field q; its fields are p"),
                          ("D1.p=3", "less than 1"), ("lr=fast", "lr takes a number"),
                          ("epochs=2.5", "epochs takes a whole number"), ("lr", "NAME=VALUE")]:
        with pytest.raises(CnnSpecError, match=message):
            assign(spec, [pair])
    run = cnnspec.train(changed, out=tmp_path / "run", overrides=overrides, assigned=done,
                        export=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["set"] == done and info["overrides"]["lr"] == 0.01
    assert run.metrics[0]["lr"] == 0.01
