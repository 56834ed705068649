"""ONNX export with a dynamic batch axis, verified against PyTorch with ONNX Runtime.

The check runs both on the same real batch and reports the largest absolute
difference and the relative error ``||onnx - torch||_2 / ||torch||_2``; above
``1e-4`` the export is rejected (:class:`~cnnspec.errors.ExportError`) and no file
is left under the target name.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import ir
from .errors import ExportError
from .files import check_target, file_mode
from .shapes import infer

if TYPE_CHECKING:  # imported where needed: predict on ONNX Runtime runs without torch
    import torch
    from torch import nn

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
    """ONNX Runtime providers to use: CUDA first where ORT has it and a GPU is present."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers() and gpu_present():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU: torch's answer if torch is loaded already,
    else the driver's device node or ``nvidia-smi`` (importing torch to ask costs seconds)."""
    if "torch" in sys.modules:
        return sys.modules["torch"].cuda.is_available()
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


def session(path: str | Path, threads: int | None = None, device: str | None = None):
    """An ``onnxruntime.InferenceSession`` of ``path`` with every graph optimisation
    (``ORT_ENABLE_ALL``: constant folding, node fusions, layout changes) and ``threads``
    intra-op threads (default: ``OMP_NUM_THREADS`` if set, else the cores this process may
    use). On the CUDA provider where
    it loads (``device`` None or ``cuda``), the CPU provider otherwise: a CUDA provider that
    is installed but cannot start (no driver, a missing cuDNN) falls back to the CPU
    (``session.get_providers()[0]`` says which ran).

    Raises:
        onnxruntime's errors for a file that is not a model (callers turn them into
        cnnspec errors).
    """
    import onnxruntime as ort

    from .host import usable_cores

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    env = os.environ.get("OMP_NUM_THREADS", "")
    options.intra_op_num_threads = threads or (int(env) if env.isdigit() and int(env) > 0
                                               else usable_cores())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings are not the user's business
    wanted = ["CPUExecutionProvider"] if device == "cpu" else providers()
    if wanted[0] == "CUDAExecutionProvider":
        if hasattr(ort, "preload_dlls"):  # CUDA and cuDNN from NVIDIA's pip packages (ORT 1.21+)
            ort.preload_dlls()
        # a provider that cannot start logs an error and falls back to the CPU: quiet that
        ort.set_default_logger_severity(4)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    except Exception:  # the CUDA provider failed to start: the CPU will do
        if wanted == ["CPUExecutionProvider"]:
            raise
        return ort.InferenceSession(str(path), sess_options=options,
                                    providers=["CPUExecutionProvider"])
    finally:
        ort.set_default_logger_severity(2)


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
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(model, (example,), path, dynamo=True, external_data=False,
                          input_names=["input"], output_names=["output"],
                          dynamic_shapes=({0: batch},), verbose=False, optimize=optimize)


def metadata(spec: ir.Spec, output: str = "logits", classes: list[str] | None = None,
             normalize: tuple[list[float], list[float]] | None = None) -> dict[str, str]:
    """What ``model.onnx`` says about itself (ONNX ``metadata_props``, read with
    ``session.get_modelmeta().custom_metadata_map``): the network, cnnspec's version, the
    SHA-256 of the spec's text, the input (float32 (N, C, H, W) pixels in [0, 1]), the
    output (``logits`` or ``probabilities``, (N, K)), and for a trained run the class names
    of outputs 0..K-1 (JSON) and the normalisation inside the model."""
    import hashlib
    import json

    from ._version import __version__

    c, h, w = spec.input.chw()
    out_shape = infer(spec).output_shape
    meta = {"cnnspec_version": __version__, "network": spec.name,
            "spec_sha256": hashlib.sha256(spec.source.encode("utf-8")).hexdigest(),
            "input": f"float32 (N, {c}, {h}, {w}) pixels in [0, 1]",
            "input_size": f"{h}x{w}x{c}",
            "output": f"{output} (N, {out_shape[0]})" if len(out_shape) == 1 else output}
    if classes is not None:
        meta["classes"] = json.dumps(list(classes))
    if normalize is not None:
        meta["normalize"] = json.dumps({"mean": list(normalize[0]), "std": list(normalize[1])})
    return meta


def _set_metadata(path: str, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(path)
    onnx.helper.set_model_props(model, meta)
    onnx.save(model, path)


def export_onnx(model: nn.Module, spec: ir.Spec, path: str | Path, *,
                example: torch.Tensor | None = None, optimize: bool = True,
                meta: dict[str, str] | None = None) -> ExportReport:
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
        meta: the model's metadata (default: :func:`metadata` of ``spec``, logits).

    Raises:
        ExportError: the exporter fails, or the relative error exceeds 1e-4.
        CnnSpecError: ``path`` cannot be written as a regular file (a folder, a FIFO, a
            device: see :func:`cnnspec.files.check_target`).
    """
    import torch

    path = check_target(path)  # a FIFO, a device or a folder is refused before any work
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
        _set_metadata(tmp, meta if meta is not None else metadata(spec))
        with torch.no_grad():
            expected = model(example).detach().cpu().numpy()
        sess = session(tmp)
        got = sess.run(None, {sess.get_inputs()[0].name: example.cpu().numpy()})[0]
        if got.shape != expected.shape:
            raise ExportError(f"ONNX output shape {got.shape} differs from PyTorch's {expected.shape}")
        max_abs, rel = compare(expected, got)
        report = ExportReport(path, sess.get_providers()[0], tuple(example.shape), max_abs, rel)
        if not rel <= MAX_RELATIVE_ERROR:
            raise ExportError(f"ONNX Runtime disagrees with PyTorch: relative error {rel:.3g} > "
                              f"{MAX_RELATIVE_ERROR:g} (max |diff| {max_abs:.3g}); {path} not written")
        os.chmod(tmp, file_mode(path))  # as open() would make it, not mkstemp's 0o600
        os.replace(tmp, path)
        return report
    finally:
        Path(tmp).unlink(missing_ok=True)
