"""Flat layers -> named layers: automatic names (C1.., M1.., F1..) and labels checked.

Convolutions (a transition is one) are C1, C2, ...; pooling layers M1, M2, ...;
dense layers F1, F2, ...; batch norms BN1..; dropouts D1..; flattens FL1..;
activations written as layers A1... ``as NAME`` gives a layer its own name.
Counters advance for labelled layers too, so ``C3`` always means the third convolution.
"""

from __future__ import annotations

from collections import Counter

from .errors import Diagnostic, SourceText

PREFIX = {
    "conv": "C",
    "maxpool": "M",
    "avgpool": "M",
    "adaptiveavgpool": "M",
    "globalavgpool": "M",
    "dense": "F",
    "batchnorm": "BN",
    "dropout": "D",
    "flatten": "FL",
    "activation": "A",
}


def assign_names(layers: list, src: SourceText) -> tuple[list, list[Diagnostic]]:
    """Give each layer a unique name; report labels that clash with each other or a name."""
    counts: Counter[str] = Counter()
    autos = []
    for layer in layers:
        counts[PREFIX[layer.kind]] += 1
        autos.append(f"{PREFIX[layer.kind]}{counts[PREFIX[layer.kind]]}")
    named, diagnostics, taken, clashed = [], [], {}, set()
    for layer, auto in zip(layers, autos):
        name = layer.name or auto
        if name != auto and name in autos:
            other = layers[autos.index(name)]
            diagnostics.append(src.diag(layer.span, f"the label '{name}' clashes with the "
                                        f"automatic name of another layer (line {other.span.line})",
                                        "choose another label"))
            clashed.add(name)  # the layer that owns the name is not a second mistake
        elif name in taken and name not in clashed:
            diagnostics.append(src.diag(layer.span, f"the name '{name}' is used twice (first at "
                                        f"line {taken[name].span.line})", "names must be unique"))
        taken.setdefault(name, layer)
        named.append(layer.model_copy(update={"name": name, "labelled": name != auto}))
    return named, diagnostics
