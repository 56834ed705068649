"""How fast a step runs: mixed precision, memory format, cuDNN autotuning, torch.compile.

- ``precision bf16`` / ``fp16``: the forward pass and the loss run under
  ``torch.autocast`` (matrix multiplies and convolutions in 16 bits, reductions in float32;
  https://pytorch.org/docs/stable/amp.html); weights, gradients and optimizer state stay
  float32. fp16 has 5 exponent bits, so its gradients are scaled
  (``torch.amp.GradScaler``: steps whose gradients overflow are skipped and the scale
  halved). bf16 keeps float32's exponent range and needs no scaler; it runs on CPUs and on
  GPUs that support it (``torch.cuda.is_bf16_supported``: Ampere and newer).
- channels_last (NHWC) on CUDA for networks with convolutions: the layout Tensor Cores
  read without transposes.
- ``torch.backends.cudnn.benchmark`` on CUDA: cuDNN times its algorithms for each input
  shape once and keeps the fastest.
- ``compile on``: the training forward pass goes through ``torch.compile``; where it cannot
  run (no C++ compiler, an unsupported platform) the first step says why in one line and the
  run goes on in eager mode.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import ir
from ..errors import CnnSpecError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """Raises CnnSpecError where ``precision`` cannot run on ``device``."""
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise CnnSpecError(f"precision bf16: {torch.cuda.get_device_name(device)} has no "
                           "bfloat16 support; use precision fp16 (with a gradient scaler)")


@dataclass
class Speed:
    """The choices of a run (all recorded in run.json, see :meth:`record`)."""

    precision: str = "fp32"
    channels_last: bool = False
    cudnn_benchmark: bool = False
    compile: str = "off"
    """``off``; ``on`` (requested, not yet run); ``compiled``; ``off: <why>`` after a fallback."""
    scaler: torch.amp.GradScaler = field(default=None)
    skipped_steps: int = 0
    """fp16: optimizer steps the gradient scaler skipped (inf or NaN gradients) so far."""

    def autocast(self, device_type: str):
        """The context the forward pass and the loss run in."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=DTYPES[self.precision])

    def to_layout(self, x: torch.Tensor) -> torch.Tensor:
        """A (N, C, H, W) batch in the network's memory format."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def record(self) -> dict:
        return {"precision": self.precision, "grad_scaler": self.precision == "fp16",
                "skipped_steps": self.skipped_steps,
                "channels_last": self.channels_last, "cudnn_benchmark": self.cudnn_benchmark,
                "compile": self.compile}


CPU_UNITS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}
"""The x86 CPU features (``/proc/cpuinfo`` flags) with which a CPU computes in that type;
without them PyTorch converts each operation's inputs and output, which is slower than
float32 (issue 29: LeNet-5 at 21 img/s in bf16, 282 in fp32, on an AVX2 CPU)."""


def cpu_precision_note(precision: str, device: torch.device,
                       cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """A note for mixed precision on a CPU that has no units for it (Linux x86: read from
    ``cpuinfo``'s flags), naming the missing features, and for fp16 on any CPU (measured
    slower than fp32 even with its units); None for bf16 where the CPU has its units, on a
    GPU, for fp32, or where the flags cannot be read."""
    if device.type != "cpu" or precision not in CPU_UNITS:
        return None
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), None)
    if flags is None:
        return None
    if any(f in flags for f in CPU_UNITS[precision]):
        if precision == "bf16":
            return None
        # measured (benchmarks/precision.py, LeNet-5): fp16 at 0.08x fp32 on a CPU that has
        # avx512_fp16 and amx_fp16; bf16 there at 0.68x
        return ("precision fp16 on a CPU: PyTorch's float16 CPU kernels and the gradient "
                "scaler make training slower than fp32 even with "
                f"{' and '.join(f for f in CPU_UNITS['fp16'] if f in flags)} (12x slower for "
                "LeNet-5, benchmarks/precision.py); use fp32 or bf16 on a CPU, fp16 on a GPU")
    return (f"precision {precision} on this CPU: it has no {precision} units (no "
            f"{' or '.join(CPU_UNITS[precision])} among its features), so PyTorch converts "
            f"every operation to and from {precision}: training runs several times slower "
            "than in fp32 (benchmarks/precision.py measures it); use precision fp32 here, "
            f"{precision} on a GPU")


def configure(cfg: ir.TrainConfig, device: torch.device, model: nn.Module) -> Speed:
    """Set ``model`` and torch up for ``cfg``'s precision on ``device`` (the module is
    converted to channels_last in place on CUDA when it has convolutions).

    Raises:
        CnnSpecError: see :func:`check_precision`.
    """
    check_precision(cfg.precision, device)
    cuda = device.type == "cuda"
    convs = any(isinstance(m, nn.Conv2d) for m in model.modules())
    speed = Speed(cfg.precision, channels_last=cuda and convs, cudnn_benchmark=cuda,
                  compile="on" if cfg.compile else "off",
                  scaler=torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16"))
    if cuda:
        torch.backends.cudnn.benchmark = True
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)
    return speed


def compiled(module: nn.Module) -> nn.Module:
    """``torch.compile(module)``; compilation itself happens at the first call."""
    return torch.compile(module)


def why_not(exc: BaseException) -> str:
    """One line on why torch.compile failed (its exceptions run to pages)."""
    text = " ".join(line.strip() for line in str(exc).strip().splitlines()[:4] if line.strip())
    return f"{type(exc).__name__}: {text[:200] or 'no message'}"
