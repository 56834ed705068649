"""``globalavgpool`` -> ``nn.AdaptiveAvgPool2d(1)``: HxWxC -> 1x1xC, the mean of each map."""

from __future__ import annotations

from typing import Literal

from .base import Kind, LayerInfo, Node, need_map
from .calls import ModuleCall


class GlobalAvgPool(Node):
    """``globalavgpool`` -> ``nn.AdaptiveAvgPool2d(1)``: HxWxC -> 1x1xC."""

    kind: Literal["globalavgpool"] = "globalavgpool"


def infer(layer: GlobalAvgPool, shape) -> LayerInfo:
    need_map(layer, shape)
    return LayerInfo(layer, shape, (shape[0], 1, 1))


GRAMMAR = """
globalavgpool: "globalavgpool"
"""

KIND = Kind(GlobalAvgPool, grammar=GRAMMAR, rules=("globalavgpool",), prefix="M", infer=infer,
            module=lambda info: ModuleCall("AdaptiveAvgPool2d", (1,)))
