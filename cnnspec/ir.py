"""The intermediate representation: Pydantic models of the language, defined once.

Every model forbids unknown fields. Spans (where a node came from in the source)
ride along for error messages and are left out of dumps and comparisons of dumps.
Sizes follow the language (height x width x channels); tensors built from them are
PyTorch's (N, C, H, W).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

from .errors import Span
from .layers import KINDS
from .layers.activation import Activation  # noqa: F401
from .layers.adaptiveavgpool import AdaptiveAvgPool  # noqa: F401
from .layers.base import ActivationName, IRModel, Node  # noqa: F401
from .layers.batchnorm import BatchNorm  # noqa: F401
from .layers.conv import Conv  # noqa: F401
from .layers.dense import Dense  # noqa: F401
from .layers.dropout import Dropout  # noqa: F401
from .layers.flatten import Flatten  # noqa: F401
from .layers.globalavgpool import GlobalAvgPool  # noqa: F401
from .layers.lrn import LRN  # noqa: F401
from .layers.pool import Pool  # noqa: F401

# The leaf layer models are declared with their kinds (cnnspec/layers/<kind>.py) and
# re-exported here under their old names; the Layer union below takes every kind there is.


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
    Union[tuple(k.model for k in KINDS) + (Concat, Residual)],  # noqa: UP007 - built from data
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


Metric = Literal["val_loss", "val_accuracy", "train_loss", "train_accuracy"]
"""What callbacks and ``schedule plateau`` watch; losses improve downwards, accuracies upwards."""
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32 (numpy.finfo(numpy.float32).max): optimizer settings live in float32
tensors, so a larger one would overflow to inf at the first step."""
Rate = Annotated[float, Field(gt=0.0, lt=FLOAT32_MAX)]
"""A positive setting that must fit in float32: learning rates, eps, norm limits."""


class Optimizer(IRModel):
    """``optimizer sgd|adam|adamw|rmsprop lr X [momentum M] [nesterov] [betas B1 B2] [eps E]
    [alpha A]`` -> ``torch.optim.SGD`` / ``Adam`` / ``AdamW`` / ``RMSprop`` (PyTorch docs,
    torch.optim). Options left out take PyTorch's defaults; which option belongs to which
    optimizer is checked in :mod:`cnnspec.language.validate_sections` (``OPTIMIZER_OPTIONS``)."""

    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    lr: Rate = 1e-3
    momentum: Fraction = 0.0
    nesterov: bool = False
    betas: tuple[Fraction, Fraction] | None = None
    eps: Rate | None = None
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    """RMSprop's smoothing constant (PyTorch default 0.99)."""


class Milestone(IRModel):
    """One line of ``schedule step:``: from ``epoch`` on, learning rate ``lr``. Epochs count
    from 1, as training prints them (see :mod:`cnnspec.schedule`)."""

    epoch: PositiveInt
    lr: Rate


class Schedule(IRModel):
    """``schedule KIND ...``: the learning rate by epoch (formulas in :mod:`cnnspec.schedule`)."""

    kind: Literal["step", "multistep", "cosine", "onecycle", "plateau"]
    steps: list[Milestone] = []
    """step: from each epoch on, its learning rate."""
    milestones: list[PositiveInt] = []
    """multistep: the epochs (from 1) from which the rate is multiplied by ``factor`` once
    more (PyTorch's ``MultiStepLR`` milestone m is epoch m + 1 here)."""
    factor: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    """multistep and plateau: the multiplier (PyTorch's gamma / factor)."""
    min_lr: Annotated[float, Field(ge=0.0, lt=FLOAT32_MAX)] = 0.0
    """cosine: the rate it anneals towards (eta_min); plateau: the floor."""
    monitor: Metric = "val_loss"
    """plateau: the metric watched."""
    patience: NonNegativeInt = 10
    """plateau: epochs without improvement before the rate is cut (PyTorch default 10)."""
    warmup: NonNegativeInt = 0
    """Epochs of linear warmup before the schedule proper."""


class EarlyStop(IRModel):
    """``early_stop METRIC patience N [min_delta D]``: stop after N epochs in which METRIC
    did not improve on its best by more than D (Keras ``EarlyStopping``)."""

    monitor: Metric
    patience: PositiveInt
    min_delta: Annotated[float, Field(ge=0.0)] = 0.0


