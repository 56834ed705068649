"""``dense N [bias off] [activation]`` -> ``nn.Linear(in_features, N)`` on a flat input."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt

from .base import ActivationName, Kind, LayerInfo, Node, ShapeError, fmt_shape
from .calls import ModuleCall
from .formulas import dense_params


class Dense(Node):
    """``dense N`` -> ``nn.Linear(in_features, N)``."""

    kind: Literal["dense"] = "dense"
    out_features: PositiveInt
    bias: bool = True
    activation: ActivationName | None = None


def infer(layer: Dense, shape) -> LayerInfo:
    if len(shape) != 1:
        raise ShapeError(f"dense needs a flat input, got {fmt_shape(shape)}",
                         "add 'flatten' (or 'globalavgpool' then 'flatten') before it")
    return LayerInfo(layer, shape, (layer.out_features,),
                     params=dense_params(shape[0], layer.out_features, layer.bias),
                     biases=layer.out_features if layer.bias else 0,
                     macs=shape[0] * layer.out_features)


GRAMMAR = """
dense: "dense" int dense_opt*
?dense_opt: bias | activation
"""

KIND = Kind(Dense, grammar=GRAMMAR,
            rules=("dense",), prefix="F", args=(("out_features", "int"),), infer=infer,
            module=lambda info: ModuleCall("Linear", (info.in_shape[0], info.layer.out_features),
                                           {} if info.layer.bias else {"bias": False}),
            describe=lambda info: f"{info.layer.out_features}"
            + ("" if info.layer.bias else ", bias off"),
            labels={"out_features": ("the number of units", "dense N needs N >= 1")})
