"""``cnnspec summary``: one row per layer and the totals, computed from the shapes as data.

Nothing is built and no tensor is allocated: the numbers come from
:mod:`cnnspec.shapes`, and a test holds them equal to ``sum(p.numel())`` of the built
module. Rendering (rich table, markdown, CSV, JSON) is separate from the data.

JSON schema (``--format json``), stable for scripts::

    {"network": str, "input": "HxWxC", "output": "HxWxC" | "F",
     "layers": [{"name", "type", "args", "output", "params", "share", "macs", "trainable"}],
     "totals": {"params", "trainable_params", "non_trainable_params", "buffers",
                "params_mb", "macs", "flops"}}

``params_mb`` is float32 weights in MB (10**6 bytes), as torchinfo reports it;
``flops`` = 2 x ``macs`` (one multiply-accumulate = two floating-point operations).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..ir import Spec
from ..shapes import LayerInfo, fmt_shape

BYTES_PER_PARAM = 4  # float32


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    args: str
    output: str
    params: int
    share: float
    """Fraction of all parameters held by this layer, in [0, 1]."""
    macs: int
    trainable: bool


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    non_trainable_params: int
    buffers: int
    params_mb: float
    macs: int
    flops: int


@dataclass(frozen=True)
class Summary:
    network: str
    input: str
    output: str
    layers: list[Row]
    totals: Totals

    def to_dict(self) -> dict:
        return asdict(self)


def describe(info: LayerInfo) -> tuple[str, str]:
    """(type, key arguments) of a layer as the summary prints them."""
    layer = info.layer
    act = getattr(layer, "activation", None)
    tail = f", {act}" if act else ""
    if layer.kind == "conv":
        pad = info.padding if isinstance(info.padding, str) else (
            info.padding[0] if info.padding[0] == info.padding[1] else "x".join(map(str, info.padding)))
        kind = "transition" if layer.transition else "conv"
        bias = "" if layer.bias else ", bias off"
        kh, kw = layer.kernel_size
        return kind, f"{kh}x{kw}x{layer.out_channels}, stride {layer.stride}, pad {pad}{bias}{tail}"
    if layer.kind in ("maxpool", "avgpool"):
        kh, kw = layer.kernel_size
        stride = layer.stride or kh
        return layer.kind, f"{kh}x{kw}, stride {stride}" + (f", pad {layer.padding}" if layer.padding else "")
    if layer.kind == "adaptiveavgpool":
        return layer.kind, "x".join(map(str, layer.output_size))
    if layer.kind == "dense":
        return "dense", f"{layer.out_features}" + ("" if layer.bias else ", bias off") + tail
    if layer.kind == "dropout":
        return "dropout", f"p={layer.p:g}"
    if layer.kind == "activation":
        return layer.function, ""
    return layer.kind, tail[2:]


def summarize(spec: Spec) -> Summary:
    """The summary of a validated spec, as data (see the module docstring for the fields)."""
    shaped = spec.shaped
    total = shaped.params
    rows = []
    for info in shaped.layers:
        kind, args = describe(info)
        rows.append(Row(info.name, kind, args, fmt_shape(info.out_shape), info.params,
                        info.params / total if total else 0.0, info.macs, True))
    trainable = sum(r.params for r in rows if r.trainable)
    totals = Totals(total, trainable, total - trainable, shaped.buffers,
                    total * BYTES_PER_PARAM / 1e6, shaped.macs, 2 * shaped.macs)
    return Summary(spec.name, fmt_shape(shaped.input_shape), fmt_shape(shaped.output_shape), rows, totals)
