"""cnnspec: a small language for convolutional networks.

The public verbs, each usable from a notebook as from the CLI::

    spec = cnnspec.load("specs/lenet5.cnn")     # parse + validate + shapes (SpecError on mistakes)
    model = cnnspec.build(spec)                  # torch.nn.Module, input (N, C, H, W)
    report = cnnspec.summarize(spec)             # per-layer parameters and MACs, as data
    run = cnnspec.train(spec, out="runs/lenet5") # train on the embedded digits or an image folder
    cnnspec.export_onnx(model, spec, "m.onnx")   # ONNX, checked against PyTorch with ONNX Runtime
"""

from __future__ import annotations

from . import _moved
from ._version import __version__ as __version__
from .errors import CnnSpecError, DataError, ExportError, SpecError, TrainingError, WeightsError
from .ir import Spec
from .language.loader import load, loads

_moved.install()  # the old module paths (cnnspec.parser, ...) of cnnspec.language


def infer_shapes(spec: Spec):
    """Shapes (C, H, W), parameters, buffers and MACs of every layer of a spec, as a
    :class:`cnnspec.shapes.ShapedSpec` (computed afresh: about a millisecond for DenseNet-121)."""
    from .shapes import infer

    return infer(spec)


def build(spec, seed: int | None = None):
    """The ``torch.nn.Module`` of a spec: input (N, C, H, W) float32 (see
    :func:`cnnspec.builder.build`)."""
    from .builder import build as _build

    return _build(spec, seed)


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
    "TrainingError",
    "WeightsError",
    "build",
    "export_onnx",
    "infer_shapes",
    "load",
    "loads",
    "summarize",
    "train",
]
