"""Transfer learning: weights from an earlier network, frozen layers, a new head.

The ``transfer:`` section (docs/transfer.md) says where the weights come from (a cnnspec run
folder, a ``.safetensors`` file, or a PyTorch/torchvision ``.pth`` checkpoint read with
``torch.load(weights_only=True)``), which layers keep them frozen (``freeze up to C4``,
``freeze all except F1, F2``, ``train last 2 conv``, ``unfreeze C5 at epoch 10``), and
how many classes the new head has (``classes 3`` or ``classes from data``).

The freeze plan is computed from the spec alone (no torch), so ``cnnspec summary`` shows
it before anything is built; the trainer applies the same plan to the module's parameters
by their ``state_dict`` paths (``R1.C2.weight`` belongs to layer path ``R1.C2``).

Why it pays (Yosinski et al., "How transferable are features in deep neural networks?",
NeurIPS 2014): early convolutions learn general low-level features; the last ones are
specific to the task they were trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import ir
from .shapes import infer
from .weights import (  # noqa: F401 - the loading half, re-exported under its old names
    Match,
    TransferError,
    children_first,
    head_index,
    load_into,
    match_weights,
    mismatch_table,
    read_weights,
    resolve_source,
    source_problem,
)

if TYPE_CHECKING:
    from torch import nn

NEVER = math.inf
"""The epoch from which a permanently frozen layer trains."""


def with_classes(spec: ir.Spec, classes: int) -> ir.Spec:
    """``spec`` whose last dense layer has ``classes`` outputs (its name kept).

    Raises:
        TransferError: the network does not end in a dense layer.
    """
    i = head_index(spec.layers)
    if i is None:
        raise TransferError(f"{spec.name}: classes {classes} replaces the last dense layer, but "
                            "the network does not end in one")
    if spec.layers[i].out_features == classes:
        return spec
    layers = list(spec.layers)
    layers[i] = layers[i].model_copy(update={"out_features": classes})
    data = {k: getattr(spec, k) for k in ("name", "input", "train", "transfer", "file", "source",
                                          "sources")}
    return ir.Spec.model_validate({**data, "layers": layers})


def within(path: str, container: str) -> bool:
    """``path`` is the layer ``container`` or inside it (``R1.C2`` is within ``R1``).

    >>> within("R1.C2", "R1"), within("R10.C2", "R1")
    (True, False)
    """
    return path == container or path.startswith(container + ".")


@dataclass(frozen=True)
class FreezePlan:
    """From which epoch index (0-based: the epoch printed as 1 is index 0) each layer with
    parameters trains: 0 from the start, E - 1 for ``unfreeze ... at epoch E`` (frozen in
    epochs 1 .. E - 1), :data:`NEVER` frozen throughout."""

    starts: dict[str, float]
    """Layer path (as in state_dict keys) -> index of the first epoch it trains in."""
    head: str | None = None
    """Path of the replaced head (``classes``), or None."""
    order: list[str] = field(default_factory=list)
    """Every layer path, depth first (containers included)."""
    bias_train: bool = False
    """``bias train``: parameters named ``bias`` train even in frozen layers."""

    def status(self, path: str) -> str:
        """'trainable', 'frozen', 'frozen until epoch E', 'partly frozen' (a container
        whose layers differ), 'new head', or '' (no parameters)."""
        if path == self.head:
            return "new head"
        inside = [s for p, s in self.starts.items() if within(p, path)]
        if not inside:
            return ""
        if all(s == 0 for s in inside):
            return "trainable"
        if all(s == NEVER for s in inside):
            return "frozen"
        if len(set(inside)) == 1:  # "until epoch E": it trains from epoch E (from 1) on
            return f"frozen until epoch {int(inside[0]) + 1}"
        return "partly frozen"

    def trains(self, path: str, epoch: int) -> bool:
        return self.starts.get(path, 0) <= epoch

    def layer_of(self, key: str) -> str:
        """The layer a ``state_dict`` key belongs to: ``R1.SE1.fc1.weight`` -> ``R1.SE1``
        (a kind's module may hold sub-modules)."""
        path = key.rsplit(".", 1)[0]
        while path not in self.starts and "." in path:
            path = path.rsplit(".", 1)[0]
        return path

    def param_start(self, key: str) -> float:
        """The epoch index from which the parameter ``key`` (a ``state_dict`` key) trains:
        its layer's, or 0 for a bias under ``bias train``; :data:`NEVER` if frozen throughout."""
        if self.bias_train and key.rsplit(".", 1)[-1] == "bias":
            return 0.0
        return self.starts.get(self.layer_of(key), 0)

    def param_trains(self, key: str, epoch: int) -> bool:
        """Whether the parameter ``key`` (a ``state_dict`` key) trains in ``epoch`` (0-based)."""
        return self.param_start(key) <= epoch


def freeze_plan(spec: ir.Spec) -> FreezePlan:
    """The freeze plan of ``spec``'s ``transfer:`` section (everything trains without one).

    ``freeze up to L``: L and every layer before it (depth first) are frozen; a container
    (residual, concat) named as L is frozen whole. ``freeze all except A, B``: all but A, B
    (and what they contain). ``train last N conv``: everything before the N-th conv from the
    end is frozen. The replaced head always trains; ``unfreeze A at epoch E`` lets A train
    from epoch E (counted from 1, as training prints epochs and ``schedule step:`` counts them).
    """
    entries = [(path, info) for _, path, info in infer(spec).walk()]
    order = [p for p, _ in entries]
    leaves = [p for p, info in entries if info.params and not info.children]
    t = spec.transfer
    head = None
    if t is not None and t.classes not in (None, "keep"):  # keep: the source's head loads
        i = head_index(spec.layers)
        head = spec.layers[i].name if i is not None else None
    starts = {p: 0.0 for p in leaves}
    if t is None or t.freeze is None:
        return FreezePlan(starts, head, order, bool(t and t.bias_train))

    def span_end(name: str) -> int:  # the last index of a layer and its contents
        path = next(p for p, info in entries if info.name == name)
        return max(i for i, p in enumerate(order) if within(p, path))

    def named(p: str, names: list[str]) -> bool:  # p is, or is inside, a layer in names
        return any(within(p, q) for q, info in entries if info.name in names)

    f = t.freeze
    if f.mode == "up_to":
        end = span_end(f.layer)
        frozen = {p for p in leaves if order.index(p) <= end}
    elif f.mode == "all_except":
        frozen = {p for p in leaves if not named(p, f.keep)}
    else:  # last_conv
        convs = [p for p, info in entries if info.layer.kind == "conv"]
        first_trained = order.index(convs[-f.convs])
        frozen = {p for p in leaves if order.index(p) < first_trained}
    for p in frozen:
        if p != head:
            starts[p] = NEVER
    for u in t.unfreeze:
        for p in leaves:
            if named(p, u.layers) and starts[p] > u.epoch - 1:
                starts[p] = float(u.epoch - 1)
    return FreezePlan(starts, head, order, t.bias_train)


def check_names(spec: ir.Spec) -> list[tuple[object, str, str | None]]:
    """Mistakes in the transfer section that need the named layers: (span, message, hint);
    the span is the layer name's where one is to blame, else the statement's."""
    from .errors import did_you_mean

    t = spec.transfer
    if t is None:
        return []
    walked = list(infer(spec).walk())  # (depth, module path, info) of every layer
    names = [info.name for _, _, info in walked]
    out = []

    def check(node, name):
        if name not in names:
            where = node.name_spans.get(name, node.span)
            same = next((n for n in names if n.lower() == name.lower()), None)
            out.append((where, f"transfer: there is no layer '{name}'",
                        (f"layer names are case-sensitive: did you mean '{same}'?" if same
                         else did_you_mean(name, names))
                        or f"the layers are {', '.join(names[:12])}"
                        + (", ..." if len(names) > 12 else "")))

    if t.freeze is not None:
        for name in [t.freeze.layer] if t.freeze.mode == "up_to" else t.freeze.keep:
            check(t.freeze, name)
        if t.freeze.mode == "last_conv":
            n = sum(1 for _, _, info in walked if info.layer.kind == "conv")
            if t.freeze.convs > n:
                out.append((t.freeze.span, (f"transfer: train last {t.freeze.convs} conv, but the "
                             f"network has {n} conv layers"), f"at most train last {n} conv"))
    seen: dict[str, int] = {}
    for u in t.unfreeze:
        for name in u.layers:
            check(u, name)
            if name in seen:
                out.append((u.name_spans.get(name, u.span),
                            (f"transfer: unfreeze {name} is given twice (at epochs "
                             f"{seen[name]} and {u.epoch})"), "keep one line per layer"))
            seen.setdefault(name, u.epoch)
        if u.epoch == 1:
            out.append((u.span, (f"transfer: unfreeze {', '.join(u.layers)} at epoch 1 is the "
                                 "start of training (epochs count from 1): never frozen"),
                        "leave it out of the freeze rule, or unfreeze it at epoch 2 or later"))
    if t.classes not in (None, "keep") and head_index(spec.layers) is None:
        out.append((t.setting_spans.get("classes", t.span),
                    ("transfer: classes replaces the last dense layer, but the network "
                     "does not end in one"), "end the network with dense N"))
    if out:
        return out
    plan = freeze_plan(spec)
    infos = {p: info for _, p, info in walked}
    if t.freeze is not None and plan.starts and all(e > 0 for e in plan.starts.values()) and \
            not (t.bias_train and any(infos[p].biases for p in plan.starts)):
        i = head_index(spec.layers)
        keep = spec.layers[i if i is not None else -1].name
        out.append((t.freeze.span,
                    "transfer: nothing trains in the first epoch: every layer is frozen",
                    (f"leave some layers trainable (freeze all except {keep}), or add classes N "
                     "for a new head")))
    if t.bn_train and not any(e > 0 and infos[p].layer.kind == "batchnorm"
                              for p, e in plan.starts.items()):
        out.append((t.setting_spans.get("bn_train", t.span),
                    ("transfer: bn train: no frozen layer is a batch norm, so no running "
                    "statistics are kept from updating"), "remove it"))
    rule_only = freeze_plan(spec.model_copy(update={"transfer": t.model_copy(
        update={"unfreeze": []})}))
    for u in t.unfreeze:
        for name in u.layers:
            paths = [p for _, p, info in walked if info.name == name]
            inside = [e for p, e in rule_only.starts.items()
                      if any(within(p, q) for q in paths)]
            if not inside or all(e == 0 for e in inside):
                out.append((u.name_spans.get(name, u.span),
                            f"transfer: unfreeze {name}: {name} is not frozen",
                            "only layers that a freeze rule froze can be unfrozen"))
    return out


# ------------------------------------------------------------------ weights


def apply_plan(model: nn.Module, plan: FreezePlan, epoch: int) -> None:
    """``requires_grad`` of every parameter as the plan says for ``epoch``."""
    for key, p in model.named_parameters():
        p.requires_grad_(plan.param_trains(key, epoch))


def freeze_batchnorm(model: nn.Module, plan: FreezePlan, epoch: int) -> None:
    """Put the batch norms of frozen layers in eval mode (running statistics fixed);
    called after ``model.train()`` each epoch unless ``bn train``."""
    from torch import nn

    for path, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not plan.trains(path, epoch):
            module.eval()
