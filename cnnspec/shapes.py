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


def pool_out(size: int, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False,
             dilation: int = 1) -> int:
    """Output length of a pooling window, with PyTorch's ``ceil_mode`` rule: round up, but a
    window must start inside the input or its left padding (``torch.nn.MaxPool2d`` docs;
    ``pooling_output_shape`` in ATen's Pool.h).

    >>> pool_out(112, 3, 2, ceil_mode=True), pool_out(112, 3, 2)   # GoogLeNet's maxpool1
    (56, 55)
    >>> pool_out(14, 2, 2, ceil_mode=True)
    7
    """
    if not ceil_mode:
        return conv_out(size, kernel, stride, padding, dilation)
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


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
    """Padding per axis: the default is half the (dilated) kernel, ``d * (k - 1) // 2``;
    ``valid`` is 0; ``same`` with an even kernel stays the string 'same' (PyTorch then pads
    asymmetrically).

    >>> resolve_padding(ir.Conv(kernel_size=(3, 3), out_channels=8, dilation=2))
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
    children: tuple[tuple[LayerInfo, ...], ...] = ()
    """Concat: one tuple per branch. Residual: (body,) or (body, shortcut)."""
    projection: bool = False
    """Residual only: the shortcut is an automatic 1x1 convolution + batch norm."""

    @property
    def name(self) -> str:
        return self.layer.name


def walk(infos, depth: int = 0, prefix: str = ""):
    """Every layer, depth first: (depth, module path, info). Paths are as in the built
    module's ``state_dict`` keys (``R1.C2``, ``CAT1.b2.C5``, ``R1.shortcut.conv``)."""
    for info in infos:
        path = f"{prefix}{info.name}"
        yield depth, path, info
        for i, group in enumerate(info.children):
            if info.layer.kind == "concat":
                sub = f"{path}.b{i + 1}."
            elif i == 1:
                sub = f"{path}.shortcut."
            else:
                sub = f"{path}."
            yield from walk(group, depth + 1, sub)


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

    def walk(self):
        """(depth, path, info) of every layer, nested ones included (see :func:`walk`)."""
        return walk(self.layers)


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
    def __init__(self, message: str, hint: str | None = None, layer=None):
        self.message, self.hint, self.layer = message, hint, layer


def _need_map(layer, shape: Shape) -> None:
    if len(shape) != 3:
        raise _ShapeError(f"{layer.kind} needs an HxWxC input, got a flat input of {shape[0]}",
                          "feature maps become flat after 'flatten'; move this layer before it")


def _window(layer, shape: Shape, kernel, stride: int | tuple[int, int], pad, what: str,
            ceil_mode=False, dilation=1) -> Shape:
    _need_map(layer, shape)
    c, h, w = shape
    if isinstance(pad, str):  # 'same' with an even kernel: size kept (stride is 1, checked)
        return shape
    sh, sw = stride if isinstance(stride, tuple) else (stride, stride)
    oh = pool_out(h, kernel[0], sh, pad[0], ceil_mode, dilation)
    ow = pool_out(w, kernel[1], sw, pad[1], ceil_mode, dilation)
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


def _conv(layer: ir.Conv, shape: Shape) -> LayerInfo:
    pad = resolve_padding(layer)
    if pad == "same" and layer.stride != 1:
        raise _ShapeError(f"pad same with an even {layer.kernel_size[0]}x{layer.kernel_size[1]}"
                          f" kernel needs stride 1, got stride {layer.stride}",
                          "write the padding as a number: pad N")
    _need_map(layer, shape)
    g = layer.groups
    if shape[0] % g or layer.out_channels % g:
        raise _ShapeError(f"groups {g} must divide both the input channels ({shape[0]}) and the "
                          f"filters ({layer.out_channels})", "each group convolves C/groups channels")
    out = _window(layer, shape, layer.kernel_size, layer.stride, pad, "conv", dilation=layer.dilation)
    out = (layer.out_channels, *out[1:])
    return LayerInfo(layer, shape, out,
                     params=conv_params(shape[0], layer.out_channels, layer.kernel_size, layer.bias, g),
                     macs=conv_macs(out, shape[0], layer.kernel_size, g), padding=pad)


def _pool(layer: ir.Pool, shape: Shape) -> LayerInfo:
    pad = (layer.padding, layer.padding)
    if layer.padding * 2 > min(layer.kernel_size):
        raise _ShapeError(f"pad {layer.padding} is more than half the {layer.kind} window",
                          "PyTorch allows at most half the window as padding")
    out = _window(layer, shape, layer.kernel_size, layer.stride or layer.kernel_size, pad,
                  layer.kind, layer.ceil_mode)
    return LayerInfo(layer, shape, out, padding=pad)


def _concat(layer: ir.Concat, shape: Shape) -> LayerInfo:
    branches = tuple(_infer_seq(b, shape) for b in layer.branches)
    outs = [b[-1].out_shape if b else shape for b in branches]

    def where(i):
        b = branches[i]
        return f"branch {i + 1} (line {b[-1].layer.span.line})" if b and b[-1].layer.span else \
            f"branch {i + 1} (identity)"

    for i, o in enumerate(outs):
        if len(o) != len(outs[0]) or o[1:] != outs[0][1:]:
            raise _ShapeError(
                f"concat: {where(0)} gives {fmt_shape(outs[0])} but {where(i)} gives "
                f"{fmt_shape(o)}; branches must agree on everything but the channels",
                "give the branches the same strides and padding (e.g. pad 1 on 3x3 windows)"
                if len(o) == len(outs[0]) else
                "a flat branch cannot be joined to a feature map; flatten after the concat")
    out = (sum(o[0] for o in outs), *outs[0][1:])
    return LayerInfo(layer, shape, out, params=sum(i.params for b in branches for i in b),
                     buffers=sum(i.buffers for b in branches for i in b),
                     macs=sum(i.macs for b in branches for i in b), children=branches)


