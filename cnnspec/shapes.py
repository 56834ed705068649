"""Shapes, parameters and multiply-accumulates of every layer, computed once and analytically.

Small pure functions hold the formulas (each cites its source and has a doctest);
:func:`infer` walks the layers and returns a :class:`ShapedSpec` that the builder,
the reports and the exporter read. Nothing here allocates a tensor.

Shapes are PyTorch's channel-first ``(C, H, W)`` for feature maps and ``(F,)`` for flat
vectors, per image (no batch axis); reports print them as HxWxC.
MACs count one multiply plus one add as one; FLOPs = 2 x MACs.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ir
from .errors import SourceText, SpecError

Shape = tuple[int, ...]


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window along one axis.

    ``floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``, from the
    ``torch.nn.Conv2d`` and ``torch.nn.MaxPool2d`` docs (shape section).

    >>> conv_out(224, 11, stride=4, padding=2)   # AlexNet's first convolution
    55
    >>> conv_out(32, 5)                          # LeNet-5's C1, no padding
    28
    """
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_params(in_channels: int, out_channels: int, kernel: tuple[int, int], bias: bool = True,
                groups: int = 1) -> int:
    """Weights ``out * (in / groups) * kh * kw`` plus one bias per filter.

    >>> conv_params(512, 512, (3, 3))    # VGG's 3x3x512 convolution
    2359808
    >>> conv_params(512, 128, (1, 1))    # a transition 1x1x128
    65664
    """
    return out_channels * (in_channels // groups) * kernel[0] * kernel[1] + (out_channels if bias else 0)


def conv_macs(out_shape: Shape, in_channels: int, kernel: tuple[int, int], groups: int = 1) -> int:
    """One multiply-accumulate per weight per output position: ``Ho*Wo*Co * (Ci/groups)*kh*kw``.

    The usual count (torchvision's model docs, fvcore, ptflops); biases are not counted.

    >>> conv_macs((64, 224, 224), 3, (3, 3))   # VGG-16's first convolution
    86704128
    """
    c, h, w = out_shape
    return h * w * c * (in_channels // groups) * kernel[0] * kernel[1]


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """``in * out`` weights plus ``out`` biases (``torch.nn.Linear``).

    >>> dense_params(400, 120)   # LeNet-5's F1 (C5 in the paper)
    48120
    """
    return in_features * out_features + (out_features if bias else 0)


def batchnorm_counts(channels: int) -> tuple[int, int]:
    """(parameters, buffers) of ``torch.nn.BatchNorm2d``: weight + bias; running mean + var
    + ``num_batches_tracked``. Buffers are state, never parameters.

    >>> batchnorm_counts(64)
    (128, 129)
    """
    return 2 * channels, 2 * channels + 1


def resolve_padding(layer: ir.Conv) -> tuple[int, int] | str:
    """Padding per axis: the default is half the kernel (``k // 2``); ``valid`` is 0;
    ``same`` with an even kernel stays the string 'same' (PyTorch pads asymmetrically)."""
    kh, kw = layer.kernel_size
    if layer.padding is None:
        return (kh // 2, kw // 2)
    if layer.padding == "valid":
        return (0, 0)
    if layer.padding == "same":
        return (kh // 2, kw // 2) if kh % 2 and kw % 2 else "same"
    return (layer.padding, layer.padding)


@dataclass(frozen=True)
class LayerInfo:
    """What one layer does to one image: shapes (C, H, W) or (F,), parameters, MACs."""

    layer: ir.Layer
    in_shape: Shape
    out_shape: Shape
    params: int = 0
    buffers: int = 0
    macs: int = 0
    padding: tuple[int, int] | str = (0, 0)

    @property
    def name(self) -> str:
        return self.layer.name


@dataclass(frozen=True)
class ShapedSpec:
    """A spec with shape facts on every layer; read by build, reports and export."""

    spec: ir.Spec
    layers: list[LayerInfo]

    @property
    def input_shape(self) -> Shape:
        return self.spec.input.chw()

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].out_shape if self.layers else self.input_shape

    @property
    def params(self) -> int:
        return sum(i.params for i in self.layers)

    @property
    def buffers(self) -> int:
        return sum(i.buffers for i in self.layers)

    @property
    def macs(self) -> int:
        return sum(i.macs for i in self.layers)


def fmt_shape(shape: Shape) -> str:
    """(C, H, W) -> 'HxWxC'; (F,) -> 'F'.

    >>> fmt_shape((64, 224, 224)), fmt_shape((4096,))
    ('224x224x64', '4096')
    """
    if len(shape) == 3:
        c, h, w = shape
        return f"{h}x{w}x{c}"
    return "x".join(map(str, shape))


class _ShapeError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        self.message, self.hint = message, hint


def _need_map(layer, shape: Shape) -> None:
    if len(shape) != 3:
        raise _ShapeError(f"{layer.kind} needs an HxWxC input, got a flat input of {shape[0]}",
                          "feature maps become flat after 'flatten'; move this layer before it")


def _window(layer, shape: Shape, kernel, stride, pad, what: str) -> Shape:
    _need_map(layer, shape)
    c, h, w = shape
    if isinstance(pad, str):  # 'same' with an even kernel: size kept (stride is 1, checked)
        return shape
    oh, ow = conv_out(h, kernel[0], stride, pad[0]), conv_out(w, kernel[1], stride, pad[1])
    # The output is empty exactly when the window does not fit in the padded input
    # (conv_out < 1 <=> kernel > size + 2 * padding), so one check covers both mistakes.
    if oh < 1 or ow < 1:
        padded = "" if pad == (0, 0) else f" (padding {pad[0]})"
        window = "kernel" if what == "conv" else "window"
        raise _ShapeError(
            f"{what} {kernel[0]}x{kernel[1]} on a {fmt_shape(shape)} input{padded}; the {window} "
            f"is larger than the input, so the spatial size would shrink to {max(oh, 0)}x{max(ow, 0)}",
            "use a smaller kernel, add padding, or remove a pooling layer before it")
    return (c, oh, ow)


def _infer_one(layer, shape: Shape) -> LayerInfo:
    kind = layer.kind
    if kind == "conv":
        pad = resolve_padding(layer)
        if pad == "same" and layer.stride != 1:
            raise _ShapeError(f"pad same with an even {layer.kernel_size[0]}x{layer.kernel_size[1]}"
                              f" kernel needs stride 1, got stride {layer.stride}",
                              "write the padding as a number: pad N")
        out = _window(layer, shape, layer.kernel_size, layer.stride, pad, "conv")
        out = (layer.out_channels, *out[1:])
        return LayerInfo(layer, shape, out,
                         params=conv_params(shape[0], layer.out_channels, layer.kernel_size, layer.bias),
                         macs=conv_macs(out, shape[0], layer.kernel_size), padding=pad)
    if kind in ("maxpool", "avgpool"):
        pad = (layer.padding, layer.padding)
        if layer.padding * 2 > min(layer.kernel_size):
            raise _ShapeError(f"pad {layer.padding} is more than half the {kind} window",
                              "PyTorch allows at most half the window as padding")
        out = _window(layer, shape, layer.kernel_size, layer.stride or layer.kernel_size[0], pad, kind)
        return LayerInfo(layer, shape, out, padding=pad)
    if kind == "adaptiveavgpool":
        _need_map(layer, shape)
        return LayerInfo(layer, shape, (shape[0], *layer.output_size))
    if kind == "globalavgpool":
        _need_map(layer, shape)
        return LayerInfo(layer, shape, (shape[0], 1, 1))
    if kind == "batchnorm":
        params, buffers = batchnorm_counts(shape[0])
        return LayerInfo(layer, shape, shape, params=params, buffers=buffers)
    if kind == "flatten":
        n = 1
        for d in shape:
            n *= d
        return LayerInfo(layer, shape, (n,))
    if kind == "dense":
        if len(shape) != 1:
            raise _ShapeError(f"dense needs a flat input, got {fmt_shape(shape)}",
                              "add 'flatten' (or 'globalavgpool' then 'flatten') before it")
        return LayerInfo(layer, shape, (layer.out_features,),
                         params=dense_params(shape[0], layer.out_features, layer.bias),
                         macs=shape[0] * layer.out_features)
    return LayerInfo(layer, shape, shape)  # dropout, activation


def infer(spec: ir.Spec) -> ShapedSpec:
    """Shapes of every layer of a validated spec.

    Raises:
        SpecError: a layer cannot take its input (kernel or window larger than the
            input, size shrinking to zero, dense on a feature map, ...). Later shapes
            depend on the broken one, so the first such error is reported.
    """
    shape: Shape = spec.input.chw()
    infos: list[LayerInfo] = []
    for layer in spec.layers:
        try:
            info = _infer_one(layer, shape)
        except _ShapeError as exc:
            src = SourceText(spec.source, spec.file)
            raise SpecError([src.diag(layer.span, f"{layer.name}: {exc.message}", exc.hint)]) from None
        infos.append(info)
        shape = info.out_shape
    return ShapedSpec(spec, infos)

