"""What named weights expect of a spec's images, against what the spec does: the input
size against the crop size, the normalisation, the channels (see :mod:`cnnspec.hub` for
where the expectations come from: torchvision's weights registry)."""

from __future__ import annotations

from .hub import Named


def input_statistics(named: Named, channels: int) -> tuple[list[float], list[float]]:
    """The weights' mean and std for an input of ``channels``: per RGB channel, or their
    averages for a grayscale input (whose first convolution sums the RGB filters, so it
    sees one channel standardised as the three were on average)."""
    mean, std = list(named.preprocessing.mean), list(named.preprocessing.std)
    if channels == 1:
        return [sum(mean) / 3], [sum(std) / 3]
    return mean, std


def preprocessing_notes(spec, named: Named) -> list[tuple[object, str]]:
    """Where ``spec`` prepares its images otherwise than ``named``'s weights were trained
    with, as (span, warning): the input size against the crop size, a ``normalize`` line
    other than the weights' statistics, a grayscale input (the first convolution adapted)."""
    prep, t, cfg = named.preprocessing, spec.transfer, spec.train
    at_from = t.setting_spans.get("source", t.span)
    notes = []
    h, w, c = spec.input.height, spec.input.width, spec.input.channels
    if (h, w) != (prep.crop, prep.crop):
        cost = ("smaller images than the weights learnt on: their features are coarser "
                "at this size, and accuracy usually drops" if h * w < prep.crop ** 2 else
                "larger images than the weights learnt on: more MACs per image, often a "
                "little more accuracy")
        notes.append((spec.input.span or at_from,
                      (f"input {h}x{w}x{c}: {named.name} was trained on {prep.crop}x"
                       f"{prep.crop} crops (resized to {prep.resize}, {prep.interpolation}); "
                       f"{cost}")))
    norm = cfg.normalize
    if norm.preset == "computed" or (norm.mean is not None and tuple(norm.mean) != prep.mean[:c]):
        notes.append((norm.span or at_from,
                      (f"normalize: {named.name} expects mean {_fmt(prep.mean)} std "
                       f"{_fmt(prep.std)}, what the transferred layers learnt with; other "
                       "statistics shift every input they see (leave normalize out to use "
                       "the weights' own)")))
    if c == 1:
        notes.append((spec.input.span or at_from,
                      (f"input with 1 channel: the first convolution of {named.name} (RGB) "
                       "is adapted by summing its filters over the 3 channels (as timm's "
                       "adapt_input_conv), and the inputs standardised with the channels' "
                       "average mean and std")))
    return notes


def _fmt(values) -> str:
    return " ".join(f"{v:g}" for v in values)
