"""``layernorm [eps E]``: layer normalisation (Ba, Kiros & Hinton 2016) over the channels of
each position of an HxWxC map (``LayerNorm2d``, as ConvNeXt: Liu et al. 2022, section 2.6),
or over the features of a flat input (``nn.LayerNorm``). A weight and a bias per channel;
no running statistics. PyTorch's default eps is 1e-5; ConvNeXt uses 1e-6."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import ActivationName, Kind, LayerInfo, Node
from .calls import ModuleCall


class LayerNorm(Node):
    """``layernorm`` -> ``LayerNorm2d(C)`` on maps, ``nn.LayerNorm(F)`` on flat inputs."""

    kind: Literal["layernorm"] = "layernorm"
    eps: Annotated[float, Field(gt=0.0)] = 1e-5
    activation: ActivationName | None = None


def module(info: LayerInfo) -> ModuleCall:
    kw = {"eps": info.layer.eps} if info.layer.eps != 1e-5 else {}
    if len(info.in_shape) == 3:  # torchvision's: permute to (N, H, W, C), normalise, back
        return ModuleCall("LayerNorm2d", (info.in_shape[0],), kw, lib="torchvision.models.convnext")
    return ModuleCall("LayerNorm", (info.in_shape[0],), kw)


GRAMMAR = """
layernorm: "layernorm" layernorm_opt*
?layernorm_opt: eps | activation
"""

KIND = Kind(LayerNorm, grammar=GRAMMAR, rules=("layernorm",), prefix="LN",
            infer=lambda layer, shape: LayerInfo(layer, shape, shape, params=2 * shape[0],
                                                 biases=shape[0]),
            module=module, pointwise=True,
            describe=lambda info: ("over channels" if len(info.in_shape) == 3 else "over features")
            + (f", eps {info.layer.eps:g}" if info.layer.eps != 1e-5 else ""))
