"""Layer names: the one owner of them. Every layer of a validated spec gets its name here,
automatic (``C1``, ``M1``, ``F1``: the kind's prefix and a count, in order, depth first) or
given with ``as NAME``; names are unique, and none may shadow an attribute of
``torch.nn.Module`` or cnnspec's own (module paths are :func:`cnnspec.shapes.walk`'s)."""

from __future__ import annotations

import keyword
from collections import Counter

from ..errors import Diagnostic, SourceText
from ..layers import KINDS

PREFIX = {**{word: k.prefix for k in KINDS for word in k.words}, "concat": "CAT", "residual": "R"}
"""Automatic names by layer kind: C1, C2, ... (each kind's prefix, cnnspec/layers/<kind>.py)."""

# Names a label cannot take: attributes of torch.nn.Module / nn.Sequential and of cnnspec's
# own modules (a child module under such a name would shadow or be refused by PyTorch).
RESERVED = frozenset(["T_destination", "add_module", "append", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extend", "extra_repr", "float", "forward", "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "insert", "ipu", "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules", "named_parameters", "parameters", "pop", "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "type", "xpu", "zero_grad", "training", "shortcut", "body_names", "spec", "logits"])

# The names in RESERVED that are cnnspec's own, not PyTorch's (for the message).
_OWN_NAMES = frozenset(["shortcut", "body_names", "spec", "logits"])


def _walk(layers):
    for layer in layers:
        yield layer
        for group in _children(layer):
            yield from _walk(group)


def _children(layer) -> list[list]:
    if layer.kind == "concat":
        return layer.branches
    if layer.kind == "residual":
        return [layer.body] + ([layer.shortcut] if layer.shortcut is not None else [])
    return []


def assign_names(layers: list, src: SourceText) -> tuple[list, list[Diagnostic]]:
    """Give each layer a unique name, depth first in order of appearance; report labels that
    clash with each other or with an automatic name."""
    counts: Counter[str] = Counter()
    autos: dict[int, str] = {}
    order = list(_walk(layers))
    for layer in order:
        counts[PREFIX[layer.kind]] += 1
        autos[id(layer)] = f"{PREFIX[layer.kind]}{counts[PREFIX[layer.kind]]}"
    auto_names = list(autos.values())
    # the module names of trailing activations (conv 3x3x8 relu -> C1_relu)
    act_names = {f"{layer.name or autos[id(layer)]}_{layer.activation}": layer for layer in order
                 if getattr(layer, "activation", None)}
    diagnostics, taken, clashed = [], {}, set()
    for layer in order:
        auto = autos[id(layer)]
        name = layer.name or auto
        if name in RESERVED or name in act_names or keyword.iskeyword(name):
            why = ("is a Python keyword (PyTorch's ONNX exporter cannot name a module so)"
                   if keyword.iskeyword(name) else
                   "is used by cnnspec's own modules" if name in _OWN_NAMES else
                   "is reserved by PyTorch's nn.Module" if name in RESERVED else
                   f"is the name of the activation after line {act_names[name].span.line}'s layer")
            diagnostics.append(src.diag(layer.span, f"the label '{name}' {why}",
                                        "choose another label", layer.trace))
        elif name != auto and name in auto_names:
            other = order[auto_names.index(name)]
            diagnostics.append(src.diag(layer.span, f"the label '{name}' clashes with the "
                                        f"automatic name of another layer (line {other.span.line})",
                                        "choose another label", layer.trace))
            clashed.add(name)  # the layer that owns the name is not a second mistake
        elif name in taken and name not in clashed:
            first = taken[name]
            hint = "names must be unique"
            if first.span == layer.span and first.trace:  # one labelled line, two calls
                hint = ("a labelled layer inside a block gets the same name at every call; "
                        "remove the label, or call the block once")
            diagnostics.append(src.diag(layer.span, f"the name '{name}' is used twice (first at "
                                        f"line {first.span.line})", hint, layer.trace))
        taken.setdefault(name, layer)

    def rename(group):
        out = []
        for layer in group:
            auto = autos[id(layer)]
            update = {"name": layer.name or auto, "labelled": (layer.name or auto) != auto}
            if layer.kind == "concat":
                update["branches"] = [rename(b) for b in layer.branches]
            elif layer.kind == "residual":
                update["body"] = rename(layer.body)
                update["shortcut"] = None if layer.shortcut is None else rename(layer.shortcut)
            out.append(layer.model_copy(update=update))
        return out

    return rename(layers), diagnostics
