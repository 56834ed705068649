"""cnnspec/schedule.py: learning-rate schedules: every epoch's rate pinned for each kind (with warmup), the closed
forms held to PyTorch's own schedulers, and the trainer's scheduler applying exactly them on a
real optimizer, through a checkpoint round trip."""

from __future__ import annotations

import math

import pytest
import torch

import cnnspec
from cnnspec import ir
from cnnspec.report.preview import schedule_preview
from cnnspec.schedule import epoch_lr, lr_at
from cnnspec.training.optim import make_scheduler

HEAD = "input 8x8x1\nflatten\ndense 2\ntrain:\n"


def cfg_of(train: str) -> ir.TrainConfig:
    return cnnspec.loads(HEAD + train).train


def applied(cfg: ir.TrainConfig, metrics: list[float] | None = None, resume_at: int | None = None
            ) -> list[float]:
    """The rate a real torch optimizer has in each epoch under the trainer's scheduler; with
    ``resume_at`` the scheduler is saved and reloaded into a fresh optimizer at that epoch."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=cfg.optimizer.lr)
    sched = make_scheduler(cfg, opt)
    rates = []
    for epoch in range(cfg.epochs):
        if epoch == resume_at:
            state, opt_state = sched.state_dict(), opt.state_dict()
            opt = torch.optim.SGD([param], lr=cfg.optimizer.lr)
            sched = make_scheduler(cfg, opt)
            opt.load_state_dict(opt_state)
            sched.load_state_dict(state)
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()  # one optimizer step per epoch here
        sched.epoch_end({"val_loss": metrics[epoch] if metrics else 0.0})
    return rates


# Each case: train-section text and the rate of every epoch (epochs 1, 2, ... as the spec
# counts them), worked out by hand from the definitions in cnnspec/schedule.py (warmup:
# epoch e <= N runs at e / (N + 1) of the rate of epoch N + 1).
PINNED = {
    "step": (("    epochs 8\n    optimizer sgd lr 0.1\n    schedule step warmup 2:\n"
             "        5: 0.01\n        7: 0.001\n"),
             [0.1 / 3, 0.2 / 3, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]),
    "multistep": (("    epochs 7\n    optimizer sgd lr 0.1\n    schedule multistep 4, 6 factor 0.5 "
                  "warmup 1\n"), [0.05, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025]),
    # T = 4 epochs after the warmup: 0.1 (1 + cos(pi t / 4)) / 2 for t = 0..3
    "cosine": ("    epochs 6\n    optimizer sgd lr 0.1\n    schedule cosine warmup 2\n",
               [0.1 / 3, 0.2 / 3, 0.1, 0.05 * (1 + math.sqrt(0.5)), 0.05,
                0.05 * (1 - math.sqrt(0.5))]),
    # min_lr 0.02: 0.02 + 0.08 (1 + cos(pi t / 4)) / 2
    "cosine_min_lr": ("    epochs 4\n    optimizer sgd lr 0.1\n    schedule cosine min_lr 0.02\n",
                      [0.1, 0.02 + 0.04 * (1 + math.sqrt(0.5)), 0.06,
                       0.02 + 0.04 * (1 - math.sqrt(0.5))]),
    # 10 epochs, peak 0.1: up from 0.1/25 over epochs 0..2 (0.3 * 10 - 1 = 2), then down to
    # 0.1/25/1e4 at epoch 9 along (1 + cos(pi (t - 2) / 7)) / 2
    "onecycle": ("    epochs 10\n    optimizer sgd lr 0.1\n    schedule onecycle\n",
                 [0.004, 0.052, 0.1] + [4e-7 + (0.1 - 4e-7) * (1 + math.cos(math.pi * k / 7)) / 2
                                        for k in range(1, 8)]),
    "onecycle_warmup": ("    epochs 6\n    optimizer sgd lr 0.1\n    schedule onecycle warmup 2\n",
                        # T = 4: up over 0.3 * 4 - 1 = 0.2 steps, so epoch 2 (t = 0) is the start
                        [0.004 / 3, 0.008 / 3, 0.004] + [
                            4e-7 + (0.1 - 4e-7) * (1 + math.cos(math.pi * (t - 0.2) / 2.8)) / 2
                            for t in (1, 2, 3)]),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_every_epoch_rate_is_pinned(name):
    text, expected = PINNED[name]
    cfg = cfg_of(text)
    assert [epoch_lr(cfg, e) for e in range(1, cfg.epochs + 1)] == pytest.approx(expected, rel=1e-9)
    assert applied(cfg) == pytest.approx(expected, rel=1e-9)  # what training does
    assert applied(cfg, resume_at=3) == pytest.approx(expected, rel=1e-9)  # and after --resume


def test_plateau_cuts_the_rate_when_the_metric_stalls():
    cfg = cfg_of("    epochs 9\n    optimizer sgd lr 0.1\n"
                 "    schedule plateau val_loss patience 1 factor 0.5 min_lr 0.02 warmup 1\n")
    losses = [1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.9, 0.91, 0.92]
    # epoch 1 warms up (0.1 / 2); epochs 3 and 4 do not beat 0.9: more than 1 bad epoch,
    # the rate halves from epoch 5; epochs 6, 7 do not beat 0.8: halves again from epoch 8,
    # and is then held at the 0.02 floor
    expected = [0.05, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]
    assert applied(cfg, losses) == pytest.approx(expected)
    assert applied(cfg, losses, resume_at=5) == pytest.approx(expected)
    assert schedule_preview(cfg).ranges == [(1, 1, 0.05), (2, 9, 0.1)]
    assert "x0.5 after 1 epochs without val_loss improving" in schedule_preview(cfg).text()


def test_plateau_on_accuracy_waits_for_a_rise():
    cfg = cfg_of("    epochs 5\n    optimizer sgd lr 0.1\n"
                 "    schedule plateau val_accuracy patience 0 factor 0.1\n")
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = make_scheduler(cfg, opt)
    rates = []
    for acc in [0.5, 0.6, 0.6, 0.7, 0.7]:
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        sched.epoch_end({"val_accuracy": acc})
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01])


@pytest.mark.parametrize("epochs", [5, 10, 37])
def test_closed_forms_equal_pytorch_schedulers(epochs):
    """Our formulas against torch.optim.lr_scheduler's own, stepped once per epoch."""
    def torch_rates(make):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        sched = make(opt)
        rates = []
        for _ in range(epochs):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return rates

    sch = torch.optim.lr_scheduler
    cosine = ir.Schedule(kind="cosine", min_lr=0.001)
    assert [lr_at(cosine, e, epochs, 0.1) for e in range(epochs)] == pytest.approx(
        torch_rates(lambda o: sch.CosineAnnealingLR(o, T_max=epochs, eta_min=0.001)), rel=1e-6)
    onecycle = ir.Schedule(kind="onecycle")
    assert [lr_at(onecycle, e, epochs, 0.1) for e in range(epochs)] == pytest.approx(
        torch_rates(lambda o: sch.OneCycleLR(o, max_lr=0.1, total_steps=epochs)), rel=1e-6)
    # PyTorch's milestone m (epochs done) is the spec's epoch m + 1 (epochs count from 1)
    multistep = ir.Schedule(kind="multistep", milestones=[3, 5], factor=0.3)
    assert [lr_at(multistep, e, epochs, 0.1) for e in range(epochs)] == pytest.approx(
        torch_rates(lambda o: sch.MultiStepLR(o, milestones=[2, 4], gamma=0.3)), rel=1e-9)
    warm = ir.Schedule(kind="multistep", milestones=[], warmup=3)
    assert [lr_at(warm, e, epochs, 0.1) for e in range(epochs)] == pytest.approx(
        torch_rates(lambda o: sch.LinearLR(o, start_factor=1 / 4, total_iters=3)), rel=1e-9)


