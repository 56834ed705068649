"""``dropout P`` -> ``nn.Dropout(p=P)`` (Srivastava et al. 2014): zeroes each unit with
probability P in training (scaling the rest by 1 / (1 - P)); the identity at inference."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Kind, Node, same_shape
from .calls import ModuleCall


class Dropout(Node):
    """``dropout P`` -> ``nn.Dropout(p=P)``; P is the probability of zeroing a unit."""

    kind: Literal["dropout"] = "dropout"
    p: Annotated[float, Field(ge=0.0, lt=1.0)]


GRAMMAR = """
dropout: "dropout" number
"""

KIND = Kind(Dropout, grammar=GRAMMAR,
            rules=("dropout",), prefix="D", args=(("p", "num"),), infer=same_shape,
            module=lambda info: ModuleCall("Dropout", (info.layer.p,)),
            describe=lambda info: f"p={info.layer.p:g}", pointwise=True,
            labels={"p": ("the dropout probability", ("dropout P zeroes each unit with "
                          "probability P in [0, 1); 0.3 and 0.5 are the usual values"))})
