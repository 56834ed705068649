"""The ``transfer:`` section: where the weights come from, what stays frozen and until when,
the new head, and the backbone's and head's learning rates (see :mod:`cnnspec.transfer`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from ..errors import Span
from ..layers.base import IRModel
from .base import IRField, Rate, Setting, with_meta


class Freeze(IRModel):
    """``freeze up to L`` | ``freeze all [except A, B]`` | ``train last N conv``."""

    mode: Literal["up_to", "all_except", "last_conv"]
    layer: str | None = None
    keep: list[str] = []
    convs: PositiveInt | None = None
    name_spans: dict[str, Span] = Field(default_factory=dict, exclude=True, repr=False)
    """Where each layer name is written, for error carets."""


class NamedSource(IRModel):
    """``from torchvision resnet50 [TAG]``: weights named in a library's registry (resolved
    by :mod:`cnnspec.hub`; no tag: the library's ``DEFAULT``)."""

    library: str
    model: str
    tag: str | None = None


class Unfreeze(IRModel):
    """``unfreeze A, B at epoch E``: the layers train from epoch E on (epochs count from 1,
    as training prints them)."""

    layers: list[str]
    epoch: PositiveInt
    name_spans: dict[str, Span] = Field(default_factory=dict, exclude=True, repr=False)


def _names(self, tokens) -> dict:
    """Where each layer name of a transfer statement is written (for carets)."""
    return {str(t): self._tspan(t) for t in tokens}


def _freeze(self, meta, fields, spans=None):
    return self._mopt("freeze", meta, self._raw_node("freeze", self._mspan(meta), fields, spans))


def _from(self, items):
    if isinstance(items[0], list):  # from torchvision resnet50 [TAG]: the named source's
        return items[0]
    return self._opt("source", items[0], str(items[0])[1:-1])


def _named(self, items):
    library, model, *tag = items
    fields = {"library": str(library), "model": str(model), **({"tag": str(tag[0])} if tag else {})}
    return [self._opt("source", library, " ".join(str(t) for t in items)),
            self._opt("named", model, self._raw_node("named", self._tspan(model), fields))]


@with_meta
def _unfreeze(self, meta, items):
    *names, epoch = items
    raw = self._raw_node("unfreeze", self._mspan(meta), {
        "layers": [str(t) for t in names], "epoch": self._int(epoch),
        "name_spans": _names(self, names)}, {"epoch": self._tspan(epoch)})
    return self._mopt("unfreeze", meta, raw)


@with_meta
def _classes(self, meta, items):
    if items and items[0].type == "KEEP":
        return self._opt("classes", items[0], "keep")
    if items:
        return self._opt("classes", items[0], self._int(items[0]))
    return self._mopt("classes", meta, "data")


def _stop(v, span, message, hint) -> bool:
    v.error(span, message, hint)
    return False


def _check_source(v, f, raw):
    if "source" not in f:
        return _stop(v, raw.span, "transfer: where do the weights come from?",
                     'add a line such as: from "runs/LeNet5"  (a run folder, .safetensors '
                     "or .pth file)")
    f["setting_spans"] = dict(raw.spans)
    if "named" in f:
        named = f["named"]
        if named.fields["library"] not in ("torchvision",):
            return _stop(v, raw.spans["source"], f"transfer: from {named.fields['library']}: "
                         "named weights come from torchvision (timm is not supported yet)",
                         "write from torchvision MODEL [TAG], or give a file: from "
                         '"path/to/weights.pth"')
        f["named"] = v.model(NamedSource, named, named.fields, "from")
    return True


def _check_freeze(v, f, raw):
    if "freeze" in f:
        f["freeze"] = v.model(Freeze, f["freeze"], f["freeze"].fields, "freeze")
    return True


def _check_unfreeze(v, f, raw):
    f["unfreeze"] = [v.model(Unfreeze, u, u.fields, "unfreeze") for u in f.get("unfreeze", [])]
    return True


def _check_classes(v, f, raw):
    if f.get("classes") == "keep" and "named" not in f:
        return _stop(v, raw.spans["classes"], "transfer: classes keep keeps the categories of "
                     "named weights, and a file or a run folder names none",
                     "write from torchvision MODEL, or classes from data")
    if isinstance(f.get("classes"), int) and f["classes"] < 2:
        return _stop(v, raw.spans["classes"], f"transfer: classes {f['classes']}: a classifier "
                     "needs at least 2 classes", "write the number of classes of your data, "
                     "or classes from data")
    return True


def _needs_freeze(key, what):
    def check(v, f, raw):
        if key in f and "freeze" not in f:
            return _stop(v, raw.spans[key], f"transfer: {what}, but no layer is frozen",
                         "add a freeze rule (freeze up to L, freeze all except L, train last "
                         "N conv), or remove this line")
        return True
    return check


def _check_lr_split(v, f, raw):
    if "lr_backbone" in f and f.get("classes") in (None, "keep"):
        return _stop(v, raw.spans["lr_backbone"], "transfer: lr backbone ... head ... needs a "
                     "new head", "add classes N or classes from data")
    return True


def _flag(key, rule, grammar, field_doc, row, word, check):
    return Setting("transfer", (rule,), grammar, (IRField(key, bool, False, field_doc),), (row,),
                   "true", {rule: with_meta(lambda self, meta, items: self._mopt(key, meta, True))},
                   check=check, written={key: word})


