"""cnnspec: a small language for convolutional networks.

The public verbs, each usable from a notebook as from the CLI::

    spec = cnnspec.load("specs/lenet5.cnn")     # parse + validate + shapes (SpecError on mistakes)
    model = spec.build()                         # torch.nn.Module, input (N, C, H, W)
    report = cnnspec.summarize(spec)             # per-layer parameters and MACs, as data
    run = cnnspec.train(spec, out="runs/lenet5") # train on the embedded digits or an image folder
    cnnspec.export_onnx(model, spec, "m.onnx")   # ONNX, checked against PyTorch with ONNX Runtime
"""

from __future__ import annotations

from .errors import CnnSpecError, DataError, ExportError, SpecError, WeightsError
from .ir import Spec
from .loader import load, loads

__version__ = "0.1.0"


def summarize(spec: Spec, depth: int | None = None):
    """Per-layer report of a spec as data (see :mod:`cnnspec.report.summary`)."""
    from .report.summary import summarize as _summarize

    return _summarize(spec, depth)


def train(spec: Spec, **kwargs):
    """Train a spec (see :func:`cnnspec.training.api.train` for the arguments)."""
    from .training import train as _train

    return _train(spec, **kwargs)


def export_onnx(model, spec: Spec, path, **kwargs):
    """Export to ONNX and verify with ONNX Runtime (see :func:`cnnspec.export.export_onnx`)."""
    from .export import export_onnx as _export

    return _export(model, spec, path, **kwargs)


__all__ = [
    "CnnSpecError",
    "DataError",
    "ExportError",
    "Spec",
    "SpecError",
    "WeightsError",
    "export_onnx",
    "load",
    "loads",
    "summarize",
    "train",
]
