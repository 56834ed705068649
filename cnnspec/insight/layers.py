"""Where to look inside a network: the conv *stages* whose outputs the insight commands read,
and forward hooks that capture those outputs (and their gradients, for Grad-CAM).

A stage is a convolution (or a residual / concat block that holds convolutions) together with
the per-channel layers that directly follow it at the same level: batch norm, activations,
LRN and dropout. Its output is what the next layer sees, e.g. ``conv 3x3x64`` + ``batchnorm
relu`` in ResNet's stem: the feature map after the ReLU, as Keras shows a ``Conv2D(...,
activation="relu")`` layer's output and as Zeiler & Fergus (2014) visualise rectified maps.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CnnSpecError
from ..layers import KINDS
from ..shapes import LayerInfo, ShapedSpec, fmt_shape

POINTWISE = {word for kind in KINDS if kind.pointwise for word in kind.words}
"""Layers that keep a conv's map shape channel by channel: they belong to its stage
(batch norm, activations, dropout, ...: ``Kind.pointwise`` in cnnspec/layers/<kind>.py)."""


class LayerNameError(CnnSpecError):
    """A layer name that the network does not have (or that has no feature map)."""


@dataclass(frozen=True)
class Stage:
    """One conv (or conv block) and the per-channel layers after it."""

    name: str
    """The conv's or block's name in the spec (``C3``, ``R8``)."""
    path: str
    """Its module path (``R1.C2``)."""
    tap: str
    """Module path of the stage's last module, whose output is the stage's output."""
    freeze: str
    """The layer to name in ``freeze up to ...`` to freeze the whole stage."""
    out_shape: tuple[int, ...]
    """(C, H, W) of the stage's output for one image."""
    kind: str

    @property
    def shape_text(self) -> str:
        return fmt_shape(self.out_shape)


def _has_conv(info: LayerInfo) -> bool:
    return info.layer.kind == "conv" or any(_has_conv(c) for g in info.children for c in g)


def _tap(prefix: str, info: LayerInfo) -> str:
    act = getattr(info.layer, "activation", None)
    return f"{prefix}{info.name}_{act}" if act else f"{prefix}{info.name}"


def _level(infos, prefix: str, nested: bool) -> list[Stage]:
    stages = []
    for i, info in enumerate(infos):
        if nested and info.children:
            for g, group in enumerate(info.children):
                if info.layer.kind == "concat":
                    stages += _level(group, f"{prefix}{info.name}.b{g + 1}.", nested)
                elif g == 0:  # a residual body; its shortcut's projection is left out
                    stages += _level(group, f"{prefix}{info.name}.", nested)
        if not (info.layer.kind == "conv" if nested else _has_conv(info)):
            continue
        if len(info.out_shape) != 3:
            continue
        last = i
        while last + 1 < len(infos) and infos[last + 1].layer.kind in POINTWISE:
            last += 1
        with_params = [j for j in range(i, last + 1) if infos[j].params]
        stages.append(Stage(info.name, f"{prefix}{info.name}", _tap(prefix, infos[last]),
                            infos[with_params[-1] if with_params else i].name,
                            infos[last].out_shape, info.layer.kind))
    return stages


def conv_stages(shaped: ShapedSpec) -> list[Stage]:
    """Every convolution's stage, nested ones included (residual bodies, concat branches;
    not the 1x1 projections of shortcuts), in the order the network runs them."""
    return _level(shaped.layers, "", nested=True)


def cut_points(shaped: ShapedSpec) -> list[Stage]:
    """The stages of the top level: each conv, or block holding convs, whose output is a
    feature map (C, H, W): the places ``freeze up to`` can cut between."""
    return _level(shaped.layers, "", nested=False)


def pick(stages: list[Stage], names: list[str], network: str,
         kinds: dict[str, str] | None = None) -> list[Stage]:
    """The stages named (by layer name or module path), in the network's order. ``kinds``
    (every layer's name -> kind) lets the error say what a named non-conv layer is.

    Raises:
        LayerNameError: a name is not among ``stages``; the message lists them.
    """
    known = {s.name: s for s in stages} | {s.path: s for s in stages}
    for n in names:
        if n not in known and kinds and n in kinds:
            raise LayerNameError(
                f"{n} is a {kinds[n]} layer of {network}, not a conv layer (or conv block); "
                f"its conv layers: {', '.join(s.name for s in stages)}")
        if n not in known:
            close = difflib.get_close_matches(n, list(known), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]}? " if close else ""
            raise LayerNameError(
                f"{network} has no conv layer named {n!r}; {hint}its conv layers: "
                f"{', '.join(s.name for s in stages)} (`cnnspec summary SPEC` lists every layer)")
    wanted = {known[n].path for n in names}
    return [s for s in stages if s.path in wanted]