SETTINGS = (
    Setting(
        "transfer", ("transfer_from",), 'transfer_from: "from" (STRING | named_source) _NL\n'
        "named_source: NAME NAME NAME?",
        (IRField("source", str, ..., doc="``from``: a run folder, .safetensors, or .pth/.pt "
                 "state_dict (relative to the spec); for named weights, the name as written "
                 "(``torchvision resnet50``)."),
         IRField("named", NamedSource | None, None, "``from torchvision MODEL [TAG]``: "
                 "named weights (:mod:`cnnspec.hub`); None for a file or a run folder.")),
        (('`from "PATH"` (required)', "a cnnspec run folder (its `weights.safetensors`, else "
          "`last.safetensors`), a `.safetensors` file, or a PyTorch `.pth`/`.pt` state_dict "
          "read with `torch.load(weights_only=True)` (no pickle is executed). Relative to the "
          "spec file. Tensors are matched by name (cnnspec files), or, when no name matches, "
          "by order and shape (torchvision files: `features.0.weight` ... in the order of the "
          "spec's layers)"),),
        transform={"transfer_from": _from, "named_source": _named},
        check=_check_source, written={"source": "from"}),
    Setting(
        "transfer", ("freeze_up_to", "freeze_all", "train_last"),
        'freeze_up_to: "freeze" "up" "to" bname _NL\n'
        'freeze_all: "freeze" "all" ("except" bname ("," bname)*)? _NL\n'
        'train_last: "train" "last" INT "conv" _NL',
        (IRField("freeze", Freeze | None, None),),
        (("`freeze up to L`", "L and every layer before it (depth first) keep their weights; "
          "a residual or concat named as L is frozen whole"),
         ("`freeze all [except A, B]`", "every layer but A, B (and what they contain)"),
         ("`train last N conv`", "every layer before the N-th conv from the end is frozen")),
        transform={
            "freeze_up_to": with_meta(lambda self, meta, items: _freeze(self, meta, {
                "mode": "up_to", "layer": str(items[0]), "name_spans": _names(self, items)})),
            "freeze_all": with_meta(lambda self, meta, items: _freeze(self, meta, {
                "mode": "all_except", "keep": [str(t) for t in items],
                "name_spans": _names(self, items)})),
            "train_last": with_meta(lambda self, meta, items: _freeze(
                self, meta, {"mode": "last_conv", "convs": self._int(items[0])},
                {"convs": self._tspan(items[0])}))},
        check=_check_freeze,
        twice="transfer: freeze, train last or freeze all is given twice|one freeze rule per "
              "transfer section; use unfreeze for later epochs"),
    Setting(
        "transfer", ("unfreeze",), 'unfreeze: "unfreeze" bname ("," bname)* "at" "epoch" INT _NL',
        (IRField("unfreeze", list[Unfreeze], []),),
        (("`unfreeze A, B at epoch E`", "A and B train from epoch E on (one line per epoch)"),),
        transform={"unfreeze": _unfreeze}, check=_check_unfreeze, repeatable=True),
    Setting(
        "transfer", ("classes",), 'classes: "classes" (INT | "from" "data" | KEEP) _NL\n'
        'KEEP: "keep"',
        (IRField("classes", Annotated[int, Field(ge=2)] | Literal["data", "keep"] | None, None,
                 "The new head's outputs: a number, or the number of classes of the data; "
                 "``keep``: the source's head and categories (named weights)."),),
        (("`classes N` / `classes from data`", "the last dense layer gets N outputs (or one per "
          "class of the data) and fresh weights; the summary and the built module show the "
          "new head"),
         ("`classes keep`", "named weights only: keep their head and categories "
          "(`compile --onnx` then writes an ImageNet classifier whose `predict` prints the "
          "category names)")),
        transform={"classes": _classes}, check=_check_classes),
    _flag("bn_train", "bn_train", 'bn_train: "bn" "train" _NL',
          "Frozen layers' batch norms keep updating their running statistics.",
          ("`bn train`", "frozen layers' batch norms keep updating their running statistics "
           "(by default they are put in eval mode: their statistics stay as transferred)"),
          "bn train", _needs_freeze("bn_train", "bn train keeps the batch-norm statistics of "
                                    "frozen layers updating")),
    _flag("bias_train", "bias_train", 'bias_train: "bias" "train" _NL',
          "Frozen layers' biases keep training, their weights stay (``bias train``; bias-only "
          "fine-tuning, BitFit: Ben Zaken, Ravfogel & Goldberg, ACL 2022).",
          ("`bias train`", "frozen layers' biases (every parameter named `bias`: convolutions, "
           "dense layers, batch and layer norms) keep training while their weights stay, as "
           "bias-only fine-tuning (BitFit, Ben Zaken et al. 2022); the summary counts them as "
           "trainable"),
          "bias train", _needs_freeze("bias_train", "bias train keeps the biases of frozen "
                                      "layers training")),
    Setting(
        "transfer", ("lr_split",), 'lr_split: "lr" "backbone" number "head" number _NL',
        (IRField("lr_backbone", Rate | None, None), IRField("lr_head", Rate | None, None)),
        (("`lr backbone X head Y`", "the new head learns at Y, the other trainable layers at X "
          "(needs `classes`); the schedule scales both"),),
        transform={"lr_split": lambda self, items: [
            self._opt("lr_backbone", items[0], self._num(items[0])),
            self._opt("lr_head", items[1], self._num(items[1]))]},
        check=_check_lr_split, written={"lr_backbone": "lr backbone"}),
)

EXTRA = (IRField("setting_spans", dict[str, Span], {}, "Where each setting is written "
                 "(``source``: the ``from`` line), for error carets.", exclude=True),)
"""Fields of :class:`cnnspec.ir.Transfer` that no statement writes."""
