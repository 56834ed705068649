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


def assign(spec: ir.Spec, pairs: list[str]) -> tuple[ir.Spec, dict, dict]:
    """``--set NAME=VALUE`` (repeatable): (the spec with its layers' values set, the train
    settings to override, what was set as written). NAME is a setting with a command-line
    override (``lr``, ``label_smoothing``: :data:`OVERRIDES`), a labelled layer's field
    (``D1.p``, ``F1.out_features``), or a layer kind of which the spec has exactly one
    (``dropout``: its first argument).

    Raises:
        CnnSpecError: a malformed pair, an unknown name, an ambiguous kind, a value the spec
            would refuse (the message says which and why).
    """
    from pydantic import ValidationError

    from .. import settings as registry
    from ..layers import BY_KIND
    from ..shapes import infer, walk

    overrides, done, layers = {}, {}, {}
    infos = {info.name: info for _, _, info in walk(infer(spec).layers)}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise CnnSpecError(f"--set {pair}: write NAME=VALUE (--set lr=0.01, --set D1.p=0.3)")
        if name in registry.OVERRIDES and registry.OVERRIDES[name].type != "path":
            overrides[name] = _typed(registry.OVERRIDES[name], text, pair)
        else:
            layer, _, field = name.partition(".")
            if not field:  # a kind word: its one layer's first argument
                same = [i.name for i in infos.values() if i.layer.kind == name]
                if len(same) != 1 or name not in BY_KIND:
                    raise CnnSpecError(
                        f"--set {pair}: {name} is " + (
                            f"the kind of {len(same)} layers ({', '.join(same)}); name one: "
                            f"--set {same[0]}.{BY_KIND[name].args[0][0]}={text}"
                            if len(same) > 1 else "neither a setting nor a layer of this "
                            f"spec; settings: {', '.join(sorted(registry.OVERRIDES))}"))
                layer, field = same[0], BY_KIND[name].args[0][0]
            if layer not in infos or field not in type(infos[layer].layer).model_fields:
                raise CnnSpecError(f"--set {pair}: " + (
                    f"{layer} has no field {field}; its fields are " + ", ".join(
                        f for f in type(infos[layer].layer).model_fields
                        if f not in ("span", "trace", "name", "labelled", "kind"))
                    if layer in infos else f"no layer {layer}; the layers are "
                    f"{', '.join(list(infos)[:12])}"))
            layers[layer] = {**layers.get(layer, {}), field: _number(text)}
        done[name] = text
    try:
        spec = spec.model_copy(update={"layers": [_set(layer, layers) for layer in spec.layers]})
        infer(spec)  # the shapes still work out
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CnnSpecError(f"--set: {err['msg']} (got {err.get('input')!r})") from None
    return spec, overrides, done


def _set(layer, values: dict):
    """``layer`` (and the layers it holds) with the fields of ``values`` set, re-validated."""
    update = dict(values.get(layer.name, {}))
    for key in ("body", "shortcut", "branches"):
        inner = getattr(layer, key, None)
        if inner:
            update[key] = ([[_set(x, values) for x in b] for b in inner] if key == "branches"
                           else [_set(x, values) for x in inner])
    if not update:
        return layer
    fields = {**{k: getattr(layer, k) for k in type(layer).model_fields}, **update}
    return type(layer).model_validate(fields)


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _typed(o, text: str, pair: str):
    """A setting's value from its text, by its override's type."""
    if o.type in ("switch", "flag"):
        if text.lower() not in ("on", "off", "true", "false", "1", "0"):
            raise CnnSpecError(f"--set {pair}: {o.name} is on or off")
        return text.lower() in ("on", "true", "1")
    if o.type == "choice":
        if text not in o.choices:
            raise CnnSpecError(f"--set {pair}: {o.name} is one of {', '.join(o.choices)}")
        return text
    value = _number(text)
    if isinstance(value, str) or (o.type.startswith("int") and not isinstance(value, int)):
        raise CnnSpecError(f"--set {pair}: {o.name} takes a "
                           f"{'whole number' if o.type.startswith('int') else 'number'}")
    return value