class Capture:
    """Forward hooks on the tap modules of ``stages``: after a forward pass,
    ``outputs[path]`` is each stage's output (N, C, H, W); with ``gradients=True`` the output
    keeps its graph and ``gradients[path]`` is d(target)/d(output) after ``backward``.
    Use as a context manager; the hooks are removed on exit."""

    def __init__(self, model: nn.Module, stages: list[Stage], gradients: bool = False):
        self.outputs: dict[str, torch.Tensor] = {}
        self.gradients: dict[str, torch.Tensor] = {}
        self._handles = []
        for stage in stages:
            module = model.get_submodule(stage.tap)
            self._handles.append(module.register_forward_hook(self._hook(stage.path, gradients)))

    def _hook(self, path: str, gradients: bool):
        def hook(module, args, output):
            self.outputs[path] = output if gradients else output.detach()
            if gradients and output.requires_grad:
                output.register_hook(lambda g: self.gradients.__setitem__(path, g.detach()))
        return hook

    def __enter__(self) -> Capture:  # noqa: PYI034 - a plain class, never subclassed
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()


def _axis_map(info: LayerInfo) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """(stride, offset) per axis (H, W) that take an output cell's index c to the input
    coordinate of its receptive field's centre, ``stride * c + offset``; None for a layer
    that keeps coordinates (batch norm, activations, ...)."""
    layer = info.layer
    if layer.kind == "conv":
        pad = info.padding
        if pad == "same":  # PyTorch pads d*(k-1) in all, the smaller half first
            pad = tuple(layer.dilation * (k - 1) // 2 for k in layer.kernel_size)
        return tuple((float(layer.stride), -p + layer.dilation * (k - 1) / 2)
                     for k, p in zip(layer.kernel_size, pad, strict=True))
    if layer.kind in ("maxpool", "avgpool"):
        s = layer.stride or layer.kernel_size[0]
        return tuple((float(s), -layer.padding + (k - 1) / 2) for k in layer.kernel_size)
    if layer.kind in ("residual", "concat"):  # the body / the first branch sets the grid
        return _compose(info.children[0]) if info.children and info.children[0] else None
    return None


def _compose(infos) -> tuple[tuple[float, float], tuple[float, float]]:
    total = ((1.0, 0.0), (1.0, 0.0))
    for info in infos:
        m = _axis_map(info)
        if m is not None:  # input = S * (s * c + b) + B
            total = tuple((S * s, S * b + B) for (S, B), (s, b) in zip(total, m, strict=True))
    return total


def centres(shaped: ShapedSpec, stage: Stage) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where the cells of ``stage``'s output map sit on the input image: per axis (H, W),
    cell ``c`` is centred on input pixel ``stride * c + offset`` (pixel centres are 0, 1,
    ...). Composed layer by layer from each conv's and pool's kernel, stride, padding and
    dilation (Araujo et al., "Computing Receptive Fields of Convolutional Neural Networks",
    Distill 2019, eq. for the effective stride and offset). ``valid`` convolutions shrink the
    map towards the centre of the image, so this is not a plain stretch of the map."""
    return _compose(_chain(shaped.layers, stage.path.split(".")))


def _chain(infos, parts: list[str]) -> list[LayerInfo]:
    """The layers an input passes through up to the one at module path ``parts``."""
    k = next(i for i, info in enumerate(infos) if info.name == parts[0])
    if len(parts) == 1:
        return [*infos[:k + 1]]
    node = infos[k]
    if node.layer.kind == "concat":  # CAT1.b2.C5: the second branch
        return [*infos[:k], *_chain(node.children[int(parts[1][1:]) - 1], parts[2:])]
    return [*infos[:k], *_chain(node.children[0], parts[1:])]  # a residual's body
