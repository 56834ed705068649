"""The intermediate representation: Pydantic models of the language, defined once.

Every model forbids unknown fields. Spans (where a node came from in the source)
ride along for error messages and are left out of dumps and comparisons of dumps.
Sizes follow the language (height x width x channels); tensors built from them are
PyTorch's (N, C, H, W).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

from .errors import Span

if TYPE_CHECKING:
    from torch import nn

    from .shapes import ShapedSpec

ActivationName = Literal["relu", "tanh", "sigmoid", "softmax", "leakyrelu", "gelu", "silu"]
Padding = Literal["same", "valid"] | NonNegativeInt | None


class IRModel(BaseModel):
    """Base of every IR model: unknown fields are errors; the span is kept out of dumps."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    span: Span | None = Field(default=None, exclude=True, repr=False)
    trace: tuple[Span, ...] = Field(default=(), exclude=True, repr=False)
    """The block calls a node was expanded from, innermost first (for error notes)."""


class Node(IRModel):
    """Base of the layers."""

    name: str | None = None
    """Automatic (C1, M1, F1, ...) or given with ``as NAME``; set by :mod:`cnnspec.expand`."""
    labelled: bool = Field(default=False, exclude=True, repr=False)


class Conv(Node):
    """``conv KxKxF`` or ``transition 1x1xF`` -> ``nn.Conv2d``."""

    kind: Literal["conv"] = "conv"
    kernel_size: tuple[PositiveInt, PositiveInt]
    out_channels: PositiveInt
    stride: PositiveInt = 1
    padding: Padding = None
    """None: half the (dilated) kernel, ``dilation * (k - 1) // 2``; 'same', 'valid' or N."""
    bias: bool = True
    activation: ActivationName | None = None
    transition: bool = False
    groups: PositiveInt = 1
    dilation: PositiveInt = 1


class Pool(Node):
    """``maxpool K`` / ``avgpool K`` -> ``nn.MaxPool2d`` / ``nn.AvgPool2d``; stride defaults to K."""

    kind: Literal["maxpool", "avgpool"]
    kernel_size: tuple[PositiveInt, PositiveInt]
    stride: PositiveInt | None = None
    padding: NonNegativeInt = 0
    ceil_mode: bool = False
    """Round the output size up (``ceil``), as GoogLeNet's pools do."""


class AdaptiveAvgPool(Node):
    """``adaptiveavgpool HxW`` -> ``nn.AdaptiveAvgPool2d((H, W))``."""

    kind: Literal["adaptiveavgpool"] = "adaptiveavgpool"
    output_size: tuple[PositiveInt, PositiveInt]


class GlobalAvgPool(Node):
    """``globalavgpool`` -> ``nn.AdaptiveAvgPool2d(1)``: HxWxC -> 1x1xC."""

    kind: Literal["globalavgpool"] = "globalavgpool"


class BatchNorm(Node):
    """``batchnorm`` -> ``nn.BatchNorm2d`` on HxWxC maps, ``nn.BatchNorm1d`` on flat ones."""

    kind: Literal["batchnorm"] = "batchnorm"
    activation: ActivationName | None = None
    eps: Annotated[float, Field(gt=0.0)] = 1e-5


class LRN(Node):
    """``lrn N [alpha A] [beta B] [k K]`` -> ``nn.LocalResponseNorm(N, A, B, K)`` across N channels.

    PyTorch divides ``alpha`` by ``N``: the AlexNet paper's alpha = 1e-4 is ``alpha 5e-4`` here
    for N = 5 (Krizhevsky et al. 2012, section 3.3; ``torch.nn.LocalResponseNorm`` docs).
    """

    kind: Literal["lrn"] = "lrn"
    size: PositiveInt
    alpha: Annotated[float, Field(ge=0.0)] = 1e-4
    beta: Annotated[float, Field(ge=0.0)] = 0.75
    k: Annotated[float, Field(gt=0.0)] = 1.0


class Dropout(Node):
    """``dropout P`` -> ``nn.Dropout(p=P)``; P is the probability of zeroing a unit."""

    kind: Literal["dropout"] = "dropout"
    p: Annotated[float, Field(ge=0.0, lt=1.0)]


class Flatten(Node):
    """``flatten`` -> ``nn.Flatten()``: HxWxC -> C*H*W features, in PyTorch's (C, H, W) order."""

    kind: Literal["flatten"] = "flatten"


