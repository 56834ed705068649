"""Using a finished run: evaluate it on an image folder, predict the class of images.

A run folder (see :mod:`cnnspec.trainer`) carries everything needed: the spec, the class
names in order, the normalisation statistics of its training set, and the weights
(``weights.safetensors``, or ``best.safetensors`` / ``last.safetensors``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .build import Network
from .data import image_folder, load_data, load_image, split_indices
from .errors import CnnSpecError, DataError, WeightsError
from .report.metrics import accuracy, confusion_matrix, per_class
from .trainer import Standardize, pick_device, predict_labels, to_unit


@dataclass
class LoadedRun:
    """A trained network ready for inference: spec, module (eval mode), classes, normalisation."""

    path: Path
    model: Network
    classes: list[str]
    norm: Standardize
    device: torch.device


def load_run(run: str | Path, weights: str = "weights", device: str | None = None) -> LoadedRun:
    """Load ``run/<weights>.safetensors`` into the run's network.

    Raises:
        CnnSpecError: ``run`` is not a finished run folder.
        WeightsError: the weights file is unreadable or does not fit the network.
    """
    from .loader import loads

    run = Path(run)
    try:
        spec = loads((run / "spec.cnn").read_text(), str(run / "spec.cnn"))
        classes = json.loads((run / "classes.json").read_text())
        norm = json.loads((run / "run.json").read_text())["normalize"]
    except FileNotFoundError as exc:
        raise CnnSpecError(f"{run}: not a run folder ({Path(exc.filename).name} is missing)") from None
    if spec.transfer is not None and spec.transfer.classes == "data":
        from .transfer import with_classes

        spec = with_classes(spec, len(classes))  # the head as it was trained
    path = run / f"{weights}.safetensors"
    try:
        state = load_file(path)
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such weights file (a run writes weights.safetensors when it "
                           "ends, and last.safetensors after every epoch)") from None
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None
    dev = pick_device(device)
    model = spec.build()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not fit {spec.name}: {str(exc).splitlines()[0]}") from None
    return LoadedRun(run, model.to(dev).eval(), classes,
                     Standardize(norm["mean"], norm["std"]).to(dev), dev)


def evaluate_run(run: str | Path, data: str | Path, weights: str = "weights",
                 device: str | None = None) -> dict:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of a run on an image
    folder whose classes are (a subset of) the run's, matched by folder name.

    On the run's own data folder only its validation images are scored (the same split
    the run made: its ``val/`` folder, or the stratified split by its split and seed), so
    the images it trained on do not inflate the accuracy; ``"subset"`` says which.

    Raises:
        DataError: the folder has a class the run does not know.
    """
    loaded = load_run(run, weights, device)
    spec = loaded.model.spec
    subset = "all images"
    info = json.loads((Path(run) / "run.json").read_text())
    if info.get("data") and Path(data).resolve() == Path(info["data"]).resolve():
        cfg = json.loads((Path(run) / "spec.json").read_text())["train"]
        full = load_data(data, spec.input)
        _, val_idx = split_indices(full, cfg["split"], cfg["seed"])
        data_set, subset = full.subset(val_idx), "the run's validation images"
    else:
        data_set = image_folder(data, spec.input, min_classes=1)
    unknown = [c for c in data_set.classes if c not in loaded.classes]
    if unknown:
        raise DataError(f"{data}: classes {unknown} are not among the run's classes "
                        f"{loaded.classes}")
    remap = torch.tensor([loaded.classes.index(c) for c in data_set.classes])
    labels = remap[data_set.labels]
    preds = predict_labels(loaded.model.logits(), data_set, loaded.norm, loaded.device,
                           n_classes=len(loaded.classes))
    matrix = confusion_matrix(labels, preds, len(loaded.classes))
    return {"run": str(run), "data": str(data), "subset": subset, "images": len(labels),
            "accuracy": accuracy(matrix),
            "classes": loaded.classes,
            "per_class": [{"class": c, **m} for c, m in zip(loaded.classes, per_class(matrix),
                                                            strict=True)],
            "confusion": matrix.tolist(), "skipped": [p for p, _ in data_set.skipped]}


def predict(run: str | Path, images: list[str | Path], top_k: int = 3, weights: str = "weights",
            device: str | None = None) -> list[dict]:
    """Top-k classes with softmax probabilities for each image file.

    Raises:
        DataError: an image is missing or cannot be decoded.
    """
    loaded = load_run(run, weights, device)
    spec = loaded.model.spec
    batch = torch.stack([load_image(p, spec.input) for p in images])
    with torch.no_grad():
        logits = loaded.model.logits()(loaded.norm(to_unit(batch, loaded.device)))
        # over the run's classes only: a head wider than the data's classes has spare outputs
        probs = torch.softmax(logits[:, :len(loaded.classes)], 1)
    k = min(top_k, len(loaded.classes))
    top = probs.topk(k, dim=1)
    return [{"image": str(p), "top": [{"class": loaded.classes[i], "probability": v}
                                      for v, i in zip(vals.tolist(), idx.tolist(), strict=True)]}
            for p, vals, idx in zip(images, top.values, top.indices, strict=True)]
