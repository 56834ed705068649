"""``groupnorm G [eps E] [activation]``: group normalisation (Wu & He, "Group
Normalization", ECCV 2018): the C channels of an HxWxC map are split into G groups, and
each group of each image is normalised over its channels and positions, then scaled and
shifted per channel. Independent of the batch size (no running statistics), unlike batch
norm; G = 1 normalises each image over all of (C, H, W), G = C each channel on its own
(instance norm). ``nn.GroupNorm(G, C)``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from .base import ActivationName, Kind, LayerInfo, Node, ShapeError, need_map
from .calls import ModuleCall


class GroupNorm(Node):
    """``groupnorm G`` -> ``nn.GroupNorm(G, C)``."""

    kind: Literal["groupnorm"] = "groupnorm"
    groups: PositiveInt
    eps: Annotated[float, Field(gt=0.0)] = 1e-5
    activation: ActivationName | None = None


def infer(layer: GroupNorm, shape) -> LayerInfo:
    need_map(layer, shape)
    if shape[0] % layer.groups:
        divisors = [d for d in range(1, min(shape[0], 64) + 1) if shape[0] % d == 0]
        raise ShapeError(f"groupnorm {layer.groups}: the groups must divide the {shape[0]} "
                         "channels", f"{shape[0]} channels split into "
                         f"{', '.join(map(str, divisors))}"
                         f"{' ...' if shape[0] > 64 else ''} groups; 32 is usual (Wu & He 2018)")
    return LayerInfo(layer, shape, shape, params=2 * shape[0], biases=shape[0])


GRAMMAR = """
groupnorm: "groupnorm" int groupnorm_opt*
?groupnorm_opt: eps | activation
"""

KIND = Kind(GroupNorm, grammar=GRAMMAR, rules=("groupnorm",), prefix="GN",
            args=(("groups", "int"),), infer=infer, pointwise=True,
            module=lambda info: ModuleCall(
                "GroupNorm", (info.layer.groups, info.in_shape[0]),
                {"eps": info.layer.eps} if info.layer.eps != 1e-5 else {}),
            describe=lambda info: f"{info.layer.groups} groups"
            + (f", eps {info.layer.eps:g}" if info.layer.eps != 1e-5 else ""),
            labels={"groups": ("the number of groups", ("groupnorm G splits the channels into "
                               "G groups; 32 is usual"))})
