"""``maxpool K`` / ``avgpool K`` -> ``nn.MaxPool2d`` / ``nn.AvgPool2d``: a window of K x K
(or KhxKw), stride K unless given, padding, ``ceil`` and, for avgpool,
``count_include_pad off``."""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeInt, PositiveInt

from .base import FieldError, Kind, LayerInfo, Node, ShapeError, window_out
from .calls import ModuleCall


class Pool(Node):
    """``maxpool K`` / ``avgpool K`` -> ``nn.MaxPool2d`` / ``nn.AvgPool2d``; stride defaults to K."""

    kind: Literal["maxpool", "avgpool"]
    kernel_size: tuple[PositiveInt, PositiveInt]
    stride: PositiveInt | None = None
    padding: NonNegativeInt = 0
    ceil_mode: bool = False
    """Round the output size up (``ceil``), as GoogLeNet's pools do."""
    count_include_pad: bool = True
    """avgpool only: divide by the whole window, padded zeros included (PyTorch's default);
    ``count_include_pad off`` divides by the pixels of the input the window covers."""


def window(word: str, f: dict, field: str) -> dict:
    """The ``K`` or ``KxK`` of a pooling word as a pair in ``field`` (shared with adaptiveavgpool)."""
    dims = f.pop("dims")
    if len(dims) > 2:
        arg = "an output size" if word == "adaptiveavgpool" else "a window"
        raise FieldError("dims", f"{word} takes {arg} K or KxK, got {'x'.join(map(str, dims))}",
                         "pooling keeps the channels")
    return {**f, field: dims * 2 if len(dims) == 1 else dims}


def fields(word: str, f: dict) -> dict:
    if isinstance(f.get("padding"), str):
        raise FieldError("padding", f"{word}: the padding must be a number of pixels, got pad "
                         f"{f['padding']}", "'same' and 'valid' are for convolutions; write pad 0 or pad 1")
    if word == "maxpool" and "count_include_pad" in f:
        raise FieldError("count_include_pad", "maxpool: count_include_pad is an avgpool setting "
                         "(a maximum ignores the padding)", "remove it, or use avgpool")
    return {**window(word, f, "kernel_size"), "kind": word}


def infer(layer: Pool, shape) -> LayerInfo:
    pad = (layer.padding, layer.padding)
    if layer.padding * 2 > min(layer.kernel_size):
        raise ShapeError(f"pad {layer.padding} is more than half the {layer.kind} window",
                         "PyTorch allows at most half the window as padding")
    out = window_out(layer, shape, layer.kernel_size, layer.stride or layer.kernel_size, pad,
                     layer.kind, layer.ceil_mode)
    return LayerInfo(layer, shape, out, padding=pad)


def module(info: LayerInfo) -> ModuleCall:
    layer = info.layer
    kw = {"kernel_size": layer.kernel_size, "stride": layer.stride or layer.kernel_size}
    if layer.padding:
        kw["padding"] = layer.padding
    if layer.ceil_mode:
        kw["ceil_mode"] = True
    if not layer.count_include_pad:
        kw["count_include_pad"] = False
    return ModuleCall("MaxPool2d" if layer.kind == "maxpool" else "AvgPool2d", (), kw)


def describe(info: LayerInfo) -> str:
    layer = info.layer
    kh, kw = layer.kernel_size
    stride = layer.stride or (kh if kh == kw else f"{kh}x{kw}")
    return ", ".join([f"{kh}x{kw}", f"stride {stride}",
                      *([f"pad {layer.padding}"] if layer.padding else []),
                      *(["ceil"] if layer.ceil_mode else []),
                      *([] if layer.count_include_pad else ["count_include_pad off"])])


GRAMMAR = """
maxpool: "maxpool" window pool_opt*
avgpool: "avgpool" window pool_opt*
?pool_opt: stride | pad | ceil | count_pad
"""

KIND = Kind(Pool, grammar=GRAMMAR,
            rules=("maxpool", "avgpool"), prefix="M", args=(("dims", "window"),), fields=fields,
            infer=infer, module=module, describe=describe)
