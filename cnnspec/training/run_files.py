"""The formats of a run's files, for :class:`~cnnspec.training.run_folder.RunFolder`: each
file read back and checked (a damaged one is a :class:`~cnnspec.errors.CnnSpecError` that
says so), and the tensor files and ``metrics.csv`` written. Every function takes the path of
one file; which file is which, and where it lies, is the run folder's to say (this module
names none)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CnnSpecError, WeightsError
from ..files import atomic_write

if TYPE_CHECKING:  # torch is imported where a function needs it: predict on ONNX Runtime
    import torch  # reads a run folder without it
    from torch import nn

# run.json entries that are read back, and the types they must have
INFO_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "data": ((str, type(None)), "a folder name"), "device": ((str, type(None)), "a device"),
    "normalize": ((dict,), "a mean and std"), "overrides": ((dict,), "a table of settings"),
    "onnx_softmax": ((bool,), "true or false"), "transfer": ((dict, type(None)), "a table"),
    "world_size": ((int,), "a whole number"), "global_batch": ((int,), "a whole number")}


def damaged(path: Path, why: str) -> CnnSpecError:
    return CnnSpecError(f"{path}: damaged ({why}); restore it from a copy, or train the "
                        "run again")


def readable(path: Path) -> Path:
    """``path``, unless something other than a file stands there (a FIFO would block the
    read, a device never end it): then a damaged-file error."""
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise damaged(path, kind)
    return path


def read_json(path: Path, kind: type = dict):
    """The JSON of the file ``path``, of type ``kind``.

    Raises:
        FileNotFoundError: no such file (callers say "not a run folder").
        CnnSpecError: the file is damaged: not UTF-8, not JSON, or not a ``kind``.
    """
    path = readable(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(path, str(exc).splitlines()[0]) from None
    if not isinstance(value, kind):
        raise damaged(path, f"a {type(value).__name__}, not a {kind.__name__}")
    return value


def read_text(path: Path) -> tuple[str, str]:
    """(the UTF-8 text of ``path``, its path for messages)."""
    p = readable(path)
    try:
        return p.read_text(encoding="utf-8"), str(p)
    except UnicodeDecodeError as exc:
        raise damaged(p, str(exc)) from None


def train_config(path: Path):
    """The ``train`` settings of the resolved spec ``path`` as an
    :class:`~cnnspec.ir.TrainConfig`.

    Raises:
        CnnSpecError: missing or not valid settings (a damaged spec.json).
    """
    from pydantic import ValidationError

    from ..ir import TrainConfig

    resolved = read_json(path)
    try:
        return TrainConfig.model_validate(resolved["train"])
    except (KeyError, ValidationError) as exc:
        why = "no train settings" if isinstance(exc, KeyError) else (
            f"train settings not valid: {str(exc).splitlines()[0]}")
        raise damaged(path, why) from None


def info(path: Path) -> dict:
    """The run record ``path`` (run.json), a dict whose entries that are read back
    (:data:`INFO_TYPES`) have their types.

    Raises:
        CnnSpecError: damaged (an entry of the wrong type, not JSON, not a dict).
    """
    record = read_json(path)
    for key, (types, what) in INFO_TYPES.items():
        if key in record and not isinstance(record[key], types):
            raise damaged(path, f"{key} is {str(record[key])[:40]!r}, not {what}")
    return record


def is_run_record(path: Path) -> bool:
    """``path`` is a run record cnnspec wrote (a run.json with a network and its steps per
    epoch), not a user's file of the same name."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return isinstance(record, dict) and {"network", "steps_per_epoch"} <= record.keys()
    except (OSError, ValueError):
        return False


def classes(path: Path) -> list[str]:
    """The class names in output order (``path``: a JSON list of strings)."""
    names = read_json(path, list)
    if not names or not all(isinstance(c, str) for c in names):
        raise damaged(path, "not a list of class names")
    return names


def normalization(path: Path) -> tuple[list[float], list[float], str]:
    """(mean, std, where they came from) recorded in the run record ``path``."""
    try:
        norm = info(path)["normalize"]
        mean, std = [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise damaged(path, f"no usable normalize: {exc}") from None
    if not mean or len(mean) != len(std) or not all(v > 0 for v in std):
        raise damaged(path, "normalize mean/std do not match")
    return mean, std, str(norm.get("source", ""))


def metrics(path: Path) -> list[dict]:
    """The per-epoch records of the metrics file ``path``."""
    epochs = read_json(path).get("epochs")
    if not isinstance(epochs, list) or not all(isinstance(m, dict) for m in epochs):
        raise damaged(path, "no list of epochs")
    return epochs


def metrics_csv(records: list[dict]) -> str:
    """The per-epoch records as CSV text: one column per key, in order of first appearance."""
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for m in records for k in m))
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(records)
    return buf.getvalue()


def save_checkpoint(path: Path, state: dict) -> None:
    """``state`` saved to ``path`` in one file renamed into place in one step (an
    interruption leaves the old or the new checkpoint, never a mix)."""
    import torch

    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict:
    """The checkpoint ``path`` read with PyTorch's restricted loader (tensors and plain data
    only)."""
    from ..files import load_tensors

    return load_tensors(readable(path))


def save_weights(path: Path, model: nn.Module, network: str) -> Path:
    """The module's state_dict as the safetensors file ``path``: no pickle, written
    atomically."""
    from safetensors.torch import save_file

    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(weights, tmp, metadata={"network": network}))
    return path


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path``.

    Raises:
        WeightsError: not a readable safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None
