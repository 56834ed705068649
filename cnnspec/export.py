"""ONNX export with a dynamic batch axis, verified against PyTorch with ONNX Runtime.

The check runs both on the same real batch and reports the largest absolute
difference and the relative error ``||onnx - torch||_2 / ||torch||_2``; above
``1e-4`` the export is rejected (:class:`~cnnspec.errors.ExportError`) and no file
is left under the target name.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import ir
from .errors import ExportError
from .files import file_mode

MAX_RELATIVE_ERROR = 1e-4


@dataclass(frozen=True)
class ExportReport:
    """Where the model went and how closely ONNX Runtime agrees with PyTorch."""

    path: Path
    provider: str
    batch_shape: tuple[int, ...]
    max_abs_diff: float
    relative_error: float

    def __str__(self) -> str:
        return (f"ONNX {self.path}: ONNX Runtime ({self.provider}) vs PyTorch on a batch "
                f"{tuple(self.batch_shape)}: max |diff| {self.max_abs_diff:.3g}, relative error "
                f"{self.relative_error:.3g} (limit {MAX_RELATIVE_ERROR:g})")


def providers() -> list[str]:
    """ONNX Runtime providers to use: CUDA first where both ORT and torch see a GPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available and torch.cuda.is_available():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def compare(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(max absolute difference, relative error ||c - r|| / ||r||) of two arrays.

    >>> max_abs, rel = compare(np.array([3.0, 4.0]), np.array([3.0, 4.0005]))
    >>> round(max_abs, 6), round(rel, 6)   # ||(0, 0.0005)|| / ||(3, 4)|| = 0.0005 / 5
    (0.0005, 0.0001)
    """
    diff = candidate.astype(np.float64) - reference.astype(np.float64)
    norm = float(np.linalg.norm(reference.astype(np.float64)))
    return float(np.abs(diff).max()), float(np.linalg.norm(diff)) / (norm if norm > 0 else 1.0)


def _export(model: nn.Module, example: torch.Tensor, path: str, optimize: bool = True) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(model, (example,), path, dynamo=True, external_data=False,
                          input_names=["input"], output_names=["output"],
                          dynamic_shapes=({0: batch},), verbose=False, optimize=optimize)


def export_onnx(model: nn.Module, spec: ir.Spec, path: str | Path, *,
                example: torch.Tensor | None = None, optimize: bool = True) -> ExportReport:
    """Export ``model`` to ONNX at ``path`` and check it with ONNX Runtime.

    Args:
        model: the built network (or the network behind a preprocessing module).
        spec: the spec it was built from (for the input shape).
        path: the ``.onnx`` file to write (written atomically).
        example: a real batch (N, C, H, W) float32 to export with and check on; by
            default a batch of 4 random images at the spec's input size.
        optimize: let the exporter optimise the graph (constant folding; batch norms in
            eval mode may be folded into the convolutions before them). False keeps every
            parameter as an initializer under its own name.

    Raises:
        ExportError: the exporter fails, or the relative error exceeds 1e-4.
    """
    import onnxruntime as ort

    path = Path(path)
    model = model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if example is None:
        g = torch.Generator().manual_seed(0)
        example = torch.rand((4, *spec.input.chw()), generator=g)
    example = example.to(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        try:
            _export(model, example, tmp, optimize)
        except Exception as exc:  # the exporter raises many types; the user needs the reason
            raise ExportError(f"ONNX export of {spec.name} failed: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        with torch.no_grad():
            expected = model(example).detach().cpu().numpy()
        used = providers()
        session = ort.InferenceSession(tmp, providers=used)
        got = session.run(None, {session.get_inputs()[0].name: example.cpu().numpy()})[0]
        if got.shape != expected.shape:
            raise ExportError(f"ONNX output shape {got.shape} differs from PyTorch's {expected.shape}")
        max_abs, rel = compare(expected, got)
        report = ExportReport(path, session.get_providers()[0], tuple(example.shape), max_abs, rel)
        if not rel <= MAX_RELATIVE_ERROR:
            raise ExportError(f"ONNX Runtime disagrees with PyTorch: relative error {rel:.3g} > "
                              f"{MAX_RELATIVE_ERROR:g} (max |diff| {max_abs:.3g}); {path} not written")
        os.chmod(tmp, file_mode(path))  # as open() would make it, not mkstemp's 0o600
        os.replace(tmp, path)
        return report
    finally:
        Path(tmp).unlink(missing_ok=True)
