"""Using a network: validation during training, and a finished run's evaluate and predict.

A run folder (:class:`~cnnspec.training.run_folder.RunFolder`) carries everything inference
needs: the spec, the class names in order, the normalisation statistics of its training set
and the weights (``weights``, ``best`` or ``last``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..builder import build
from ..errors import CnnSpecError, DataError, WeightsError
from .run_folder import RunFolder


class Standardize(nn.Module):
    """(N, C, H, W) float pixels in [0, 1] -> ``(x - mean) / std`` per channel.

    Put in front of the network in the exported ``model.onnx``, so the ONNX model takes
    plain pixels in [0, 1] and the statistics of the training set travel with it."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def to_unit(x: torch.Tensor, device) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1] on ``device``."""
    return x.to(device, non_blocking=True).float().div_(255)


def predicted(logits: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The predicted class of each row of (N, outputs) logits, among the data's ``n_classes``
    (a head may have more outputs than the data has classes; the extra ones never win)."""
    return logits[:, :n_classes].argmax(1)


def evaluate(model: nn.Module, batches, norm: Standardize, device, n_classes: int
             ) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy in [0, 1]) of ``model`` over ``batches`` of
    (uint8 (B, C, H, W), labels (B,)); summed on the device, read once."""
    loss_sum, correct, n = evaluate_sums(model, batches, norm, device, n_classes).tolist()
    return loss_sum / max(n, 1), correct / max(n, 1)


def evaluate_sums(model: nn.Module, batches, norm: Standardize, device, n_classes: int,
                  layout=None) -> torch.Tensor:
    """float64 (3,) on ``device``: (summed cross-entropy loss, correct predictions, images)
    over ``batches``, not read back (a torchrun group adds up every process's before
    dividing). ``layout`` puts each batch in the network's memory format."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    with torch.no_grad():
        for x, y in batches:
            y = y.to(device, non_blocking=True)
            x = norm(to_unit(x, device))
            out = model(layout(x) if layout else x).float()
            sums[0] += nn.functional.cross_entropy(out, y, reduction="sum").double()
            sums[1] += (predicted(out, n_classes) == y).sum()
            sums[2] += len(y)
    return sums


def predict_labels(model: nn.Module, batches, norm: Standardize, device, n_classes: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(true labels (N,), predicted class indices (N,)) on the CPU over ``batches``."""
    model.eval()
    labels, preds = [], []
    with torch.no_grad():
        for x, y in batches:
            preds.append(predicted(model(norm(to_unit(x, device))), n_classes).cpu())
            labels.append(y)
    if not preds:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(labels), torch.cat(preds)


@dataclass
class LoadedRun:
    """A trained network ready for inference: spec, module (eval mode), classes, normalisation."""

    folder: RunFolder
    model: nn.Module
    classes: list[str]
    norm: Standardize
    device: torch.device

    @property
    def path(self) -> Path:
        return self.folder.path


def load_run(run: str | Path, weights: str = "weights", device: str | None = None) -> LoadedRun:
    """Load ``run/<weights>.safetensors`` into the run's network.

    Raises:
        CnnSpecError: ``run`` is not a finished run folder.
        WeightsError: the weights file is unreadable or does not fit the network.
    """
    from ..language.loader import loads
    from .settings import pick_device

    folder = RunFolder(run)
    try:
        spec = loads(*folder.spec_source())
        classes = folder.classes()
        mean, std, _ = folder.normalization()
    except FileNotFoundError as exc:
        raise CnnSpecError(f"{run}: not a run folder ({Path(exc.filename).name} is missing)") from None
    if spec.transfer is not None and spec.transfer.classes == "data":
        from ..transfer import with_classes

        spec = with_classes(spec, len(classes))  # the head as it was trained
    state = folder.load_weights(weights)
    dev = pick_device(device)
    model = build(spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{folder.weights_file(weights)} does not fit {spec.name}: "
                           f"{str(exc).splitlines()[0]}") from None
    return LoadedRun(folder, model.to(dev).eval(), classes, Standardize(mean, std).to(dev), dev)


def evaluate_run(run: str | Path, data: str | Path | None = None, weights: str = "weights",
                 device: str | None = None) -> dict:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of a run on an image
    folder whose classes are (a subset of) the run's, matched by folder name.

    Without ``data``, or given the run's own data folder, only the run's validation images
    are scored (the same split the run made: its ``val/`` folder, or the stratified split by
    its split and seed), so the images it trained on do not inflate the accuracy; a run on
    the embedded digits is scored on their validation images. On any other folder, every
    image. ``"subset"`` says which. Images are read through the decoded cache (a run's own
    folder is not decoded again).

    Raises:
        DataError: the folder has a class the run does not know.
    """
    from ..data import ImageSet, load_data, loader, split_indices
    from ..data.cache import decoded
    from ..data.folder import list_folder
    from ..report.metrics import accuracy, confusion_matrix, per_class

    loaded = load_run(run, weights, device)
    spec_input = loaded.model.spec.input
    info = loaded.folder.info()
    own = info.get("data")
    if data is None or (own and Path(data).resolve() == Path(own).resolve()):
        cfg = loaded.folder.train_config()
        data = own if data is None else data
        images = load_data(data, spec_input)
        _, idx = split_indices(images, cfg.split, cfg.seed)
        subset = "the run's validation images"
    else:
        files = list_folder(data, min_classes=1)
        images, subset = decoded(files, spec_input, workers=0), "all images"
        idx = range(len(images))
    unknown = [c for c in images.classes if c not in loaded.classes]
    if unknown:
        raise DataError(f"{data}: classes {unknown} are not among the run's classes "
                        f"{loaded.classes}")
    remap = torch.tensor([loaded.classes.index(c) for c in images.classes])
    batch = int(loaded.folder.resolved().get("train", {}).get("batch", 64))
    batches = loader(ImageSet(images, idx), batch, shuffle=False)
    labels, preds = predict_labels(loaded.model.logits(), batches, loaded.norm, loaded.device,
                                   len(loaded.classes))
    matrix = confusion_matrix(remap[labels], preds, len(loaded.classes))
    return {"run": str(run), "data": str(data) if data is not None else images.source,
            "subset": subset, "images": len(labels),
            "accuracy": accuracy(matrix), "classes": loaded.classes,
            "per_class": [{"class": c, **m} for c, m in zip(loaded.classes, per_class(matrix),
                                                            strict=True)],
            "confusion": matrix.tolist(), "skipped": [p for p, _ in images.skipped]}


def predict(run: str | Path, images: list[str | Path], top_k: int = 3, weights: str = "weights",
            device: str | None = None) -> list[dict]:
    """Top-k classes with softmax probabilities for each image file, with PyTorch and the
    run's ``<weights>.safetensors`` (:func:`cnnspec.training.runtime.predict` runs
    ``model.onnx`` on ONNX Runtime instead). Same results format: ``{"image", "top"}``, or
    ``{"image", "error"}`` for a file that is missing or cannot be decoded.

    Raises:
        CnnSpecError / WeightsError: see :func:`load_run`.
    """
    from ..data import load_image
    from .runtime import in_batches

    loaded = load_run(run, weights, device)

    def probabilities_of(pixels: list[torch.Tensor]):
        with torch.no_grad():
            logits = loaded.model.logits()(loaded.norm(to_unit(torch.stack(pixels),
                                                               loaded.device)))
            # over the run's classes only: a head wider than the data's has spare outputs
            return torch.softmax(logits[:, :len(loaded.classes)].double(), 1).cpu().numpy()

    return in_batches(images, lambda path: load_image(path, loaded.model.spec.input),
                      probabilities_of, loaded.classes, top_k)