class Checkpoint(IRModel):
    """``checkpoint best [METRIC] | last | every N``: which weights a run keeps besides
    ``last.ckpt`` (always written, for --resume)."""

    best: Metric | None = "val_accuracy"
    """``best.safetensors`` holds the epoch best by this metric; None (``last``): not kept."""
    every: PositiveInt | None = None
    """Also keep ``epoch-NNN.safetensors`` every N epochs."""


class Normalize(IRModel):
    """``normalize [imagenet | mean M... std S...]``: inputs become (x - mean) / std per
    channel, x in [0, 1]. ``normalize`` alone (preset ``computed``): mean and std computed
    on the training images. Not written (preset None): the same, except that a network
    transferred from a cnnspec run keeps that run's statistics."""

    preset: Literal["imagenet", "computed"] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[Annotated[float, Field(ge=1e-6)], ...] | None = None


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""torchvision's ImageNet statistics (``torchvision.transforms._presets.ImageClassification``)."""


class Augmentation(IRModel):
    """One transform of ``augment:``, applied to training images only (torchvision v2).

    hflip / vflip: flip with probability 0.5; ``crop N pad P``: pad by P then a random NxN
    crop (``RandomCrop``); ``rotate D``: random rotation in [-D, D] degrees;
    ``random_resized_crop [N] [scale A B]``: a random area fraction in [A, B] (default
    0.08-1) resized to N (default: the input size) (``RandomResizedCrop``, Szegedy et al.
    2015); ``color_jitter brightness B contrast C saturation S hue H`` (``ColorJitter``);
    ``random_erasing P [scale A B]``: with probability P, a rectangle of A-B of the area is
    zeroed (``RandomErasing``, Zhong et al. 2020). Batch augmentations, applied to whole
    normalised batches with their labels: ``mixup A`` (``MixUp``, Zhang et al. 2018) and
    ``cutmix A`` (``CutMix``, Yun et al. 2019), A the Beta distribution's alpha; with both,
    each batch uses one of them at random.
    """

    kind: Literal["hflip", "vflip", "crop", "rotate", "random_resized_crop", "color_jitter",
                  "random_erasing", "mixup", "cutmix"]
    size: PositiveInt | None = None
    pad: NonNegativeInt = 0
    degrees: Annotated[float, Field(ge=0.0, le=180.0)] | None = None
    scale: tuple[Annotated[float, Field(gt=0.0, le=1.0)],
                 Annotated[float, Field(gt=0.0, le=1.0)]] | None = None
    brightness: Annotated[float, Field(ge=0.0)] | None = None
    contrast: Annotated[float, Field(ge=0.0)] | None = None
    saturation: Annotated[float, Field(ge=0.0)] | None = None
    hue: Annotated[float, Field(ge=0.0, le=0.5)] | None = None
    p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    alpha: Annotated[float, Field(gt=0.0)] | None = None

    @property
    def batched(self) -> bool:
        """Applied to whole batches with their labels (mixup, cutmix)."""
        return self.kind in ("mixup", "cutmix")


