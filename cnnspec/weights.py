"""Weights for transfer learning: where a ``transfer: from`` source is, whether it can be
one, reading it without unpickling anything (``safetensors``, or ``torch.load(weights_only=
True)`` for ``.pth``), and pairing its tensors with a module's ``state_dict``: by name (a
cnnspec run) or by order (torchvision), a module's own tensors after its sub-modules' where
plain order does not fit (ConvNeXt's ``layer_scale``).

A run folder's files (its weights, the normalisation in its run.json) are read by their
owner, :class:`cnnspec.training.run_folder.RunFolder`, which the layers above this one call
(the training set-up, ``check``): they pass the weights file found, or that none was, down
to this module, which reads no run folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import ir
from .errors import CnnSpecError
from .files import load_tensors

if TYPE_CHECKING:
    import torch
    from torch import nn


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


def resolve_source(source: str, spec_file: str) -> Path:
    """A ``from`` path relative to the spec file (as ``train: data`` is)."""
    p = Path(source)
    if not p.is_absolute() and spec_file not in ("", "<string>"):
        p = Path(spec_file).parent / p
    return p


WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def source_problem(path: Path, run_weights: Path | None) -> str | None:
    """Why ``path`` cannot be a transfer source, seen without reading it (for ``check``):
    missing, a folder without run weights, or a file of no weights format; None if it may be
    one (:func:`read_weights` reads it). ``run_weights``: for a folder ``path``, the weights
    file its run folder offers (``RunFolder.source_weights``), None where it has none."""
    try:
        path.resolve(strict=True)
    except FileNotFoundError:
        return "does not exist"
    except (RuntimeError, OSError) as exc:  # a loop of symbolic links (RuntimeError in 3.11)
        return f"cannot be followed: {exc}" if "loop" not in str(exc).lower() else (
            "is a loop of symbolic links")
    if path.is_dir():
        if run_weights is None:
            return "is a folder without weights.safetensors or last.safetensors (not a run folder)"
        return None
    if path.suffix not in WEIGHT_SUFFIXES:
        return (f"is not a weights file (a run folder, or {', '.join(WEIGHT_SUFFIXES)})")
    return None


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors by name, what was read) from a ``.safetensors`` file, or a ``.pth``/``.pt``
    file read with ``torch.load(weights_only=True)`` (a state_dict, or a dict holding one
    under ``state_dict`` or ``model``). No pickle is ever executed. A run folder's weights
    file (its ``weights.safetensors``, else ``last.safetensors``) is found by the caller
    (``RunFolder.source_weights``).

    Raises:
        TransferError: missing, a folder, unreadable, or not a set of tensors.
    """
    import torch
    from safetensors.torch import load_file

    if path.is_dir():
        raise TransferError(f"{path}: a folder, not a weights file (the weights of a run "
                            "folder are found by RunFolder.source_weights)")
    if not path.is_file():
        raise TransferError(f"{path}: no such weights file or run folder")
    try:
        if path.suffix == ".safetensors":
            tensors = load_file(path)
        elif path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
            obj = load_tensors(path)
            if isinstance(obj, dict):  # a training checkpoint holding the state_dict
                obj = next((obj[k] for k in ("state_dict", "model_state_dict", "model")
                            if isinstance(obj.get(k), dict)), obj)
            if not isinstance(obj, dict):
                raise TransferError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        else:
            raise TransferError(f"{path}: unknown weights format '{path.suffix}'; use a run "
                                "folder, .safetensors, or a PyTorch .pth/.pt state_dict")
    except CnnSpecError as exc:
        if isinstance(exc, TransferError):
            raise
        raise TransferError(str(exc.render()).removeprefix("error: ")) from None
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
    adapted: str | None = None
    """A tensor changed to fit (an RGB first convolution summed for a 1-channel input)."""


def adapt_input_channels(state: dict[str, torch.Tensor], source: dict[str, torch.Tensor]
                         ) -> str | None:
    """Fit an RGB file's first convolution to a 1-channel input, in ``source``: its filters
    (O, 3, kH, kW) summed over the 3 input channels to (O, 1, kH, kW), so that the conv on
    a gray image x equals the RGB conv on (x, x, x) (timm's ``adapt_input_conv``). The first
    4-D tensor of each side is the first convolution. Returns what was done, or None.

    >>> import torch
    >>> src = {"conv1.weight": torch.ones(2, 3, 1, 1)}
    >>> adapt_input_channels({"C1.weight": torch.zeros(2, 1, 1, 1)}, src), src["conv1.weight"].shape
    ('conv1.weight (2, 3, 1, 1): the RGB filters summed for a 1-channel input', torch.Size([2, 1, 1, 1]))
    """
    mine = next((v for v in state.values() if v.dim() == 4), None)
    key = next((k for k, v in source.items() if v.dim() == 4), None)
    if mine is None or key is None:
        return None
    theirs = source[key]
    if mine.shape[1] != 1 or theirs.shape[1] != 3 or (
            (mine.shape[0], *mine.shape[2:]) != (theirs.shape[0], *theirs.shape[2:])):
        return None
    source[key] = theirs.sum(dim=1, keepdim=True)
    return f"{key} {tuple(theirs.shape)}: the RGB filters summed for a 1-channel input"


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
    """Load the weights file ``path`` into ``model``; the head stays freshly initialised.

    Raises:
        TransferError: unreadable file, or tensors that do not fit (the table of mismatches).
    """
    source, where = read_weights(path)
    state = model.state_dict()
    adapted = adapt_input_channels(state, source) if spec.input.channels == 1 else None
    m = match_weights(state, source, head)
    m.adapted = adapted
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
