"""What a run is set up with beyond the spec: command-line overrides, the data folder, the
device, DataLoader workers and PyTorch's threads."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from pydantic import ValidationError

from .. import ir, settings
from ..errors import CnnSpecError

OVERRIDES: dict[str, tuple[str, ...]] = {name: o.path for name, o in settings.OVERRIDES.items()}
"""--epochs, --lr, ... : the train field each command-line override sets (declared with its
setting, :data:`cnnspec.settings.OVERRIDES`)."""


def apply_overrides(cfg: ir.TrainConfig, overrides: dict) -> ir.TrainConfig:
    """``cfg`` with command-line values set (keys of :data:`OVERRIDES`). A new optimizer keeps
    only the learning rate of the old one (momentum is not a setting of adam).

    Raises:
        CnnSpecError: an unknown key, or a value the train section would not accept.
    """
    data = cfg.model_dump()
    for key, value in overrides.items():
        if key not in OVERRIDES:
            raise CnnSpecError(f"--{key.replace('_', '-')}: not a train setting that can be "
                               f"overridden; use one of {', '.join(OVERRIDES)}")
        if key == "optimizer" and value != data["optimizer"]["name"]:
            data["optimizer"] = {"lr": data["optimizer"]["lr"]}
        *path, last = OVERRIDES[key]
        target = data
        for part in path:
            target = target[part]
        target[last] = value
    opt = data["optimizer"]
    name = opt.get("name", "adam")
    if "momentum" in overrides and name not in ("sgd", "rmsprop"):
        raise CnnSpecError(f"--momentum: optimizer {name} has no momentum; use --optimizer sgd "
                           "or rmsprop")
    if opt.get("nesterov") and not opt.get("momentum"):
        raise CnnSpecError("--momentum: this spec's optimizer is nesterov, which needs a "
                           "momentum above 0")
    try:
        return ir.TrainConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = next((k for k, path in OVERRIDES.items() if path == tuple(err["loc"])), None)
        where = f"--{key.replace('_', '-')}" if key else "command-line override"
        got = f" (got {_short(err['input'])})" if err["loc"] else ""
        msg = err["msg"].removeprefix("Value error, ")
        limit = next(iter((err.get("ctx") or {}).values()), None)
        if isinstance(limit, float) and abs(limit) >= 1e16:  # float32's range, not 39 digits
            msg = re.sub(r"\d{17,}", f"{limit:g}", msg)
        raise CnnSpecError(f"{where}: {msg}{got}") from None


def _short(value) -> str:
    """A value for a message: as typed, unless a float too long to read."""
    return f"{value:g}" if isinstance(value, float) and abs(value) >= 1e16 else str(value)


def pick_device(device: str | None) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` (default: cuda where available).

    Raises:
        CnnSpecError: the device is unknown or not present on this machine.
    """
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise CnnSpecError(f"unknown device '{device}'; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CnnSpecError(f"device '{device}': no CUDA GPU is available here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CnnSpecError(f"device '{device}': this machine has {torch.cuda.device_count()} "
                               "GPU(s), numbered from 0")
    elif dev.type != "cpu":
        raise CnnSpecError(f"device '{device}' cannot train; use cpu, cuda or cuda:N")
    return dev


def data_path_of(spec: ir.Spec, data: str | Path | None) -> str | Path | None:
    """The data a run uses: ``data`` (the command line's, relative to the working folder),
    else the spec's ``train: data`` (relative to the spec file), else None (embedded digits)."""
    if data is not None:
        return data
    if spec.train.data is not None and spec.file != "<string>":
        return Path(spec.file).parent / spec.train.data
    return spec.train.data


SMALL_NETWORK_MACS = 20_000_000
"""Below this many MACs per image a training step gains nothing from a second intra-op
thread on these machines (LeNet-5: 0.4 M; benchmarks/threads.py measures it)."""


def choose_threads(requested: int | None, macs_per_image: int, workers: int,
                   processes: int = 1) -> tuple[int, str]:
    """(intra-op threads for the training process, why). ``threads N`` / ``--threads`` wins;
    then ``OMP_NUM_THREADS``; else this process's share of the cores of the affinity mask
    (``processes`` training processes on this machine, as torchrun starts them) less one per
    DataLoader worker (at least 1), and 1 for a small network, where more threads only
    contend with other processes (PyTorch's default, one per core, collapses beside a busy
    process).

    >>> choose_threads(3, 10**9, 0)
    (3, 'threads setting')
    """
    if requested is not None:
        return requested, "threads setting"
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    from ..data import usable_cores

    if macs_per_image < SMALL_NETWORK_MACS:
        return 1, f"small network (< {SMALL_NETWORK_MACS / 1e6:g} M MACs per image)"
    if processes > 1:
        return (max(1, usable_cores() // processes - workers),
                f"usable cores / {processes} processes, less DataLoader workers")
    return max(1, usable_cores() - workers), "usable cores less DataLoader workers"


def inside_data(folder: Path, data) -> Path | None:
    """The data folder, if the run ``folder`` lies in it (or is it): a run's pictures there
    would become training images, and its folder a class."""
    if data is None:
        return None
    root, target = Path(data).resolve(), Path(folder).resolve()
    return root if target == root or root in target.parents else None
