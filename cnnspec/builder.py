"""ShapedSpec -> ``torch.nn.Module``: each layer's module as its kind declares it, trusting the
IR's shapes.

The module is an ``nn.Sequential`` whose children are named like the spec's layers
(``C1``, ``M1``, ``F1`` or the ``as`` label), so ``state_dict`` keys read ``C1.weight``.
An activation written after a layer (``conv 3x3x64 relu``) becomes a parameterless
child named ``C1_relu`` right after it, as torchvision's VGG places its ReLUs.
Input (N, C, H, W) float32; output (N, F) for a network ending in a dense layer.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from . import ir
from .layers import BY_KIND
from .layers.activations import ACTIVATIONS
from .layers.calls import ModuleCall
from .shapes import LayerInfo, ShapedSpec, infer


def leaf(info: LayerInfo) -> ModuleCall:
    """The module of a layer that is not a concat or a residual, from its kind's declaration
    (``cnnspec/layers/<kind>.py``)."""
    return BY_KIND[info.layer.kind].module(info)


def sequence(infos) -> OrderedDict[str, nn.Module]:
    """Named children for a list of layers: each layer, then its trailing activation."""
    children: OrderedDict[str, nn.Module] = OrderedDict()
    for info in infos:
        kind = info.layer.kind
        if kind == "concat":
            children[info.name] = Concat([nn.Sequential(sequence(b)) if b else nn.Identity()
                                          for b in info.children])
        elif kind == "residual":
            shortcut = (nn.Sequential(sequence(info.children[1])) if len(info.children) > 1
                        else None)
            children[info.name] = Residual(sequence(info.children[0]), shortcut)
        else:
            children[info.name] = leaf(info).make()
        act = getattr(info.layer, "activation", None)
        if act:
            children[f"{info.name}_{act}"] = ACTIVATIONS[act].make()
    return children


class Concat(nn.Module):
    """Branches b1, b2, ... on the same input (N, C, H, W); outputs concatenated on channels."""

    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(f"b{i + 1}", branch)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.children()], dim=1)


class Residual(nn.Module):
    """``body(x) + shortcut(x)``; the body's layers are children under their spec names."""

    def __init__(self, body: OrderedDict[str, nn.Module], shortcut: nn.Module | None):
        super().__init__()
        for name, module in body.items():
            self.add_module(name, module)
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x):
        out = x
        for name, module in self.named_children():
            if name != "shortcut":
                out = module(out)
        return out + self.shortcut(x)


class Network(nn.Sequential):
    """The compiled network: an ``nn.Sequential`` with the spec's layer names.

    ``network.spec`` is the validated spec it came from.
    """

    def __init__(self, shaped: ShapedSpec):
        super().__init__(sequence(shaped.layers))
        self.spec = shaped.spec

    def logits(self) -> nn.Module:
        """The network without a final softmax, for a cross-entropy loss on logits."""
        children = list(self.named_children())
        if children and isinstance(children[-1][1], nn.Softmax):
            return nn.Sequential(OrderedDict(children[:-1]))
        return self


def build(spec: ir.Spec | ShapedSpec, seed: int | None = None) -> Network:
    """The ``torch.nn.Module`` of a spec (or of its shapes, when they are at hand): input
    (N, C, H, W) float32, output (N, F) for a network ending in a dense layer. ``seed``
    makes the initial weights reproducible.

    Weights use PyTorch's default initialisation of each layer
    (Kaiming-uniform for ``Conv2d`` and ``Linear``, see their docs).
    """
    shaped = spec if isinstance(spec, ShapedSpec) else infer(spec)
    if seed is not None:
        torch.manual_seed(seed)
    return Network(shaped)
