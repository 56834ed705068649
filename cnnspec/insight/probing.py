"""``cnnspec probe``: how good each layer's features are for new data, and where to cut.

For every cut point of a trained network (:func:`~.layers.cut_points`: each top-level conv
or conv block with what follows it), the images of the new data go through the frozen
network once; each cut point's output (N, C, H, W) is averaged over H and W into C
features, and a linear classifier (multinomial logistic regression, L2 penalty
:data:`L2`, fitted to convergence by L-BFGS on standardised features) is trained and scored
by stratified k-fold cross-validation: the linear probe of Alain & Bengio,
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
from ..shapes import infer
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


def folds_of(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """(N,) fold number in [0, folds) of each image: each class shuffled by ``seed`` and dealt
    round the folds, so every fold holds each class in proportion (stratified k-fold)."""
    g = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(labels), dtype=torch.long)
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        fold[idx[torch.randperm(len(idx), generator=g)]] = torch.arange(len(idx)) % folds
    return fold


def splits(labels: torch.Tensor, val_mask, folds: int, seed: int):
    """The (train, held-out) index pairs the probes are scored on: the folder's own train/ and
    val/ when it has them, else every fold of a stratified k-fold split (each image is
    held out once, so small data gives a steadier estimate than one split)."""
    if val_mask is not None:
        held = torch.as_tensor(val_mask, dtype=torch.bool)
        return [((~held).nonzero().flatten(), held.nonzero().flatten())]
    fold = folds_of(labels, folds, seed)
    return [((fold != f).nonzero().flatten(), (fold == f).nonzero().flatten())
            for f in range(folds) if (fold == f).any()]


def probe(run: str | Path, data: str | Path | None = None, out: str | Path | None = None, *,
          folds: int = 5, seed: int = 0, margin: float = 0.02, max_images: int = 2000,
          batch: int = 128, weights: str = "weights", device: str | None = None) -> dict:
    """Probe every cut point of the run's network on ``data`` (an image folder
    ``DIR/<class>/<image>``; default: the run's own data, the embedded digits for a run on
    them). At most ``max_images`` images (a stratified sample, ``seed``), scored by
    stratified ``folds``-fold cross-validation (each image held out once; accuracy = correct
    held-out predictions / images); a folder of ``train/`` and ``val/`` keeps its own split.
    Writes the plot to ``out`` (default ``RUN/insight/probe-<data folder name>.png``).

    Returns ``{"run", "data", "images", "folds", "held_out", "classes", "chance", "rows":
    [{"layer", "shape", "features", "freeze", "train_accuracy", "val_accuracy"}], "best",
    "suggested", "line", "rule", "file", "note", "skipped"}`` (``note``: how the images were
    converted to the input, or None; ``skipped``: files that could not be decoded); accuracies in [0, 1] (train: mean over folds);
    ``chance`` is the share of the most common class among the held-out images; ``line`` is
    the transfer line to paste.

    Raises:
        DataError: the folder is unusable, or has fewer than 2 classes with 2+ images.
        CnnSpecError: ``folds`` or ``margin`` is out of range; the network has no conv layer
            with a feature map; see also :func:`cnnspec.training.load_run`.
    """
    from ..data import ImageSet, load_data, loader, stratified_split
    from ..report.pictures import probe_plot
    from ..training.inference import load_run, to_unit

    if folds < 2:
        raise CnnSpecError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if not 0 <= margin < 1:
        raise CnnSpecError(f"--margin {margin:g} must be in [0, 1) (0.02 = 2 points)")
    from ..report.pictures import picture_path
    from .features import safe_name

    if out is not None:
        picture_path(out)
    loaded = load_run(run, weights, device)
    spec = loaded.model.spec
    stages = cut_points(infer(spec))
    if not stages:
        raise CnnSpecError(f"{spec.name} has no conv layer with a feature map to probe")
    if data is None:
        data = loaded.folder.info().get("data")  # a damaged entry is named there
    from ..data.folder import conversion

    images = load_data(data, spec.input)
    note = conversion(getattr(images, "origins", None) or {}, spec.input)
    labels = torch.as_tensor(images.labels)
    counts = torch.bincount(labels, minlength=len(images.classes)) if len(labels) else labels
    if (counts >= 2).sum() < 2:
        raise DataError(f"{images.source}: a probe needs at least 2 classes with 2 or more "
                        f"images each; found {len(labels)} image(s) in {len(images.classes)} "
                        "class(es)")
    chosen = torch.arange(len(labels))
    if len(labels) > max_images:
        chosen = stratified_split(labels, max_images / len(labels), seed)[0]
    y = labels[chosen]
    mask = None if images.val_mask is None else images.val_mask.astype(bool)[chosen.numpy()]
    pairs = splits(y, mask, folds, seed)
    if any(len(tr) == 0 or len(va) == 0 for tr, va in pairs):
        raise DataError(f"{images.source}: the sample of {len(chosen)} images leaves "
                        + ("no image in train/ or in val/" if mask is not None else
                           "a cross-validation fold empty") + "; raise --max-images")
    feats: dict[str, list[torch.Tensor]] = {s.path: [] for s in stages}
    model = loaded.model.logits()
    with Capture(loaded.model, stages) as cap, torch.no_grad():
        for x, _ in loader(ImageSet(images, chosen), batch, shuffle=False):
            model(loaded.norm(to_unit(x, loaded.device)))
            for s in stages:
                feats[s.path].append(cap.outputs[s.path].float().mean((2, 3)).cpu())
    k = len(images.classes)
    held = torch.cat([va for _, va in pairs])
    rows = []
    for s in stages:
        x = torch.cat(feats[s.path])
        scores = [fit_probe(x[tr], y[tr], x[va], y[va], k) for tr, va in pairs]
        rows.append({"layer": s.name, "shape": s.shape_text, "features": x.shape[1],
                     "freeze": s.freeze,
                     "train_accuracy": sum(t for t, _ in scores) / len(scores),
                     "val_accuracy": sum(v * len(va) for (_, v), (_, va)
                                         in zip(scores, pairs, strict=True)) / len(held)})
    pick = suggest(rows, margin)
    best = max(rows, key=lambda r: r["val_accuracy"])
    chance = torch.bincount(y[held], minlength=k).max().item() / len(held)
    name = "digits" if data is None else Path(str(data)).resolve().name or "data"
    if name in ("train", "val"):  # DIR/train: name DIR too
        name = f"{Path(str(data)).resolve().parent.name}/{name}"
    file = Path(out) if out is not None else picture_path(loaded.folder.insight(
        f"probe-{safe_name(name.replace('/', '-'))}.png"))
    scored = "train/ and val/" if mask is not None else f"{len(pairs)}-fold cross-validation"
    probe_plot(rows, chance, pick["layer"], file,
               f"{spec.name} features on {name}\nlinear probes ({scored}, {len(held)} held out)")
    return {"run": str(run), "data": images.source, "images": len(chosen),
            "folds": len(pairs) if mask is None else None, "held_out": len(held),
            "classes": images.classes, "chance": chance, "rows": rows, "best": best["layer"],
            "suggested": pick["layer"], "line": f"freeze up to {pick['freeze']}",
            "rule": rule(margin), "file": str(file), "note": note,
            "skipped": [p for p, _ in images.skipped]}
