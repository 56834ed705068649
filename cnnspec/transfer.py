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
from pathlib import Path
from typing import TYPE_CHECKING

from . import ir
from .errors import CnnSpecError
from .shapes import infer

if TYPE_CHECKING:
    import torch
    from torch import nn

NEVER = math.inf
"""The epoch from which a permanently frozen layer trains."""


class TransferError(CnnSpecError):
    """The weights file cannot be read, or does not fit the spec (the mismatches listed)."""


def head_index(layers: list) -> int | None:
    """Index of the last top-level dense layer, if nothing after it has parameters (the
    classifier head that ``classes N`` replaces)."""
    for i in range(len(layers) - 1, -1, -1):
        kind = layers[i].kind
        if kind == "dense":
            return i
        if kind not in ("activation", "dropout", "flatten"):
            return None
    return None


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

    def param_trains(self, key: str, epoch: int) -> bool:
        """Whether the parameter ``key`` (a ``state_dict`` key) trains in ``epoch`` (0-based)."""
        if self.bias_train and key.rsplit(".", 1)[-1] == "bias":
            return True
        return self.trains(self.layer_of(key), epoch)


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
    if t is not None and t.classes is not None:
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
            out.append((where, f"transfer: there is no layer '{name}'",
                        did_you_mean(name, names) or f"the layers are {', '.join(names[:12])}"
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
    if t.classes is not None and head_index(spec.layers) is None:
        out.append((t.setting_spans.get("classes", t.span), ("transfer: classes replaces the last dense layer, but the network "
                             "does not end in one"), "end the network with dense N"))
    if out:
        return out
    plan = freeze_plan(spec)
    biases = {p: info.biases for _, p, info in walked}
    if t.freeze is not None and plan.starts and all(e > 0 for e in plan.starts.values()) and \
            not (t.bias_train and any(biases[p] for p in plan.starts)):
        i = head_index(spec.layers)
        keep = spec.layers[i if i is not None else -1].name
        out.append((t.freeze.span,
                    "transfer: nothing trains in the first epoch: every layer is frozen",
                    (f"leave some layers trainable (freeze all except {keep}), or add classes N "
                     "for a new head")))
    kinds = {p: info.layer.kind for _, p, info in walked}
    if t.bn_train and not any(e > 0 and kinds[p] == "batchnorm" for p, e in plan.starts.items()):
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
def resolve_source(source: str, spec_file: str) -> Path:
    """A ``from`` path relative to the spec file (as ``train: data`` is)."""
    p = Path(source)
    if not p.is_absolute() and spec_file not in ("", "<string>"):
        p = Path(spec_file).parent / p
    return p


def source_normalization(path: Path) -> tuple[list[float], list[float]] | None:
    """(mean, std) recorded in the run.json of a cnnspec run folder ``path`` (or of the folder
    holding the weights file ``path``), or None for files from elsewhere. A transferred
    network keeps the input standardisation its layers learnt with."""
    from .training.run_folder import RunFolder

    try:
        mean, std, _ = RunFolder(path if path.is_dir() else path.parent).normalization()
        return mean, std
    except (OSError, ValueError, KeyError, TypeError):
        return None


WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def source_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a transfer source, seen without reading it (for ``check``):
    missing, a folder without run weights, or a file of no weights format; None if it may be
    one (:func:`read_weights` reads it)."""
    if not path.exists():
        return "does not exist"
    if path.is_dir():
        if not any((path / f"{w}.safetensors").is_file() for w in ("weights", "last")):
            return "is a folder without weights.safetensors or last.safetensors (not a run folder)"
        return None
    if path.suffix not in WEIGHT_SUFFIXES:
        return (f"is not a weights file (a run folder, or {', '.join(WEIGHT_SUFFIXES)})")
    return None


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors by name, what was read) from a run folder (its ``weights.safetensors``, else
    ``last.safetensors``), a ``.safetensors`` file, or a ``.pth``/``.pt`` file read with
    ``torch.load(weights_only=True)`` (a state_dict, or a dict holding one under
    ``state_dict`` or ``model``). No pickle is ever executed.

    Raises:
        TransferError: missing, unreadable, or not a set of tensors.
    """
    import torch
    from safetensors.torch import load_file

    if path.is_dir():
        from .errors import WeightsError
        from .training.run_folder import RunFolder

        try:
            path = RunFolder(path).weights_file()
        except WeightsError:
            raise TransferError(f"{path}: a folder without weights.safetensors or "
                                "last.safetensors; give a run folder or a weights file") from None
    if not path.is_file():
        raise TransferError(f"{path}: no such weights file or run folder")
    try:
        if path.suffix == ".safetensors":
            tensors = load_file(path)
        elif path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):  # a training checkpoint holding the state_dict
                obj = next((obj[k] for k in ("state_dict", "model_state_dict", "model")
                            if isinstance(obj.get(k), dict)), obj)
            if not isinstance(obj, dict):
                raise TransferError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        else:
            raise TransferError(f"{path}: unknown weights format '{path.suffix}'; use a run "
                                "folder, .safetensors, or a PyTorch .pth/.pt state_dict")
    except TransferError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file, whatever the reader says
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise TransferError(f"{path}: cannot read weights: {type(exc).__name__}: {first}"[:400]
                            ) from None
    if not tensors:
        raise TransferError(f"{path}: holds no tensors")
    return tensors, str(path)


@dataclass
class Match:
    """How a weights file maps onto a module's state_dict."""

    method: str
    """'by name' (cnnspec files) or 'by order' (torchvision files: same order, same shapes)."""
    loaded: dict[str, torch.Tensor]
    """Our state_dict key -> tensor to load."""
    replaced: list[tuple[str, tuple, tuple | None]]
    """The head's tensors kept freshly initialised: (key, our shape, file's shape)."""
    mismatches: list[tuple[str, str, tuple | None, tuple | None]]
    """(our key, file key, expected shape, found shape); None: no such tensor."""
    unused: list[str]
    """File tensors nothing was loaded from."""


def children_first(keys: list[str]) -> list[str]:
    """``state_dict`` keys with each module's own tensors after those of its sub-modules.

    PyTorch lists a module's own parameters before its children's; torchvision's ConvNeXt
    block registers ``layer_scale`` on itself (``features.1.0.layer_scale`` before
    ``features.1.0.block.0.weight``), where a spec's ``layerscale`` is a layer after the
    block's others. Modules that hold tensors or children, not both (all others), keep
    their order.

    >>> children_first(["b.scale", "b.conv.weight", "b.conv.bias", "head.weight"])
    ['b.conv.weight', 'b.conv.bias', 'b.scale', 'head.weight']
    """
    out = list(keys)
    for key in keys:
        module = key.rsplit(".", 1)[0] if "." in key else ""
        prefix = f"{module}." if module else ""
        deeper = [i for i, k in enumerate(out)
                  if k.startswith(prefix) and (k.rsplit(".", 1)[0] if "." in k else "") != module]
        if deeper and out.index(key) < deeper[-1]:
            out.remove(key)
            out.insert(deeper[-1], key)  # after the last tensor of its sub-modules
    return out


def match_weights(state: dict[str, torch.Tensor], source: dict[str, torch.Tensor],
                  head: str | None) -> Match:
    """Pair the file's tensors with the module's ``state`` (its state_dict): by name when
    any non-head name is in the file, else by position (torchvision's ``features.0.weight``
    ... in the same order as the spec's layers, the way tests/test_reference.py loads them)
    when none of them is; where that order does not fit, a module's own tensors are taken
    after its sub-modules' (:func:`children_first`: torchvision's ConvNeXt).
    The head's tensors (``head`` path) are never loaded."""
    def is_head(k):
        return head is not None and k.rsplit(".", 1)[0] == head

    ours = [k for k in state if not is_head(k)]
    loaded, replaced, mismatches = {}, [], []
    if any(k in source for k in ours):  # a cnnspec file: names are layer names
        method, pairs = "by name", [(k, k if k in source else None) for k in state]
    else:
        method = "by order"
        keys = list(state)

        def in_order(theirs):
            return [(k, theirs[i] if i < len(theirs) else None) for i, k in enumerate(keys)]

        def fits(pairs):
            return all(t is not None and (is_head(k) or source[t].shape == state[k].shape)
                       for k, t in pairs)

        pairs = in_order(list(source))
        if not fits(pairs) and fits(reordered := in_order(children_first(list(source)))):
            pairs = reordered
    used = set()
    for ours_k, theirs_k in pairs:
        found = source.get(theirs_k) if theirs_k is not None else None
        shape = tuple(state[ours_k].shape)
        fshape = tuple(found.shape) if found is not None else None
        if is_head(ours_k):
            replaced.append((ours_k, shape, fshape))
            if theirs_k is not None:
                used.add(theirs_k)
            continue
        if found is None or fshape != shape:
            mismatches.append((ours_k, theirs_k or "-", shape, fshape))
            continue
        loaded[ours_k] = found.to(state[ours_k].dtype)
        used.add(theirs_k)
    unused = [k for k in source if k not in used]
    return Match(method, loaded, replaced, mismatches, unused)


def mismatch_table(m: Match, source: str) -> str:
    """The mismatches as an aligned text table (the message of :class:`TransferError`)."""
    def fmt(s):
        return "missing" if s is None else "x".join(map(str, s)) or "scalar"

    rows = [("tensor", "in file", "expected", "found")]
    rows += [(a, b, fmt(e), fmt(f)) for a, b, e, f in m.mismatches]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    return (f"{source}: {len(m.mismatches)} tensor(s) do not fit the spec (matched {m.method}); "
            "nothing was trained or written:\n" + "\n".join(lines))


def load_into(model: nn.Module, spec: ir.Spec, path: Path, head: str | None) -> tuple[Match, str]:
    """Load the weights at ``path`` into ``model``; the head stays freshly initialised.

    Raises:
        TransferError: unreadable file, or tensors that do not fit (the table of mismatches).
    """
    source, where = read_weights(path)
    m = match_weights(model.state_dict(), source, head)
    if m.method == "by order" and where.endswith(".safetensors"):
        raise TransferError(f"{where}: no tensor is named as in the spec (C1.weight, ...), and a "
                            ".safetensors file does not keep the order of its tensors, so they "
                            "cannot be matched by order; use a .pth state_dict saved with "
                            "torch.save, or name the tensors as the spec does")
    if m.mismatches:
        text = mismatch_table(m, where)
        last = head_index(spec.layers)
        name = spec.layers[last].name if last is not None else None
        if head is None and name and any(k.rsplit(".", 1)[0] == name for k, *_ in m.mismatches):
            text += (f"\nhint: {name} is the last dense layer; to give it fresh weights for your "
                     "classes, add 'classes from data' (or classes N) to the transfer: section")
        raise TransferError(text)
    model.load_state_dict(m.loaded, strict=False)
    return m, where


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
