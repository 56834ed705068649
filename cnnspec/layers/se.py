"""``se N [activation]``: squeeze-and-excitation (Hu et al., "Squeeze-and-Excitation
Networks", CVPR 2018, fig. 3): each channel of an HxWxC map is scaled by a gate in (0, 1)
computed from the whole map: global average pool -> 1x1 conv to N channels (the squeeze) ->
activation (ReLU unless given; EfficientNet uses SiLU) -> 1x1 conv back to C -> sigmoid.
``torchvision.ops.SqueezeExcitation``, the module torchvision's EfficientNet and
MobileNetV3 use (``fc1``, ``fc2`` with biases), so their weights load tensor for tensor."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt

from .activations import ACTIVATIONS
from .base import ActivationName, FieldError, Kind, LayerInfo, Node, need_map
from .calls import ModuleCall, Ref


class SqueezeExcite(Node):
    """``se N [activation]`` -> ``torchvision.ops.SqueezeExcitation(C, N, activation)``."""

    kind: Literal["se"] = "se"
    squeeze_channels: PositiveInt
    """N: the channels of the squeeze (EfficientNet: a quarter of the block's input)."""
    hidden_activation: ActivationName = "relu"
    """Between the two 1x1 convolutions (the gate itself is always a sigmoid)."""


def infer(layer: SqueezeExcite, shape) -> LayerInfo:
    need_map(layer, shape)
    c, n = shape[0], layer.squeeze_channels
    # fc1: C -> N and fc2: N -> C, 1x1 convolutions with biases on the pooled 1x1 map; the
    # pooling and the gating product are not multiply-accumulates (as FlopCounterMode).
    return LayerInfo(layer, shape, shape, params=c * n + n + n * c + c, biases=n + c,
                     macs=2 * c * n)


def fields(word: str, f: dict) -> dict:
    if f.get("activation") == "softmax":
        raise FieldError("activation", "se: softmax is not an activation between the two 1x1 "
                         "convolutions (it would mix the squeezed channels)",
                         "write relu (the paper's), silu (EfficientNet's) or hardswish")
    if "activation" in f:
        f["hidden_activation"] = f.pop("activation")
    return f


GRAMMAR = """
se: "se" int activation?
"""

KIND = Kind(SqueezeExcite, grammar=GRAMMAR, rules=("se",), prefix="SE",
            args=(("squeeze_channels", "int"),), fields=fields, infer=infer,
            module=lambda info: ModuleCall(
                "SqueezeExcitation", (info.in_shape[0], info.layer.squeeze_channels),
                {"activation": Ref(ACTIVATIONS[info.layer.hidden_activation].cls)},
                lib="torchvision.ops"),
            describe=lambda info: (f"squeeze {info.layer.squeeze_channels}, "
                                   f"{info.layer.hidden_activation}, sigmoid gate"),
            labels={"squeeze_channels": ("the squeeze channels", ("se N: N channels between the "
                                         "two 1x1 convolutions, e.g. a quarter of the input's"))})
