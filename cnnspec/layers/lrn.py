"""``lrn N [alpha A] [beta B] [k K]`` -> ``nn.LocalResponseNorm`` (AlexNet)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from .base import Kind, LayerInfo, Node, need_map
from .calls import ModuleCall


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


def infer(layer: LRN, shape) -> LayerInfo:
    need_map(layer, shape)
    return LayerInfo(layer, shape, shape)


def module(info: LayerInfo) -> ModuleCall:
    layer = info.layer
    return ModuleCall("LocalResponseNorm", (layer.size,),
                      {"alpha": layer.alpha, "beta": layer.beta, "k": layer.k})


GRAMMAR = """
lrn: "lrn" int lrn_opt*
?lrn_opt: alpha | beta | lrn_k
"""

KIND = Kind(LRN, grammar=GRAMMAR,
            rules=("lrn",), prefix="N", args=(("size", "int"),), infer=infer, module=module,
            describe=lambda info: (f"size {info.layer.size}, alpha {info.layer.alpha:g}, "
                                   f"beta {info.layer.beta:g}, k {info.layer.k:g}"),
            pointwise=True,
            labels={"size": ("the number of channels", ("lrn N normalises across N neighbouring "
                                                       "channels; AlexNet uses lrn 5"))})
