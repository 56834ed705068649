"""``layerscale V``: a learnable scale per channel, initialised to V, multiplying a residual
body's output (Touvron et al., "Going deeper with Image Transformers", ICCV 2021, section
2.1; ConvNeXt's ``layer_scale``, V = 1e-6). Parameters: one per channel, shaped (C, 1, 1)
on maps as torchvision's ConvNeXt, (F,) on flat inputs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Kind, LayerInfo, Node
from .calls import ModuleCall, made_on_first_use


class LayerScaleNode(Node):
    """``layerscale V`` -> ``LayerScale(C, V)``."""

    kind: Literal["layerscale"] = "layerscale"
    init: Annotated[float, Field(gt=0.0)]


def _module_class():
    import torch
    from torch import nn

    class LayerScale(nn.Module):
        """x * scale, one learnable scale per channel: input (N, C, H, W) or (N, F)."""

        def __init__(self, channels: int, init: float, spatial: bool = True):
            super().__init__()
            shape = (channels, 1, 1) if spatial else (channels,)
            self.scale = nn.Parameter(torch.full(shape, float(init)))

        def forward(self, x):
            return x * self.scale

    return LayerScale


__getattr__ = made_on_first_use(LayerScale=_module_class)


GRAMMAR = """
layerscale: "layerscale" number
"""

KIND = Kind(LayerScaleNode, grammar=GRAMMAR, rules=("layerscale",), prefix="LS",
            args=(("init", "num"),), pointwise=True,
            infer=lambda layer, shape: LayerInfo(layer, shape, shape, params=shape[0]),
            module=lambda info: ModuleCall(
                "LayerScale", (info.in_shape[0], info.layer.init),
                {} if len(info.in_shape) == 3 else {"spatial": False},
                lib="cnnspec.layers.layerscale"),
            describe=lambda info: f"init {info.layer.init:g}, per "
            + ("channel" if len(info.in_shape) == 3 else "feature"),
            labels={"init": ("the initial scale", "a small positive number, e.g. 1e-6")})
