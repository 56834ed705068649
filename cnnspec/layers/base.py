"""What every layer kind is made of: the IR's base models, the shape facts of one layer
(:class:`LayerInfo`), and :class:`Kind`, the declaration each ``cnnspec/layers/<kind>.py``
file makes once and every stage reads (front end, checks, shapes, counts, module, summary,
emitted source). Nothing here imports torch.

Shapes are PyTorch's channel-first ``(C, H, W)`` per image for feature maps and ``(F,)``
for flat vectors (no batch axis); reports print them as HxWxC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import Span
from .activations import ACTIVATIONS
from .calls import ModuleCall

ActivationName = Literal[tuple(ACTIVATIONS)]  # the words of cnnspec/layers/activations.py
Shape = tuple[int, ...]


class IRModel(BaseModel):
    """Base of every IR model: unknown fields are errors; the span is kept out of dumps."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    span: Span | None = Field(default=None, exclude=True, repr=False)
    trace: tuple[Span, ...] = Field(default=(), exclude=True, repr=False)
    """The block calls a node was expanded from, innermost first (for error notes)."""


class Node(IRModel):
    """Base of the layers."""

    name: str | None = None
    """Automatic (C1, M1, F1, ...) or given with ``as NAME``; set by :mod:`cnnspec.language.names`."""
    labelled: bool = Field(default=False, exclude=True, repr=False)


@dataclass(frozen=True)
class LayerInfo:
    """What one layer does to one image: shapes (C, H, W) or (F,), parameters, MACs."""

    layer: Any
    in_shape: Shape
    out_shape: Shape
    params: int = 0
    buffers: int = 0
    biases: int = 0
    """Of ``params``, those in tensors named ``bias`` (``bias train`` keeps them training)."""
    macs: int = 0
    """Multiply-accumulates per image (one multiply plus one add; FLOPs = 2 x MACs)."""
    padding: tuple[int, int] | str = (0, 0)
    children: tuple[tuple[LayerInfo, ...], ...] = ()
    """Concat: one tuple per branch. Residual: (body,) or (body, shortcut)."""
    projection: bool = False
    """Residual only: the shortcut is an automatic 1x1 convolution + batch norm."""

    @property
    def name(self) -> str:
        return self.layer.name


class ShapeError(Exception):
    """A layer cannot take its input; :func:`cnnspec.shapes.infer` turns it into a
    :class:`~cnnspec.errors.SpecError` at the layer's ``file:line:col``."""

    def __init__(self, message: str, hint: str | None = None, layer=None):
        super().__init__(message)
        self.message, self.hint, self.layer = message, hint, layer


class FieldError(Exception):
    """A kind's front-end check failed (``Kind.fields``): reported at the field's span."""

    def __init__(self, field: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.field, self.message, self.hint = field, message, hint


def fmt_shape(shape: Shape) -> str:
    """(C, H, W) -> 'HxWxC'; (F,) -> 'F'.

    >>> fmt_shape((64, 224, 224)), fmt_shape((4096,))
    ('224x224x64', '4096')
    """
    if len(shape) == 3:
        c, h, w = shape
        return f"{h}x{w}x{c}"
    return "x".join(map(str, shape))


def need_map(layer, shape: Shape) -> None:
    """Raises ShapeError unless ``shape`` is a feature map (C, H, W)."""
    if len(shape) != 3:
        raise ShapeError(f"{layer.kind} needs an HxWxC input, got a flat input of {shape[0]}",
                         "feature maps become flat after 'flatten'; move this layer before it")


def same_shape(layer, shape: Shape) -> LayerInfo:
    """A layer with no weights that keeps its input's shape (dropout, an activation, ...)."""
    return LayerInfo(layer, shape, shape)


ArgType = Literal["int", "num", "dims", "window", "word"]
"""How a positional argument is written: a whole number, any number, HxWxC, K / KxK, or a
keyword (its text)."""


@dataclass(frozen=True)
class Kind:
    """One layer kind, declared once in ``cnnspec/layers/<kind>.py`` as ``KIND``.

    Its ``grammar`` defines its ``rules`` (``rule: "word" ARG option*``, appended to
    grammar/cnnspec.lark by :func:`cnnspec.language.lark_parser.grammar_text`); the front end makes
    ``Raw(word, fields)`` from the positional ``args`` and the options; ``fields`` may
    rewrite them for ``model`` (the IR) and raise :class:`FieldError`; ``infer`` gives the
    output shape (C, H, W) or (F,) and the counts (raising :class:`ShapeError`); ``module``
    the ``torch.nn`` layer as data; ``title`` and ``describe`` the summary's type and
    arguments columns.
    """

    model: type[Node]
    _: KW_ONLY
    rules: tuple[str, ...]
    """Grammar rules (and the words that start them) that make this kind."""
    grammar: str
    """Lark lines defining ``rules`` (and their option lists), appended to the grammar."""
    word: str | None = None
    """The statement's word in messages and ``fields`` when it is not the rule's name."""
    prefix: str
    """Automatic names: C1, C2, ... (``cnnspec.language.names``)."""
    infer: Callable[[Any, Shape], LayerInfo]
    module: Callable[[LayerInfo], ModuleCall]
    describe: Callable[[LayerInfo], str] = lambda info: ""
    """The summary's arguments (an ``activation`` field is appended by the summary)."""
    title: Callable[[Any], str] = lambda layer: layer.kind
    """The summary's type column."""
    args: tuple[tuple[str, ArgType], ...] = ()
    """Positional arguments after the word: (field, how it is written)."""
    fields: Callable[[str, dict], dict] | None = None
    """(word, fields) -> the model's fields; raises FieldError."""
    labels: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """Field -> (its name in a sentence, a hint), for this kind's value errors."""
    residual_body_only: bool = False
    """Only a ``residual:`` body may hold it (stochastic depth drops the body)."""
    pointwise: bool = False
    """Keeps a map's shape and grid, channel by channel (batch norm, activations, ...): such
    a layer belongs to the stage of the convolution before it (``cnnspec.insight``)."""

    @property
    def words(self) -> tuple[str, ...]:
        """The ``kind`` values of the model (``maxpool``, ``avgpool`` for one model)."""
        return self.model.model_fields["kind"].annotation.__args__


def window_out(layer, shape: Shape, kernel, stride: int | tuple[int, int], pad, what: str,
               ceil_mode=False, dilation=1) -> Shape:
    """(C, Ho, Wo) of a sliding window (convolution or pooling) on a (C, H, W) map.

    Raises:
        ShapeError: a flat input, or a window larger than the padded input.
    """
    from .formulas import pool_out

    need_map(layer, shape)
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
        raise ShapeError(
            f"{what} {kernel[0]}x{kernel[1]} on a {fmt_shape(shape)} input{padded}; the {window} "
            f"is larger than the input, so the spatial size would shrink to {max(oh, 0)}x{max(ow, 0)}",
            "use a smaller kernel, add padding, or remove a pooling layer before it")
    return (c, oh, ow)
