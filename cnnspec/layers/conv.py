"""``conv KxKxF`` and ``transition 1x1xF`` -> ``nn.Conv2d``, with stride, padding, groups
(depthwise: groups = channels) and dilation."""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeInt, PositiveInt

from .base import (
    ActivationName,
    FieldError,
    Kind,
    LayerInfo,
    Node,
    ShapeError,
    need_map,
    window_out,
)
from .calls import ModuleCall
from .formulas import conv_macs, conv_params


class Conv(Node):
    """``conv KxKxF`` or ``transition 1x1xF`` -> ``nn.Conv2d``."""

    kind: Literal["conv"] = "conv"
    kernel_size: tuple[PositiveInt, PositiveInt]
    out_channels: PositiveInt
    stride: PositiveInt = 1
    padding: Literal["same", "valid"] | NonNegativeInt | None = None
    """None: half the (dilated) kernel, ``dilation * (k - 1) // 2``; 'same', 'valid' or N."""
    bias: bool = True
    activation: ActivationName | None = None
    transition: bool = False
    groups: PositiveInt = 1
    dilation: PositiveInt = 1


def resolve_padding(layer: Conv) -> tuple[int, int] | str:
    """Padding per axis: the default is half the (dilated) kernel, ``d * (k - 1) // 2``;
    ``valid`` is 0; ``same`` with an even kernel stays the string 'same' (PyTorch then pads
    asymmetrically).

    >>> resolve_padding(Conv(kernel_size=(3, 3), out_channels=8, dilation=2))
    (2, 2)
    """
    kh, kw = layer.kernel_size
    d = layer.dilation
    half = (d * (kh - 1) // 2, d * (kw - 1) // 2)
    if layer.padding is None:
        return half
    if layer.padding == "valid":
        return (0, 0)
    if layer.padding == "same":
        return half if kh % 2 and kw % 2 else "same"
    return (layer.padding, layer.padding)


def fields(word: str, f: dict) -> dict:
    dims = f.pop("dims")
    if len(dims) != 3:
        raise FieldError("dims", f"{word} needs KxKxF (kernel height x width x filters), got "
                         f"{'x'.join(map(str, dims))}",
                         f"for example: {word} {'1x1x128' if word == 'transition' else '3x3x64'}")
    if word == "transition" and dims[:2] != (1, 1):
        raise FieldError("dims", f"a transition is a 1x1 convolution, got a {dims[0]}x{dims[1]} "
                         "kernel", f"write transition 1x1x{dims[2]}, or conv {'x'.join(map(str, dims))}")
    return {**f, "kernel_size": dims[:2], "out_channels": dims[2], "transition": word == "transition"}


def infer(layer: Conv, shape) -> LayerInfo:
    pad = resolve_padding(layer)
    if pad == "same" and layer.stride != 1:
        raise ShapeError(f"pad same with an even {layer.kernel_size[0]}x{layer.kernel_size[1]}"
                         f" kernel needs stride 1, got stride {layer.stride}",
                         "write the padding as a number: pad N")
    need_map(layer, shape)
    g = layer.groups
    if shape[0] % g or layer.out_channels % g:
        raise ShapeError(f"groups {g} must divide both the input channels ({shape[0]}) and the "
                         f"filters ({layer.out_channels})", "each group convolves C/groups channels")
    out = window_out(layer, shape, layer.kernel_size, layer.stride, pad, "conv", dilation=layer.dilation)
    out = (layer.out_channels, *out[1:])
    return LayerInfo(layer, shape, out,
                     params=conv_params(shape[0], layer.out_channels, layer.kernel_size, layer.bias, g),
                     biases=layer.out_channels if layer.bias else 0,
                     macs=conv_macs(out, shape[0], layer.kernel_size, g), padding=pad)


def module(info: LayerInfo) -> ModuleCall:
    layer = info.layer
    kw = {"kernel_size": layer.kernel_size, "stride": layer.stride, "padding": info.padding}
    if not layer.bias:
        kw["bias"] = False
    if layer.groups > 1:
        kw["groups"] = layer.groups
    if layer.dilation > 1:
        kw["dilation"] = layer.dilation
    return ModuleCall("Conv2d", (info.in_shape[0], layer.out_channels), kw)


def describe(info: LayerInfo) -> str:
    layer = info.layer
    pad = info.padding if isinstance(info.padding, str) else (
        info.padding[0] if info.padding[0] == info.padding[1] else "x".join(map(str, info.padding)))
    kh, kw = layer.kernel_size
    return ", ".join([f"{kh}x{kw}x{layer.out_channels}", f"stride {layer.stride}", f"pad {pad}",
                      *([] if layer.bias else ["bias off"]),
                      *([f"groups {layer.groups}"] if layer.groups > 1 else []),
                      *([f"dilation {layer.dilation}"] if layer.dilation > 1 else [])])


GRAMMAR = """
conv: "conv" DIMS conv_opt*
transition: "transition" DIMS conv_opt*
?conv_opt: stride | pad | padmode | bias | activation | groups | dilation
"""

KIND = Kind(Conv, grammar=GRAMMAR,
            rules=("conv", "transition"), prefix="C", args=(("dims", "dims"),),
            fields=fields, infer=infer, module=module, describe=describe,
            title=lambda layer: "transition" if layer.transition else "conv",
            labels={"out_channels": ("the number of filters", "write conv KxKxF with F >= 1")})