def test_smooth_schedules_preview_as_samples_and_long_runs_stay_cheap():
    cfg = cfg_of("    epochs 100\n    optimizer sgd lr 0.1\n    schedule cosine warmup 5\n")
    text = schedule_preview(cfg).text()
    assert text.startswith("epochs 1: 0.0167, ") and text.endswith("(a smooth curve: samples)")
    huge = cfg_of("    epochs 99999999999\n    optimizer sgd lr 0.1\n    schedule cosine\n")
    assert len(schedule_preview(huge).ranges) == 200  # a sample, not one range per epoch


@pytest.mark.parametrize(("train", "message"), [
    ("    epochs 5\n    schedule cosine warmup 5\n",
     "schedule cosine: warmup 5 is not shorter than the run (5 epochs)"),
    ("    schedule cosine factor 0.5\n", "schedule cosine: factor is not a setting of this schedule"),
    ("    schedule multistep 30, 20\n", "schedule multistep: epochs must increase, got 20 after 30"),
    ("    schedule multistep 0, 20\n", ("schedule multistep: a milestone epoch must be greater "
                                      "than 0, got 0")),
    ("    schedule step:\n        0: 0.1\n", "schedule: the epoch must be greater than 0, got 0"),
    ("    schedule plateau patience 3 factor 1.5\n",
     "schedule plateau: the factor must be less than 1.0, got 1.5"),
    ("    optimizer adam lr 0.001 momentum 0.9\n",
     "optimizer adam: momentum is not a setting of adam"),
    ("    optimizer sgd lr 0.1 nesterov\n", "optimizer sgd: nesterov needs momentum"),
    ("    optimizer sgd lr 0.1 betas 0.9 0.99\n", "optimizer sgd: betas is not a setting of sgd"),
    ("    early_stop val_loss patience 0\n",
     "early stop: the patience must be greater than 0, got 0"),
    ("    weight_decay 1e-4 except bias, bias\n", "weight_decay: a word after 'except' is repeated"),
    ("    label_smoothing 1.0\n", "train: the label smoothing must be less than 1.0, got 1.0"),
    ("    augment: color_jitter hue 0.7\n", "color_jitter: the hue must be at most 0.5, got 0.7"),
    ("    augment: random_resized_crop scale 1.0 0.5\n",
     "random_resized_crop: scale 1 0.5 must go from the smaller to the larger fraction"),
    ("    augment: normalize mean 0.5 0.5 std 0.2 0.2\n",
     "normalize: 2 mean value(s) for an input with 1 channel(s)"),
    ("    augment: normalize imagenet\n", "normalize imagenet: ImageNet statistics are for RGB"),
])
def test_train_section_mistakes_are_reported_at_their_place(train, message):
    with pytest.raises(cnnspec.SpecError) as exc:
        cnnspec.loads(HEAD + train)
    first = exc.value.diagnostics[0]
    assert message in first.message
    assert first.span.line == 4 + train.count("\n")  # the (last) line, under the train: header
