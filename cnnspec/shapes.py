"""Shapes, parameters and multiply-accumulates of every layer, computed once and analytically.

The formulas live in :mod:`cnnspec.layers.formulas` (each cites its source and has a
doctest) and each kind's shape rule in its ``cnnspec/layers/<kind>.py``; :func:`infer`
walks the layers, composes concatenations and residuals, and returns a :class:`ShapedSpec`
that the builder, the reports and the exporter read. Nothing here allocates a tensor.

Shapes are PyTorch's channel-first ``(C, H, W)`` for feature maps and ``(F,)`` for flat
vectors, per image (no batch axis); reports print them as HxWxC.
MACs count one multiply plus one add as one; FLOPs = 2 x MACs.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ir
from .errors import SourceText, SpecError
from .layers import BY_KIND
from .layers.base import LayerInfo, Shape, fmt_shape
from .layers.base import ShapeError as _ShapeError
from .layers.conv import resolve_padding
from .layers.formulas import (
    batchnorm_counts,
    conv_macs,
    conv_out,
    conv_params,
    dense_params,
    pool_out,
)

__all__ = ["MAX_TENSOR", "LayerInfo", "ShapedSpec", "batchnorm_counts", "conv_macs", "conv_out",
           "conv_params", "dense_params", "fmt_shape", "group_name", "infer", "pool_out",
           "projection_stride", "resolve_padding", "walk"]


def group_name(info: LayerInfo, i: int) -> str | None:
    """The module name of a container's i-th group of layers: a concat's branches are
    ``b1``, ``b2``, ...; a residual's shortcut is ``shortcut``; its body has none (its layers
    are the residual's own children). The one rule for module paths (walk, the summary;
    ``builder.Concat`` and ``builder.Residual`` name their children so)."""
    if info.layer.kind == "concat":
        return f"b{i + 1}"
    return "shortcut" if i == 1 else None


def walk(infos, depth: int = 0, prefix: str = ""):
    """Every layer, depth first: (depth, module path, info). Paths are as in the built
    module's ``state_dict`` keys (``R1.C2``, ``CAT1.b2.C5``, ``R1.shortcut.conv``)."""
    for info in infos:
        path = f"{prefix}{info.name}"
        yield depth, path, info
        for i, group in enumerate(info.children):
            name = group_name(info, i)
            yield from walk(group, depth + 1, f"{path}.{name}." if name else f"{path}.")


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
                     biases=sum(i.biases for b in branches for i in b),
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
        conv_info = _infer_one(conv, shape)
        groups, projection = (body, (conv_info, _infer_one(bn, conv_info.out_shape))), True
    infos = [i for g in groups for i in g]
    return LayerInfo(layer, shape, out, params=sum(i.params for i in infos),
                     buffers=sum(i.buffers for i in infos), biases=sum(i.biases for i in infos),
                     macs=sum(i.macs for i in infos),
                     children=groups, projection=projection)


def _infer_one(layer, shape: Shape) -> LayerInfo:
    if layer.kind == "concat":
        return _concat(layer, shape)
    if layer.kind == "residual":
        return _residual(layer, shape)
    return BY_KIND[layer.kind].infer(layer, shape)


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
