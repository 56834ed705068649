"""``pointwise N [bias off] [activation]``: a linear layer over the channels of each position
of an HxWxC map, giving HxWxN: ``nn.Linear(C, N)`` applied channels-last, as ConvNeXt's
"pointwise" layers (Liu et al. 2022; torchvision's ``CNBlock``). The same function as
``conv 1x1xN``, stored as a Linear's (N, C) weight, so ConvNeXt's weights load tensor for
tensor. On a flat input it is ``dense N``."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt

from .base import ActivationName, Kind, LayerInfo, Node, need_map
from .calls import ModuleCall, made_on_first_use
from .formulas import dense_params


class Pointwise(Node):
    """``pointwise N`` -> ``PointwiseLinear(C, N)``: (N, C, H, W) -> (N, out, H, W)."""

    kind: Literal["pointwise"] = "pointwise"
    out_features: PositiveInt
    bias: bool = True
    activation: ActivationName | None = None


def infer(layer: Pointwise, shape) -> LayerInfo:
    need_map(layer, shape)
    c, h, w = shape
    return LayerInfo(layer, shape, (layer.out_features, h, w),
                     params=dense_params(c, layer.out_features, layer.bias),
                     biases=layer.out_features if layer.bias else 0,
                     macs=h * w * c * layer.out_features)


def _module_class():
    from torch import nn

    class PointwiseLinear(nn.Linear):
        """``nn.Linear`` over the channels of each position: (N, C, H, W) -> (N, out, H, W)."""

        def forward(self, x):
            return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    return PointwiseLinear


__getattr__ = made_on_first_use(PointwiseLinear=_module_class)


GRAMMAR = """
pointwise: "pointwise" int pointwise_opt*
?pointwise_opt: bias | activation
"""

KIND = Kind(Pointwise, grammar=GRAMMAR, rules=("pointwise",), prefix="P",
            args=(("out_features", "int"),), infer=infer,
            module=lambda info: ModuleCall(
                "PointwiseLinear", (info.in_shape[0], info.layer.out_features),
                {} if info.layer.bias else {"bias": False}, lib="cnnspec.layers.pointwise"),
            describe=lambda info: f"{info.layer.out_features} per position"
            + ("" if info.layer.bias else ", bias off"),
            labels={"out_features": ("the number of outputs", "pointwise N needs N >= 1")})
