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

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softmax": lambda: nn.Softmax(dim=1),
}


def _conv(info: LayerInfo) -> nn.Module:
    layer = info.layer
    return nn.Conv2d(info.in_shape[0], layer.out_channels, layer.kernel_size, stride=layer.stride,
                     padding=info.padding, bias=layer.bias)


def _pool(info: LayerInfo) -> nn.Module:
    layer = info.layer
    cls = nn.MaxPool2d if layer.kind == "maxpool" else nn.AvgPool2d
    return cls(layer.kernel_size, stride=layer.stride or layer.kernel_size, padding=layer.padding)


def _batchnorm(info: LayerInfo) -> nn.Module:
    return (nn.BatchNorm2d if len(info.in_shape) == 3 else nn.BatchNorm1d)(info.in_shape[0])


BUILDERS = {
    "conv": _conv,
    "maxpool": _pool,
    "avgpool": _pool,
    "adaptiveavgpool": lambda info: nn.AdaptiveAvgPool2d(info.layer.output_size),
    "globalavgpool": lambda info: nn.AdaptiveAvgPool2d(1),
    "batchnorm": _batchnorm,
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
        children: OrderedDict[str, nn.Module] = OrderedDict()
        for info in shaped.layers:
            children[info.name] = BUILDERS[info.layer.kind](info)
            act = getattr(info.layer, "activation", None)
            if act:
                children[f"{info.name}_{act}"] = ACTIVATIONS[act]()
        super().__init__(children)
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
