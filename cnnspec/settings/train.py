"""The one-value settings of ``train:``: epochs, batch, weight decay, label smoothing,
gradient clipping, the split, the seed and the data folder."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from .base import (
    FLOAT32_MAX,
    Fraction,
    IRField,
    Override,
    Rate,
    Setting,
    keep_word,
    simple_transform,
)


def _one(key, grammar, annotation, default, row, value="num", labels=None, override=None,
         summary=None, field_doc=""):
    """A setting written ``WORD VALUE``, its rule named as its key."""
    return Setting("train", (key,), grammar, (IRField(key, annotation, default, field_doc),),
                   (row,), value, {key: simple_transform(key, value)},
                   labels=labels or {}, overrides=override and (override,) or (),
                   summary=summary)


def _weight_decay(self, items):
    value, words = items[0], items[1:]
    opts = [self._opt("weight_decay", value, self._num(value))]
    if words:
        opts.append(self._opt("no_decay", words[0], tuple(str(w) for w in words)))
    return opts


def _check_no_decay(v, f, raw) -> None:
    if "no_decay" in f:
        words = f["no_decay"]
        if len(set(words)) < len(words):
            v.error(raw.spans["no_decay"], "weight_decay: a word after 'except' is repeated",
                    "write except bias, batchnorm")
        f["no_decay"] = sorted(set(words))


SETTINGS = (
    _one("epochs", 'epochs: "epochs" INT _NL', PositiveInt, 10, (
        "`epochs N`", "passes over the training images", "10"), "int",
        {"epochs": ("epochs", None)}, Override("epochs", ("epochs",), "int>=1",
                                               "Override train: epochs.")),
    _one("batch", 'batch: "batch" INT _NL', PositiveInt, 64, (
        "`batch N`", "images per optimiser step", "64"), "int",
        {"batch": ("the batch size", None)}, Override("batch", ("batch",), "int>=1",
                                                      "Override train: batch.")),
    Setting(
        "train", ("weight_decay",),
        '// L2 penalty; `except bias, batchnorm` leaves biases and batch-norm weights undecayed.\n'
        'weight_decay: "weight_decay" number ("except" no_decay ("," no_decay)*)? _NL\n'
        '!no_decay: "bias" | "batchnorm"',
        (IRField("weight_decay", Annotated[float, Field(ge=0.0, lt=FLOAT32_MAX)], 0.0,
                 "L2 penalty (``weight_decay`` of torch.optim; decoupled for AdamW)."),
         IRField("no_decay", list[Literal["bias", "batchnorm"]], [],
                 "Parameters exempt from weight decay: biases, batch-norm weights and biases.")),
        (("`weight_decay W [except bias, batchnorm]`", "L2 penalty (the optimiser's "
          "`weight_decay`; decoupled in AdamW); `except` leaves biases and/or batch-norm "
          "weights undecayed", "0"),),
        transform={"weight_decay": _weight_decay, "no_decay": keep_word}, check=_check_no_decay,
        labels={"weight_decay": ("the weight decay", "an L2 penalty such as 5e-4")},
        overrides=(Override("weight_decay", ("weight_decay",), "float",
                            "Override train: weight_decay."),),
        summary=lambda c: c.no_decay and f"no weight decay on {' and '.join(c.no_decay)}"),
    _one("label_smoothing", 'label_smoothing: "label_smoothing" number _NL', Fraction, 0.0,
         ("`label_smoothing S`", "`nn.CrossEntropyLoss(label_smoothing=S)`, S in [0, 1) "
              "(Szegedy et al. 2016)", "0"), "num",
         {"label_smoothing": ("the label smoothing", "a fraction in [0, 1) such as 0.1")},
         Override("label_smoothing", ("label_smoothing",), "float",
                  "Override train: label_smoothing."),
         lambda c: c.label_smoothing and f"label smoothing {c.label_smoothing:g}",
         "``nn.CrossEntropyLoss(label_smoothing=...)`` (Szegedy et al. 2016, section 7)."),
    _one("clip_grad_norm", 'clip_grad_norm: "clip_grad_norm" number _NL', Rate | None, None,
         ("`clip_grad_norm G`", "`nn.utils.clip_grad_norm_(params, G)` before every step",
              "none"), "num",
         {"clip_grad_norm": ("the gradient norm limit", "a positive number such as 1.0 or 5.0")},
         Override("clip_grad_norm", ("clip_grad_norm",), "float",
                  "Override train: clip_grad_norm."),
         lambda c: c.clip_grad_norm and f"gradient norm clipped to {c.clip_grad_norm:g}",
         "Clip the global L2 norm of the gradients to this (``nn.utils.clip_grad_norm_``)."),
    _one("split", 'split: "split" number _NL', Annotated[float, Field(gt=0.0, lt=1.0)], 0.8,
         ("`split F`", "fraction of the images used for training, in (0, 1); the rest "
              "validate", "0.8"), "num",
         {"split": ("the split", "the fraction of images used for training, e.g. split 0.8")},
         Override("split", ("split",), "float", "Override train: split."),
         field_doc="Fraction of the images used for training; the rest validate (stratified "
                   "by class)."),
    _one("seed", 'seed: "seed" INT _NL', Annotated[int, Field(ge=0, le=2**63 - 1)], 0, (
        "`seed N`", "seeds the split, the initial weights, the batch order and the "
        "augmentation", "0"), "int", {"seed": ("the seed", None)},
        Override("seed", ("seed",), "int>=0", "Override train: seed.")),
    _one("ema", 'ema: "ema" number _NL', Annotated[float, Field(gt=0.0, lt=1.0)] | None, None,
         ("`ema D`", "an exponential moving average of the weights, updated after every step "
          "(`w_ema = D w_ema + (1 - D) w`, from the starting weights; "
          "`torch.optim.swa_utils.AveragedModel`, batch-norm statistics averaged too), used for "
          "validation, the checkpoints, `weights.safetensors` and `model.onnx` (timm's "
          "`ModelEmaV3`, Keras' `use_ema`); 0.999 is usual, 0.9999 for long runs", "none"),
         "num", {"ema": ("the EMA decay", "a decay in (0, 1) such as 0.999")},
         Override("ema", ("ema",), "float", "Override train: ema (the decay of the weights' "
                  "moving average)."),
         lambda c: c.ema and f"weights averaged (EMA {c.ema:g}) for validation, checkpoints "
         "and export",
         "Decay of the exponential moving average of the weights that validation, the "
         "checkpoints and the export use (cnnspec.training.loop.Trainer.weights); None: the "
         "weights themselves."),
)
