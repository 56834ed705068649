"""ShapedSpec -> ``torch.nn.Module``: one builder per layer kind, trusting the IR's shapes.

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

from .shapes import LayerInfo, ShapedSpec

# Not in place: inside a residual body or a branch, an in-place activation would overwrite
# the input that the shortcut or the other branches still need.
ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softmax": lambda: nn.Softmax(dim=1),
    "leakyrelu": nn.LeakyReLU,  # negative slope 0.01, PyTorch's default
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def _conv(info: LayerInfo) -> nn.Module:
    layer = info.layer
    return nn.Conv2d(info.in_shape[0], layer.out_channels, layer.kernel_size, stride=layer.stride,
                     padding=info.padding, bias=layer.bias, groups=layer.groups,
                     dilation=layer.dilation)


def _pool(info: LayerInfo) -> nn.Module:
    layer = info.layer
    cls = nn.MaxPool2d if layer.kind == "maxpool" else nn.AvgPool2d
    return cls(layer.kernel_size, stride=layer.stride or layer.kernel_size, padding=layer.padding,
               ceil_mode=layer.ceil_mode)


def _batchnorm(info: LayerInfo) -> nn.Module:
    cls = nn.BatchNorm2d if len(info.in_shape) == 3 else nn.BatchNorm1d
    return cls(info.in_shape[0], eps=info.layer.eps)


def sequence(infos) -> OrderedDict[str, nn.Module]:
    """Named children for a list of layers: each layer, then its trailing activation."""
    children: OrderedDict[str, nn.Module] = OrderedDict()
    for info in infos:
        children[info.name] = BUILDERS[info.layer.kind](info)
        act = getattr(info.layer, "activation", None)
        if act:
            children[f"{info.name}_{act}"] = ACTIVATIONS[act]()
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
        self.body_names = list(body)
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x):
        out = x
        for name in self.body_names:
            out = getattr(self, name)(out)
        return out + self.shortcut(x)


def _concat(info: LayerInfo) -> nn.Module:
    return Concat([nn.Sequential(sequence(b)) if b else nn.Identity() for b in info.children])


def _residual(info: LayerInfo) -> nn.Module:
    body = sequence(info.children[0])
    shortcut = nn.Sequential(sequence(info.children[1])) if len(info.children) > 1 else None
    return Residual(body, shortcut)


def _lrn(info: LayerInfo) -> nn.Module:
    layer = info.layer
    return nn.LocalResponseNorm(layer.size, alpha=layer.alpha, beta=layer.beta, k=layer.k)


BUILDERS = {
    "conv": _conv,
    "maxpool": _pool,
    "avgpool": _pool,
    "adaptiveavgpool": lambda info: nn.AdaptiveAvgPool2d(info.layer.output_size),
    "globalavgpool": lambda info: nn.AdaptiveAvgPool2d(1),
    "batchnorm": _batchnorm,
    "lrn": _lrn,
    "concat": _concat,
    "residual": _residual,
    "dropout": lambda info: nn.Dropout(info.layer.p),
    "flatten": lambda info: nn.Flatten(),
    "dense": lambda info: nn.Linear(info.in_shape[0], info.layer.out_features, bias=info.layer.bias),
    "activation": lambda info: ACTIVATIONS[info.layer.function](),
}


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


def build(shaped: ShapedSpec, seed: int | None = None) -> Network:
    """Build the module; ``seed`` makes the initial weights reproducible.

    Weights use PyTorch's default initialisation of each layer
    (Kaiming-uniform for ``Conv2d`` and ``Linear``, see their docs).
    """
    if seed is not None:
        torch.manual_seed(seed)
    return Network(shaped)
