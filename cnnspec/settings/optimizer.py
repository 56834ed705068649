"""``optimizer NAME [lr X] [momentum M] [nesterov] [betas B1 B2] [eps E] [alpha A]``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..layers.base import IRModel
from .base import Fraction, IRField, Override, Rate, Setting, keep_word, simple_transform

OPTIMIZER_OPTIONS: dict[str, set[str]] = {
    "sgd": {"momentum", "nesterov"},
    "adam": {"betas", "eps"},
    "adamw": {"betas", "eps"},
    "rmsprop": {"momentum", "alpha", "eps"},
}
"""Settings each optimizer takes besides lr (PyTorch's torch.optim signatures)."""


class Optimizer(IRModel):
    """``optimizer sgd|adam|adamw|rmsprop lr X [momentum M] [nesterov] [betas B1 B2] [eps E]
    [alpha A]`` -> ``torch.optim.SGD`` / ``Adam`` / ``AdamW`` / ``RMSprop`` (PyTorch docs,
    torch.optim). Options left out take PyTorch's defaults; which option belongs to which
    optimizer is :data:`OPTIMIZER_OPTIONS`."""

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    lr: Rate = 1e-3
    momentum: Fraction = 0.0
    nesterov: bool = False
    betas: tuple[Fraction, Fraction] | None = None
    eps: Rate | None = None
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    """RMSprop's smoothing constant (PyTorch default 0.99)."""


GRAMMAR = """
optimizer: "optimizer" optimizer_name optimizer_opt* _NL
!optimizer_name: "sgd" | "adam" | "adamw" | "rmsprop"
?optimizer_opt: lr | momentum | nesterov | betas | eps | alpha
lr: "lr" number
momentum: "momentum" number
!nesterov: "nesterov"
betas: "betas" number number
"""


def _optimizer(self, items):
    name = items[0]
    raw = self._raw_node("optimizer", self._tspan(name), {"name": str(name)},
                         {"name": self._tspan(name)})
    for o in items[1:]:
        raw.set(o)
    return self._opt("optimizer", name, raw)


def _nesterov(self, items):
    return self._opt("nesterov", items[0], True)


def _betas(self, items):
    return self._opt("betas", items[0], (self._num(items[0]), self._num(items[1])))


def check(v, f, raw) -> None:
    """Every option belongs to the optimizer named; nesterov needs momentum."""
    if "optimizer" not in f:
        return
    raw = f["optimizer"]
    name, fields = raw.fields["name"], raw.fields
    ok = True
    for key in fields:
        if key not in ("name", "lr") and key not in OPTIMIZER_OPTIONS[name]:
            users = [n for n, opts in OPTIMIZER_OPTIONS.items() if key in opts]
            v.error_at(raw, raw.spans[key], f"optimizer {name}: {key} is not a setting of "
                       f"{name}", f"remove it, or use optimizer {' or '.join(users)}")
            ok = False
    if fields.get("nesterov") and not fields.get("momentum"):
        v.error_at(raw, raw.spans["nesterov"], "optimizer sgd: nesterov needs momentum",
                   "write momentum 0.9 nesterov")
        ok = False
    opt = v.model(Optimizer, raw, fields, "optimizer")
    f["optimizer"] = opt if ok else None


def describe(opt: Optimizer) -> str:
    """``sgd lr 0.1 momentum 0.9 nesterov``: the optimizer as the summary shows it."""
    text = f"{opt.name} lr {opt.lr:g}" + (f" momentum {opt.momentum:g}" if opt.momentum else "")
    text += " nesterov" if opt.nesterov else ""
    text += f" betas {opt.betas[0]:g} {opt.betas[1]:g}" if opt.betas else ""
    return text


SETTINGS = (
    Setting(
        "train", ("optimizer",), GRAMMAR, (IRField("optimizer", Optimizer, Optimizer()),),
        (("`optimizer NAME [lr X] [...]`", "the optimiser, see below", "`adam`, lr 0.001"),),
        transform={"optimizer": _optimizer, "optimizer_name": keep_word, "lr": simple_transform("lr", "num"),
                   "momentum": simple_transform("momentum", "num"), "nesterov": _nesterov,
                   "betas": _betas},
        check=check,
        labels={"lr": ("the learning rate", "typical values are 0.1 to 1e-4"),
                "momentum": ("the momentum", "momentum lies in [0, 1); 0.9 is usual"),
                "betas": ("betas", "two numbers in [0, 1), e.g. betas 0.9 0.999")},
        overrides=(
            Override("lr", ("optimizer", "lr"), "float", "Override the optimizer's learning rate."),
            Override("optimizer", ("optimizer", "name"), "choice",
                     "Override the optimizer (keeps the spec's lr unless --lr is given).",
                     tuple(OPTIMIZER_OPTIONS)),
            Override("momentum", ("optimizer", "momentum"), "float",
                     "Override the optimizer's momentum."))),
)
