"""``stochastic_depth P``: in training, the residual body's output of each image is dropped
with probability P (and the kept ones scaled by 1 / (1 - P)); the identity at inference
(Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016). Written as the last layer
of a ``residual:`` body, as torchvision's EfficientNet and ConvNeXt place it:
``torchvision.ops.StochasticDepth(P, "row")``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Kind, Node, same_shape
from .calls import ModuleCall


class StochasticDepth(Node):
    """``stochastic_depth P`` -> ``torchvision.ops.StochasticDepth(P, "row")``."""

    kind: Literal["stochastic_depth"] = "stochastic_depth"
    p: Annotated[float, Field(ge=0.0, lt=1.0)]


GRAMMAR = """
stochastic_depth: "stochastic_depth" number
"""

KIND = Kind(StochasticDepth, grammar=GRAMMAR, rules=("stochastic_depth",), prefix="SD",
            args=(("p", "num"),), infer=same_shape, residual_body_only=True,
            module=lambda info: ModuleCall("StochasticDepth", (info.layer.p, "row"),
                                           lib="torchvision.ops"),
            describe=lambda info: f"p={info.layer.p:g}, per image",
            labels={"p": ("the drop probability", ("a probability in [0, 1), e.g. 0.1; "
                          "deeper blocks usually get more"))})
