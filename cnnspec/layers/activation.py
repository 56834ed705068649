"""An activation written as a layer of its own (``relu``, ``gelu``, ...): the words and
their modules are the table of :mod:`cnnspec.layers.activations`."""

from __future__ import annotations

from typing import Literal

from .activations import ACTIVATIONS
from .base import ActivationName, Kind, Node, same_shape


class Activation(Node):
    """``relu``, ``tanh``, ``sigmoid``, ... written as a layer of its own."""

    kind: Literal["activation"] = "activation"
    function: ActivationName


GRAMMAR = """
activation_layer: act
"""

KIND = Kind(Activation, grammar=GRAMMAR,
            rules=("activation_layer",), word="activation", prefix="A",
            args=(("function", "word"),),
            infer=same_shape, module=lambda info: ACTIVATIONS[info.layer.function],
            title=lambda layer: layer.function, pointwise=True)
