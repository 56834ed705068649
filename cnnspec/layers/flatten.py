"""``flatten`` -> ``nn.Flatten()``: HxWxC -> C*H*W features, in PyTorch's (C, H, W) order."""

from __future__ import annotations

import math
from typing import Literal

from .base import Kind, LayerInfo, Node
from .calls import ModuleCall


class Flatten(Node):
    """``flatten`` -> ``nn.Flatten()``: HxWxC -> C*H*W features, in PyTorch's (C, H, W) order."""

    kind: Literal["flatten"] = "flatten"


GRAMMAR = """
flatten: "flatten"
"""

KIND = Kind(Flatten, grammar=GRAMMAR, rules=("flatten",), prefix="FL",
            infer=lambda layer, shape: LayerInfo(layer, shape, (math.prod(shape),)),
            module=lambda info: ModuleCall("Flatten"))
