"""``augment: ...``: random changes to training images (torchvision v2), and ``normalize``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from ..layers.base import IRModel
from .base import IRField, Setting, simple_transform, with_meta

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""torchvision's ImageNet statistics (``torchvision.transforms._presets.ImageClassification``)."""


class Normalize(IRModel):
    """``normalize [imagenet | mean M... std S...]``: inputs become (x - mean) / std per
    channel, x in [0, 1]. ``normalize`` alone (preset ``computed``): mean and std computed
    on the training images. Not written (preset None): the same, except that a network
    transferred from a cnnspec run keeps that run's statistics."""

    preset: Literal["imagenet", "computed"] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[Annotated[float, Field(ge=1e-6)], ...] | None = None


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


GRAMMAR = """
// `augment: hflip, crop 32 pad 4` on one line, or one transform per indented line.
augment: "augment" ":" (augment_list _NL | _NL _INDENT (augment_list _NL)+ _DEDENT)
augment_list: augmentation ("," augmentation)*
?augmentation: hflip | vflip | crop | rotate | random_resized_crop | color_jitter
             | random_erasing | normalize | mixup | cutmix
hflip: "hflip"
vflip: "vflip"
crop: "crop" INT ("pad" INT)?
rotate: "rotate" number
random_resized_crop: "random_resized_crop" INT? scale?
scale: "scale" number number
color_jitter: "color_jitter" jitter_opt+
?jitter_opt: brightness | contrast | saturation | hue
brightness: "brightness" number
contrast: "contrast" number
saturation: "saturation" number
hue: "hue" number
random_erasing: "random_erasing" number scale?
// Batch augmentations (torchvision v2.MixUp / v2.CutMix): mix pairs of images and labels.
mixup: "mixup" number
cutmix: "cutmix" number
// `normalize` alone: mean and std computed on the training images (the default);
// `normalize imagenet`: torchvision's ImageNet statistics; or numbers, one per channel.
normalize: "normalize" (IMAGENET | norm_mean norm_std)?
norm_mean: "mean" number+
norm_std: "std" number+
IMAGENET: "imagenet"
"""


def _aug(self, kind: str, meta, opts=()):
    raw = self._raw_node(kind, self._mspan(meta), {"kind": kind})
    for o in opts:
        raw.set(o)
    return raw


@with_meta
def _augment(self, meta, items):
    return self._mopt("augment", meta, [a for group in items for a in group])


def _flip(kind):
    return with_meta(lambda self, meta, items: _aug(self, kind, meta))


@with_meta
def _crop(self, meta, items):
    raw = self._raw_node("crop", self._mspan(meta), {"kind": "crop", "size": self._int(items[0])},
                         {"size": self._tspan(items[0])})
    if len(items) > 1:
        raw.set(self._opt("pad", items[1], self._int(items[1])))
    return raw


@with_meta
def _rotate(self, meta, items):
    return self._raw_node("rotate", self._mspan(meta),
                          {"kind": "rotate", "degrees": self._num(items[0])},
                          {"degrees": self._tspan(items[0])})


def _pair(key):
    return lambda self, items: self._opt(key, items[0], (self._num(items[0]), self._num(items[1])))


def _numbers(key):
    return lambda self, items: self._opt(key, items[0], tuple(self._num(t) for t in items))


@with_meta
def _random_resized_crop(self, meta, items):
    opts = [self._opt("size", t, self._int(t)) if not self._is_opt(t) else t for t in items]
    return _aug(self, "random_resized_crop", meta, opts)


@with_meta
def _random_erasing(self, meta, items):
    return _aug(self, "random_erasing", meta,
                [self._opt("p", items[0], self._num(items[0])), *items[1:]])


def _alpha_of(kind):
    return with_meta(lambda self, meta, items: _aug(
        self, kind, meta, [self._opt("alpha", items[0], self._num(items[0]))]))


@with_meta
def _normalize(self, meta, items):
    raw = _aug(self, "normalize", meta)
    if len(items) == 1:  # imagenet
        raw.set(self._opt("preset", items[0], str(items[0])))
    elif not items:  # said explicitly: computed on this run's training images
        raw.set(self._mopt("preset", meta, "computed"))
    for o in items[1:] if len(items) == 1 else items:
        raw.set(o)
    return raw


def _augmentation(v, raw):
    scale = raw.fields.get("scale")
    if scale and None not in scale and scale[0] > scale[1]:
        v.error_at(raw, raw.spans["scale"], f"{raw.kind}: scale {scale[0]:g} {scale[1]:g} "
                   "must go from the smaller to the larger fraction",
                   f"write scale {scale[1]:g} {scale[0]:g}")
        return None
    return v.model(Augmentation, raw, raw.fields, raw.kind)


def check(v, f, raw) -> None:
    """``normalize`` once, taken out of the list; each transform checked at its place."""
    if "augment" not in f:
        return
    norms = [a for a in f["augment"] if a.kind == "normalize"]
    for extra in norms[1:]:
        v.error(extra.span, "augment: normalize is given twice", "keep one of them")
    if norms:  # checked even when repeated, so that one mistake does not hide another
        model = v.model(Normalize, norms[0], {k: val for k, val in norms[0].fields.items()
                                              if k != "kind"}, "normalize")
        f["normalize"] = None if norms[1:] else model
    f["augment"] = [_augmentation(v, a) for a in f["augment"] if a.kind != "normalize"]


SETTINGS = (
    Setting(
        "train", ("augment",), GRAMMAR,
        (IRField("augment", list[Augmentation], []), IRField("normalize", Normalize, Normalize())),
        (("`augment: ...`", "random changes to training images, and normalisation, see below",
          "none"),),
        transform={"augment": _augment, "augment_list": lambda self, items: list(items),
                   "hflip": _flip("hflip"), "vflip": _flip("vflip"), "crop": _crop,
                   "rotate": _rotate, "scale": _pair("scale"),
                   "random_resized_crop": _random_resized_crop,
                   "color_jitter": with_meta(lambda self, meta, items: _aug(
                       self, "color_jitter", meta, items)),
                   "random_erasing": _random_erasing, "mixup": _alpha_of("mixup"),
                   "cutmix": _alpha_of("cutmix"), "normalize": _normalize,
                   "norm_mean": _numbers("mean"), "norm_std": _numbers("std"),
                   **{k: simple_transform(k, "num")
                      for k in ("brightness", "contrast", "saturation", "hue")}},
        check=check,
        labels={"size": ("the crop size", None), "degrees": ("the rotation", "degrees in [0, 180]"),
                "hue": ("the hue", "hue lies in [0, 0.5]"),
                "scale": ("the scale", "two area fractions in (0, 1], e.g. scale 0.08 1.0"),
                "std": ("the std", "standard deviations are positive")}),
)
