"""``cnnspec probe``: how good each layer's features are for new data, and where to cut.

For every cut point of a trained network (:func:`~.layers.cut_points`: each top-level conv
or conv block with what follows it), the images of the new data go through the frozen
network once; each cut point's output (N, C, H, W) is averaged over H and W into C
features, and a linear classifier (multinomial logistic regression, L2 penalty
:data:`L2`, fitted to convergence by L-BFGS on standardised features) is trained on a
stratified share of the images and scored on the rest: the linear probe of Alain & Bengio,
"Understanding intermediate layers using linear classifier probes" (ICLR workshop 2017).

The suggestion follows from the course's reading of transfer learning (early layers: general
features, late layers: features of the source task): freeze up to the deepest cut point
whose probe accuracy is within ``margin`` of the best one, and retrain what comes after.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CnnSpecError, DataError
from .layers import Capture, cut_points

L2 = 1e-3
"""The probe's penalty: ``L2 * ||W||^2`` added to the mean cross-entropy."""
MAX_ITER = 200
"""L-BFGS iterations per probe (its default tolerances end most fits earlier)."""


def rule(margin: float) -> str:
    """The suggestion's rule, as printed."""
    return (f"the deepest layer whose held-out probe accuracy is within {100 * margin:g} "
            "points of the best layer's")


def fit_probe(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
              val_y: torch.Tensor, classes: int) -> tuple[float, float]:
    """(train accuracy, held-out accuracy) in [0, 1] of a linear classifier on features
    (N, F) float, labels (N,) in [0, classes). Deterministic: the problem is convex, the
    weights start at zero and L-BFGS has no randomness."""
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    tx, vx = ((train_x - mean) / std).double(), ((val_x - mean) / std).double()
    linear = nn.Linear(tx.shape[1], classes).double()
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1, max_iter=MAX_ITER,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(linear(tx), train_y) + L2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        train_acc = (linear(tx).argmax(1) == train_y).double().mean().item()
        val_acc = (linear(vx).argmax(1) == val_y).double().mean().item()
    return train_acc, val_acc


def suggest(rows: list[dict], margin: float) -> dict:
    """The row :func:`rule` picks among ``rows`` (in network order)."""
    best = max(r["val_accuracy"] for r in rows)
    return [r for r in rows if r["val_accuracy"] >= best - margin - 1e-12][-1]


def probe(run: str | Path, data: str | Path | None = None, out: str | Path | None = None, *,
          split: float = 0.7, seed: int = 0, margin: float = 0.02, max_images: int = 2000,
          batch: int = 128, weights: str = "weights", device: str | None = None) -> dict:
    """Probe every cut point of the run's network on ``data`` (an image folder
    ``DIR/<class>/<image>``; default: the run's own data, the embedded digits for a run on
    them). At most ``max_images`` images (a stratified sample, ``seed``), of which ``split``
    train the probes and the rest score them. Writes the plot to ``out`` (default
    ``RUN/insight/probe-<data folder name>.png``).

    Returns ``{"run", "data", "images", "train_images", "val_images", "classes", "chance",
    "rows": [{"layer", "shape", "features", "freeze", "train_accuracy", "val_accuracy"}],
    "best", "suggested", "line", "rule", "file"}``; accuracies in [0, 1]; ``chance`` is the
    held-out share of the most common class; ``line`` is the transfer line to paste.

    Raises:
        DataError: the folder is unusable, or has fewer than 2 classes with 2+ images.
        CnnSpecError: ``split`` or ``margin`` is out of range; the network has no conv layer
            with a feature map; see also :func:`cnnspec.training.load_run`.
    """
    from ..data import ImageSet, load_data, loader, stratified_split
    from ..report.pictures import probe_plot
    from ..training.inference import load_run, to_unit

    if not 0 < split < 1:
        raise CnnSpecError(f"--split {split:g}: the share of images that train the probes "
                           "must be between 0 and 1 (exclusive)")
    if not 0 <= margin < 1:
        raise CnnSpecError(f"--margin {margin:g} must be in [0, 1) (0.02 = 2 points)")
    loaded = load_run(run, weights, device)
    spec = loaded.model.spec
    stages = cut_points(spec.shaped)
    if not stages:
        raise CnnSpecError(f"{spec.name} has no conv layer with a feature map to probe")
    if data is None:
        data = loaded.folder.info().get("data")
    images = load_data(data, spec.input)
    labels = torch.as_tensor(images.labels)
    counts = torch.bincount(labels, minlength=len(images.classes)) if len(labels) else labels
    if (counts >= 2).sum() < 2:
        raise DataError(f"{images.source}: a probe needs at least 2 classes with 2 or more "
                        f"images each; found {len(labels)} image(s) in {len(images.classes)} "
                        "class(es)")
    chosen = torch.arange(len(labels))
    if len(labels) > max_images:
        chosen = stratified_split(labels, max_images / len(labels), seed)[0]
    tr, va = stratified_split(labels[chosen], split, seed)
    feats: dict[str, list[torch.Tensor]] = {s.path: [] for s in stages}
    model = loaded.model.logits()
    with Capture(loaded.model, stages) as cap, torch.no_grad():
        for x, _ in loader(ImageSet(images, chosen), batch, shuffle=False):
            model(loaded.norm(to_unit(x, loaded.device)))
            for s in stages:
                feats[s.path].append(cap.outputs[s.path].float().mean((2, 3)).cpu())
    y = labels[chosen]
    k = len(images.classes)
    rows = []
    for s in stages:
        x = torch.cat(feats[s.path])
        train_acc, val_acc = fit_probe(x[tr], y[tr], x[va], y[va], k)
        rows.append({"layer": s.name, "shape": s.shape_text, "features": x.shape[1],
                     "freeze": s.freeze, "train_accuracy": train_acc, "val_accuracy": val_acc})
    pick = suggest(rows, margin)
    best = max(rows, key=lambda r: r["val_accuracy"])
    chance = torch.bincount(y[va], minlength=k).max().item() / max(len(va), 1)
    name = Path(str(data)).name if data is not None else "digits"
    file = Path(out) if out is not None else loaded.folder.insight(f"probe-{name}.png")
    probe_plot(rows, chance, pick["layer"], file,
               f"{spec.name} features on {name}: linear probes ({len(va)} held-out images)")
    return {"run": str(run), "data": images.source, "images": len(chosen),
            "train_images": len(tr), "val_images": len(va), "classes": images.classes,
            "chance": chance, "rows": rows, "best": best["layer"], "suggested": pick["layer"],
            "line": f"freeze up to {pick['freeze']}", "rule": rule(margin), "file": str(file)}
