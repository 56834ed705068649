"""``dropout P`` -> ``nn.Dropout(p=P)`` (Srivastava et al. 2014): zeroes each unit with
probability P in training (scaling the rest by 1 / (1 - P)); the identity at inference."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import FieldError, Kind, Node, same_shape
from .calls import ModuleCall


class Dropout(Node):
    """``dropout P`` -> ``nn.Dropout(p=P)``; P is the probability of zeroing a unit."""

    kind: Literal["dropout"] = "dropout"
    p: Annotated[float, Field(ge=0.0, lt=1.0)]


GRAMMAR = """
dropout: "dropout" number
"""

def _fields(word: str, fields: dict) -> dict:
    """``dropout 50``: a percentage where a probability is meant (a whole number from 10 to
    100; ``dropout 1.5`` gets the range's own message), said with the fix."""
    p = fields.get("p")
    if isinstance(p, (int, float)) and 10 <= p <= 100 and float(p).is_integer():
        raise FieldError("p", f"dropout {p:g}: the dropout probability is a fraction in "
                         f"[0, 1), not a percentage", f"write dropout {p / 100:g}")
    return fields


KIND = Kind(Dropout, grammar=GRAMMAR, fields=_fields,
            rules=("dropout",), prefix="D", args=(("p", "num"),), infer=same_shape,
            module=lambda info: ModuleCall("Dropout", (info.layer.p,)),
            describe=lambda info: f"p={info.layer.p:g}", pointwise=True,
            labels={"p": ("the dropout probability", ("dropout P zeroes each unit with "
                          "probability P in [0, 1); 0.3 and 0.5 are the usual values"))})