def projection_stride(in_shape: Shape, out_shape: Shape) -> int | None:
    """The stride of a 1x1 convolution taking ``in_shape`` to ``out_shape``'s size, or None.

    >>> projection_stride((64, 56, 56), (128, 28, 28)), projection_stride((64, 56, 56), (64, 27, 27))
    (2, None)
    """
    # (size - 1) // s + 1 == out holds for s in [lo, hi]: the smallest s that fits both axes
    # (worked out, not searched: the input may be huge).
    lo, hi = 1, in_shape[1]
    for size, out in zip(in_shape[1:], out_shape[1:]):
        if out < 1:
            return None
        lo = max(lo, (size - 1) // out + 1)
        if out > 1:
            hi = min(hi, (size - 1) // (out - 1))
    return lo if lo <= hi else None


def _residual(layer: ir.Residual, shape: Shape) -> LayerInfo:
    body = _infer_seq(layer.body, shape)
    out = body[-1].out_shape
    line = body[-1].layer.span.line if body[-1].layer.span else "?"
    groups, projection = (body,), False
    if layer.shortcut is not None:
        sc = _infer_seq(layer.shortcut, shape)
        sc_out = sc[-1].out_shape if sc else shape
        if sc_out != out:
            sc_line = sc[-1].layer.span.line if sc and sc[-1].layer.span else "identity"
            raise _ShapeError(f"residual: the body gives {fmt_shape(out)} (line {line}) but the "
                              f"shortcut gives {fmt_shape(sc_out)} (line {sc_line}); they are added",
                              "make both end with the same size and channels")
        groups = (body, sc)
    elif out != shape:
        stride = projection_stride(shape, out) if len(shape) == len(out) == 3 else None
        if stride is None:
            raise _ShapeError(f"residual: the body turns {fmt_shape(shape)} into {fmt_shape(out)} "
                              f"(line {line}); no 1x1 projection of the input can match it",
                              "keep the size, or halve it with stride 2 (pad the 3x3 convolutions)")
        conv = ir.Conv(name="conv", kernel_size=(1, 1), out_channels=out[0], stride=stride,
                       padding="valid", bias=False, span=layer.span)
        bn = ir.BatchNorm(name="bn", span=layer.span)
        conv_info = _conv(conv, shape)
        groups, projection = (body, (conv_info, _infer_one(bn, conv_info.out_shape))), True
    infos = [i for g in groups for i in g]
    return LayerInfo(layer, shape, out, params=sum(i.params for i in infos),
                     buffers=sum(i.buffers for i in infos), macs=sum(i.macs for i in infos),
                     children=groups, projection=projection)


def _infer_one(layer, shape: Shape) -> LayerInfo:
    kind = layer.kind
    if kind == "conv":
        return _conv(layer, shape)
    if kind in ("maxpool", "avgpool"):
        return _pool(layer, shape)
    if kind == "concat":
        return _concat(layer, shape)
    if kind == "residual":
        return _residual(layer, shape)
    if kind == "adaptiveavgpool":
        _need_map(layer, shape)
        return LayerInfo(layer, shape, (shape[0], *layer.output_size))
    if kind == "globalavgpool":
        _need_map(layer, shape)
        return LayerInfo(layer, shape, (shape[0], 1, 1))
    if kind == "batchnorm":
        params, buffers = batchnorm_counts(shape[0])
        return LayerInfo(layer, shape, shape, params=params, buffers=buffers)
    if kind == "lrn":
        _need_map(layer, shape)
        return LayerInfo(layer, shape, shape)
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


MAX_TENSOR = 2**34
"""The most elements one layer's weights, or one image's output of a layer, may have:
17 billion (64 GiB as float32), beyond any accelerator's memory; larger sizes are typing
mistakes (``conv 3x3x9999999999``), and torch would fail to allocate them, or overflow."""


def _check_size(info: LayerInfo) -> None:
    out = 1
    for d in info.out_shape:
        out *= d
    for what, n in (("parameters", info.params), ("output values per image", out)):
        if n > MAX_TENSOR:
            raise _ShapeError(f"{n:,} {what} ({n * 4 / 2**30:,.0f} GiB as float32) is more than "
                              f"a layer may have ({MAX_TENSOR:,}, 64 GiB)",
                              "is a size mistyped? conv KxKxF, dense N and input HxWxC take "
                              "the sizes a network really has")


def _infer_seq(layers, shape: Shape) -> tuple[LayerInfo, ...]:
    infos = []
    for layer in layers:
        try:
            info = _infer_one(layer, shape)
            _check_size(info)
        except _ShapeError as exc:
            if exc.layer is None:
                exc.layer = layer  # the innermost layer that failed
            raise
        infos.append(info)
        shape = info.out_shape
    return tuple(infos)


def infer(spec: ir.Spec) -> ShapedSpec:
    """Shapes of every layer of a validated spec, nested ones included.

    Raises:
        SpecError: a layer cannot take its input (kernel or window larger than the
            input, size shrinking to zero, dense on a feature map, branches that do not
            agree, ...). Later shapes depend on the broken one, so the first is reported.
    """
    try:
        infos = _infer_seq(spec.layers, spec.input.chw())
    except _ShapeError as exc:
        src = SourceText(spec.source, spec.file)
        for file, text in spec.sources.items():
            src.add(text, file)
        layer = exc.layer
        raise SpecError([src.diag(layer.span, f"{layer.name}: {exc.message}", exc.hint,
                                  layer.trace)]) from None
    return ShapedSpec(spec, list(infos))