class TrainConfig(IRModel):
    """The ``train:`` section. Defaults are used for anything not written."""

    epochs: PositiveInt = 10
    batch: PositiveInt = 64
    optimizer: Optimizer = Optimizer()
    weight_decay: Annotated[float, Field(ge=0.0, lt=FLOAT32_MAX)] = 0.0
    """L2 penalty (``weight_decay`` of torch.optim; decoupled for AdamW)."""
    no_decay: list[Literal["bias", "batchnorm"]] = []
    """Parameters exempt from weight decay: biases, batch-norm weights and biases."""
    label_smoothing: Fraction = 0.0
    """``nn.CrossEntropyLoss(label_smoothing=...)`` (Szegedy et al. 2016, section 7)."""
    clip_grad_norm: Rate | None = None
    """Clip the global L2 norm of the gradients to this (``nn.utils.clip_grad_norm_``)."""
    schedule: Schedule | None = None
    split: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.8
    """Fraction of the images used for training; the rest validate (stratified by class)."""
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    augment: list[Augmentation] = []
    normalize: Normalize = Normalize()
    early_stop: EarlyStop | None = None
    checkpoint: Checkpoint = Checkpoint()
    data: str | None = None
    workers: Annotated[int, Field(ge=0, le=256)] | None = None
    """DataLoader worker processes (None: from the usable cores, see cnnspec.data.pipeline)."""
    threads: Annotated[int, Field(ge=1, le=1024)] | None = None
    """PyTorch intra-op threads (None: see cnnspec.training.settings.choose_threads)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Mixed precision: ``torch.autocast`` in bfloat16 or float16 (fp16 with a gradient
    scaler); weights and optimizer state stay float32 (cnnspec.training.performance)."""
    compile: bool = False
    """``torch.compile`` the training step's forward (eager, with a message, where it cannot)."""
    sync_batchnorm: bool = False
    """Under torchrun, batch-norm statistics over the global batch (``nn.SyncBatchNorm``)."""
    tensorboard: bool = False
    """``log tensorboard``: TensorBoard event files in the run folder's ``tensorboard/``
    (cnnspec.training.tensorboard)."""

    @model_validator(mode="after")
    def _warmup_fits(self):
        if self.schedule is not None and self.schedule.warmup >= self.epochs:
            raise ValueError(f"warmup {self.schedule.warmup} must be shorter than the run "
                             f"({self.epochs} epochs)")
        if self.schedule is not None and self.schedule.min_lr >= self.optimizer.lr:
            raise ValueError(f"schedule {self.schedule.kind}: min_lr {self.schedule.min_lr:g} "
                             f"must be below the optimizer's lr {self.optimizer.lr:g}")
        return self


class Freeze(IRModel):
    """``freeze up to L`` | ``freeze all [except A, B]`` | ``train last N conv``."""

    mode: Literal["up_to", "all_except", "last_conv"]
    layer: str | None = None
    keep: list[str] = []
    convs: PositiveInt | None = None
    name_spans: dict[str, Span] = Field(default_factory=dict, exclude=True, repr=False)
    """Where each layer name is written, for error carets."""


class Unfreeze(IRModel):
    """``unfreeze A, B at epoch E``: the layers train from epoch E on (epochs count from 1,
    as training prints them)."""

    layers: list[str]
    epoch: PositiveInt
    name_spans: dict[str, Span] = Field(default_factory=dict, exclude=True, repr=False)


class Transfer(IRModel):
    """The ``transfer:`` section (see :mod:`cnnspec.transfer`)."""

    source: str
    """``from``: a run folder, .safetensors, or .pth/.pt state_dict (relative to the spec)."""
    freeze: Freeze | None = None
    unfreeze: list[Unfreeze] = []
    classes: Annotated[int, Field(ge=2)] | Literal["data"] | None = None
    """The new head's outputs: a number, or the number of classes of the data."""
    bn_train: bool = False
    """Frozen layers' batch norms keep updating their running statistics."""
    bias_train: bool = False
    """Frozen layers' biases keep training, their weights stay (``bias train``; bias-only
    fine-tuning, BitFit: Ben Zaken, Ravfogel & Goldberg, ACL 2022)."""
    lr_backbone: Rate | None = None
    lr_head: Rate | None = None
    setting_spans: dict[str, Span] = Field(default_factory=dict, exclude=True, repr=False)
    """Where each setting is written (``source``: the ``from`` line), for error carets."""


class Spec(BaseModel):
    """A validated network: name, input, layers in order (named), training settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    input: InputShape
    layers: list[Layer]
    train: TrainConfig = TrainConfig()
    transfer: Transfer | None = None
    file: str = Field(default="<string>", exclude=True)
    source: str = Field(default="", exclude=True, repr=False)
    sources: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)
    """Texts of included files, by path (to quote their lines in errors)."""


SCHEMA_ID = "https://cnnspec.dev/schema/spec.json"


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a validated spec as JSON: what ``cnnspec check
    --format json`` prints and a run folder's ``spec.json`` holds (layers as written, named,
    blocks and repeats unrolled). Generated by Pydantic from :class:`Spec`, so it cannot
    drift from the IR."""
    schema = Spec.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **schema,
            "description": "A cnnspec network spec after parsing, expansion and validation "
                           "(cnnspec check --format json). " + schema.get("description", "")}
