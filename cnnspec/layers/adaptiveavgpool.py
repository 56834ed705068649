"""``adaptiveavgpool HxW`` -> ``nn.AdaptiveAvgPool2d((H, W))``: any input size to HxWxC."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt

from .base import Kind, LayerInfo, Node, need_map
from .calls import ModuleCall
from .pool import window


class AdaptiveAvgPool(Node):
    """``adaptiveavgpool HxW`` -> ``nn.AdaptiveAvgPool2d((H, W))``."""

    kind: Literal["adaptiveavgpool"] = "adaptiveavgpool"
    output_size: tuple[PositiveInt, PositiveInt]


def infer(layer: AdaptiveAvgPool, shape) -> LayerInfo:
    need_map(layer, shape)
    return LayerInfo(layer, shape, (shape[0], *layer.output_size))


GRAMMAR = """
adaptiveavgpool: "adaptiveavgpool" window
"""

KIND = Kind(AdaptiveAvgPool, grammar=GRAMMAR,
            rules=("adaptiveavgpool",), prefix="M", args=(("dims", "window"),),
            fields=lambda word, f: window(word, f, "output_size"), infer=infer,
            module=lambda info: ModuleCall("AdaptiveAvgPool2d", (info.layer.output_size,)),
            describe=lambda info: "x".join(map(str, info.layer.output_size)),
            labels={"output_size": ("the output size", None)})