class Dense(Node):
    """``dense N`` -> ``nn.Linear(in_features, N)``."""

    kind: Literal["dense"] = "dense"
    out_features: PositiveInt
    bias: bool = True
    activation: ActivationName | None = None


class Activation(Node):
    """``relu``, ``tanh``, ``sigmoid`` or ``softmax`` written as a layer of its own."""

    kind: Literal["activation"] = "activation"
    function: ActivationName


class Concat(Node):
    """``concat:`` with ``branch:`` children (Inception): every branch sees the same input and
    their outputs are concatenated on channels; ``identity`` is a branch that passes the input
    (DenseNet)."""

    kind: Literal["concat"] = "concat"
    branches: list[list[Layer]]


class Residual(Node):
    """``residual:`` (ResNet): ``body(x) + shortcut(x)``. Without ``shortcut:``, the shortcut is
    ``x`` itself, or a 1x1 convolution (bias off) + batch norm when the body changes the
    channels or the size, as torchvision's ResNet ``downsample``."""

    kind: Literal["residual"] = "residual"
    body: list[Layer]
    shortcut: list[Layer] | None = None


Layer = Annotated[
    Conv | Pool | AdaptiveAvgPool | GlobalAvgPool | BatchNorm | LRN | Dropout | Flatten | Dense
    | Activation | Concat | Residual,
    Field(discriminator="kind"),
]
Concat.model_rebuild()
Residual.model_rebuild()


class InputShape(IRModel):
    """``input HxWxC``."""

    height: PositiveInt
    width: PositiveInt
    channels: PositiveInt

    def chw(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


class Optimizer(IRModel):
    """``optimizer sgd|adam lr X [momentum M]`` -> ``torch.optim.SGD`` / ``torch.optim.Adam``."""

    name: Literal["sgd", "adam"] = "adam"
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0


class Milestone(IRModel):
    """One line of ``schedule step:``: from ``epoch`` on (0-based), learning rate ``lr``."""

    epoch: NonNegativeInt
    lr: Annotated[float, Field(gt=0.0)]


class Augmentation(IRModel):
    """One transform of ``augment:``, applied to training images only.

    hflip / vflip: flip with probability 0.5; crop N pad P: pad by P then random NxN crop
    (``torchvision.transforms.v2.RandomCrop``); rotate D: random rotation in [-D, D] degrees.
    """

    kind: Literal["hflip", "vflip", "crop", "rotate"]
    size: PositiveInt | None = None
    pad: NonNegativeInt = 0
    degrees: Annotated[float, Field(ge=0.0, le=180.0)] | None = None


class TrainConfig(IRModel):
    """The ``train:`` section. Defaults are used for anything not written."""

    epochs: PositiveInt = 10
    batch: PositiveInt = 64
    optimizer: Optimizer = Optimizer()
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    schedule: list[Milestone] = []
    split: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.8
    """Fraction of the images used for training; the rest validate (stratified by class)."""
    seed: NonNegativeInt = 0
    augment: list[Augmentation] = []
    data: str | None = None

    def lr_at(self, epoch: int) -> float:
        """Learning rate of a 0-based epoch under the step schedule.

        >>> t = TrainConfig(optimizer=Optimizer(lr=0.1), schedule=[Milestone(epoch=20, lr=0.01)])
        >>> t.lr_at(19), t.lr_at(20)
        (0.1, 0.01)
        """
        lr = self.optimizer.lr
        for m in self.schedule:
            if epoch >= m.epoch:
                lr = m.lr
        return lr


class Spec(BaseModel):
    """A validated network: name, input, layers in order (named), training settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    input: InputShape
    layers: list[Layer]
    train: TrainConfig = TrainConfig()
    file: str = Field(default="<string>", exclude=True)
    source: str = Field(default="", exclude=True, repr=False)
    sources: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)
    """Texts of included files, by path (to quote their lines in errors)."""

    @functools.cached_property
    def shaped(self) -> ShapedSpec:
        """Shapes, parameters and MACs of every layer (computed once, no tensors)."""
        from .shapes import infer

        return infer(self)

    def build(self) -> nn.Module:
        """The PyTorch module: input (N, C, H, W) float32 -> output (N, features)."""
        from .build import build

        return build(self.shaped)
