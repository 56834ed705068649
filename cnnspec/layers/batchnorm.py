"""``batchnorm [eps E] [activation]`` -> ``nn.BatchNorm2d`` on HxWxC maps, ``nn.BatchNorm1d``
on flat ones (Ioffe & Szegedy 2015)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import ActivationName, Kind, LayerInfo, Node
from .calls import ModuleCall
from .formulas import batchnorm_counts


class BatchNorm(Node):
    """``batchnorm`` -> ``nn.BatchNorm2d`` on HxWxC maps, ``nn.BatchNorm1d`` on flat ones."""

    kind: Literal["batchnorm"] = "batchnorm"
    activation: ActivationName | None = None
    eps: Annotated[float, Field(gt=0.0)] = 1e-5


def infer(layer: BatchNorm, shape) -> LayerInfo:
    params, buffers = batchnorm_counts(shape[0])
    return LayerInfo(layer, shape, shape, params=params, buffers=buffers, biases=shape[0])


def module(info: LayerInfo) -> ModuleCall:
    cls = "BatchNorm2d" if len(info.in_shape) == 3 else "BatchNorm1d"
    kw = {"eps": info.layer.eps} if info.layer.eps != 1e-5 else {}
    return ModuleCall(cls, (info.in_shape[0],), kw)


GRAMMAR = """
batchnorm: "batchnorm" batchnorm_opt*
?batchnorm_opt: eps | activation
"""

KIND = Kind(BatchNorm, grammar=GRAMMAR,
            rules=("batchnorm",), prefix="BN", infer=infer, module=module,
            describe=lambda info: f"eps {info.layer.eps:g}" if info.layer.eps != 1e-5 else "",
            pointwise=True,
            labels={"eps": ("eps", "a small number added to the variance, e.g. eps 1e-5")})
