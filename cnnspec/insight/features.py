"""``cnnspec features`` and ``cnnspec gradcam``: what a trained network sees in one image.

- :func:`feature_maps`: each conv stage's output for the image, a grid of maps per layer,
  and the first layer's filters as images (Zeiler & Fergus, "Visualizing and Understanding
  Convolutional Networks", ECCV 2014, show the same two things).
- :func:`gradcam`: Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep
  Networks via Gradient-based Localization", ICCV 2017, eq. 1-2): the weights
  alpha_k = mean over (i, j) of d y^c / d A^k_ij, the class score y^c taken before the
  softmax; the map ReLU(sum_k alpha_k A^k), interpolated bilinearly to the input size
  from where each map cell's receptive field is centred (:func:`~.layers.centres`; a plain
  stretch would shift the map of a network with ``valid`` convolutions such as LeNet), and
  scaled to [0, 1] by its maximum.

Both read everything from the run folder (spec, weights, classes, normalisation) and read
the image as training and predict do (:func:`cnnspec.data.folder.read_image_with_origin`).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import CnnSpecError
from ..report.pictures import picture_path
from ..shapes import infer
from .layers import Capture, Stage, centres, conv_stages, cut_points, pick


def open_image(loaded, image: str | Path) -> tuple[torch.Tensor, np.ndarray, str | None]:
    """(normalised float32 (1, C, H, W) on the run's device, the uint8 (C, H, W) pixels at
    the network's input, a line saying how the file was converted or None).

    Raises:
        DataError: the file is missing, not a regular file, or not an image.
    """
    from ..data.folder import conversion, input_text, read_image_with_origin
    from ..training.inference import to_unit

    spec_input = loaded.model.spec.input
    pixels, origin = read_image_with_origin(image, spec_input)
    note = None
    if conversion({origin: 1}, spec_input) is not None:  # the file was not the input as is
        note = f"{image}: {origin} converted to the input {input_text(spec_input)}"
    x = loaded.norm(to_unit(torch.from_numpy(pixels)[None], loaded.device))
    return x, pixels, note


def safe_name(text: str) -> str:
    """``text`` as one file-name component: anything but letters, digits, ``.``, ``_`` and
    ``-`` becomes ``_`` (a class named ``../x`` from a tampered classes.json stays inside).

    >>> safe_name("../../evil"), safe_name("a/b c")
    ('evil', 'a_b_c')
    """
    return re.sub("_+", "_", re.sub(r"[^A-Za-z0-9._-]+|\.{2,}", "_", text)).strip("._") or "_"


def kinds_of(spec) -> dict[str, str]:
    """Every layer's name -> its kind (``conv``, ``dense``, ``residual``, ...)."""
    return {info.name: info.layer.kind for _, _, info in infer(spec).walk()}


def _probabilities(loaded, logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits[0, :len(loaded.classes)].detach().double(), 0).cpu().numpy()


def feature_maps(run: str | Path, image: str | Path, layers: list[str] | None = None,
                 out: str | Path | None = None, weights: str = "weights",
                 device: str | None = None) -> dict:
    """Write one PNG per conv layer of the run's network: its output for ``image`` (each
    map scaled to its own [0, 1]), and ``filters-<first conv>.png``, the first layer's
    kernels as images. ``out``: the folder (default ``RUN/insight/features-<image stem>``).

    Returns ``{"image", "predicted", "probability", "note", "folder", "filters", "layers":
    [{"layer", "shape", "mean", "silent", "file"}]}``; ``silent`` counts the maps that are 0
    everywhere for this image (for ReLU: channels this image does not excite).

    Raises:
        LayerNameError: a name in ``layers`` is not a conv layer of the network.
        CnnSpecError / WeightsError / DataError: see :func:`cnnspec.training.load_run` and
            :func:`open_image`.
    """
    from ..report.pictures import feature_grid, filter_grid
    from ..training.inference import load_run

    loaded = load_run(run, weights, device)
    spec = loaded.model.spec
    stages = conv_stages(infer(spec))
    if not stages:
        raise CnnSpecError(f"{spec.name} has no convolution whose output is a feature map")
    chosen = pick(stages, layers, spec.name, kinds_of(spec)) if layers else stages
    x, _, note = open_image(loaded, image)
    folder = Path(out) if out is not None else loaded.folder.insight(
        f"features-{safe_name(Path(image).stem)}")
    for name in [s.name for s in chosen] + [f"filters-{stages[0].name}"]:
        picture_path(folder / f"{name}.png")  # every target writable before the first is written
    with Capture(loaded.model, chosen) as cap, torch.no_grad():
        probs = _probabilities(loaded, loaded.model.logits()(x))
    rows = []
    for s in chosen:
        a = cap.outputs[s.path][0].float().cpu().numpy()
        silent = int((np.abs(a).reshape(len(a), -1).max(1) == 0).sum())
        file = feature_grid(a, folder / f"{s.name}.png",
                            f"{s.name}: {s.shape_text}, {len(a)} maps ({Path(image).name})")
        rows.append({"layer": s.name, "shape": s.shape_text, "mean": float(a.mean()),
                     "silent": silent, "file": str(file)})
    first = loaded.model.get_submodule(stages[0].path)
    w = first.weight.detach().float().cpu().numpy()
    filters = filter_grid(w, folder / f"filters-{stages[0].name}.png",
                          f"{stages[0].name}: {w.shape[0]} filters "
                          f"{w.shape[2]}x{w.shape[3]}x{w.shape[1]}")
    k = int(probs.argmax())
    return {"image": str(image), "predicted": loaded.classes[k], "probability": float(probs[k]),
            "note": note, "folder": str(folder), "filters": str(filters), "layers": rows}


def class_index(classes: list[str], name: str) -> int:
    """The index of class ``name``.

    Raises:
        CnnSpecError: the run has no such class; the message lists them.
    """
    if name in classes:
        return classes.index(name)
    close = difflib.get_close_matches(name, classes, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise CnnSpecError(f"the run has no class {name!r}; {hint}its classes: {', '.join(classes)}")


def _interpolation(n_out: int, n_in: int, stride: float, offset: float) -> torch.Tensor:
    """(n_out, n_in) weights of linear interpolation between cells centred at
    ``stride * c + offset``; beyond the first and last centres the edge cell's value holds."""
    pos = ((torch.arange(n_out, dtype=torch.float64) - offset) / stride).clamp(0, n_in - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = pos - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, lo), 1 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m


def upsample(cam: torch.Tensor, size: tuple[int, int], grid) -> torch.Tensor:
    """A (h, w) map on the input's (H, W) pixels: separable linear interpolation between the
    cell centres ``grid`` = ((stride, offset) for H, for W) of :func:`~.layers.centres`. For
    a grid of stride s and offset (s - 1) / 2 this equals ``F.interpolate(...,
    mode="bilinear", align_corners=False)``."""
    (sy, oy), (sx, ox) = grid
    rows = _interpolation(size[0], cam.shape[0], sy, oy).to(cam.device)
    cols = _interpolation(size[1], cam.shape[1], sx, ox).to(cam.device)
    return (rows @ cam.double() @ cols.T).float()


def default_layer(stages: list[Stage]) -> Stage | None:
    """Grad-CAM's layer when none is named: the last top-level conv stage whose map is
    larger than 1x1 (Selvaraju et al. use the last convolutional layer; a 1x1 map cannot
    say where)."""
    spatial = [s for s in stages if s.out_shape[1] * s.out_shape[2] > 1]
    return spatial[-1] if spatial else None


def gradcam(run: str | Path, image: str | Path, class_name: str | None = None,
            layer: str | None = None, out: str | Path | None = None,
            weights: str = "weights", device: str | None = None) -> dict:
    """Grad-CAM of ``image`` for the predicted class, or ``class_name``, at ``layer`` (default:
    :func:`default_layer`), as a PNG: image, map, overlay. ``out``: the PNG (default
    ``RUN/insight/gradcam-<image stem>-<class>-<layer>.png``; .png, .svg, .pdf or .jpg).

    Returns ``{"image", "class", "probability", "predicted", "layer", "shape", "note",
    "map": float (H, W) array in [0, 1] at the input size, "file"}``.

    Raises:
        LayerNameError: ``layer`` is not a conv layer (or conv block) of the network.
        CnnSpecError: ``layer``'s map is 1x1 (the message names the last larger one);
            ``class_name`` is not one of the run's classes; see also
            :func:`feature_maps`.
    """
    from ..report.pictures import gradcam_figure
    from ..training.inference import load_run

    loaded = load_run(run, weights, device)
    spec = loaded.model.spec
    shaped = infer(spec)
    tops, convs = cut_points(shaped), conv_stages(shaped)
    stages = tops + [s for s in convs if s.path not in {t.path for t in tops}]
    if layer is not None:
        stage = pick(stages, [layer], spec.name, kinds_of(spec))[0]
        if stage.out_shape[1] * stage.out_shape[2] == 1:  # one cell: no "where" to show
            larger = default_layer(tops)
            raise CnnSpecError(f"--layer {layer}: its map is 1x1 ({stage.shape_text}), so "
                               "Grad-CAM there is one value for the whole image and shows no "
                               "place" + (f"; the last layer with a larger map is "
                                          f"{larger.name} ({larger.shape_text}): --layer "
                                          f"{larger.name}" if larger else ""))
    else:
        stage = default_layer(tops)
        if stage is None:
            raise CnnSpecError(f"{spec.name} has no conv layer with a map larger than 1x1; "
                               "Grad-CAM needs one")
    x, pixels, note = open_image(loaded, image)
    if out is not None:
        picture_path(out)
    model = loaded.model
    model.zero_grad(set_to_none=True)
    with Capture(model, [stage], gradients=True) as cap, torch.enable_grad():
        logits = model.logits()(x)
        probs = _probabilities(loaded, logits)
        c = class_index(loaded.classes, class_name) if class_name else int(probs.argmax())
        logits[0, c].backward()
    a, g = cap.outputs[stage.path][0].detach(), cap.gradients[stage.path][0]
    cam = torch.relu((g.mean((1, 2))[:, None, None] * a).sum(0))
    cam = upsample(cam.float(), tuple(x.shape[-2:]), centres(shaped, stage))
    cam = (cam / cam.max() if cam.max() > 0 else cam).cpu().numpy()
    name = loaded.classes[c]
    file = Path(out) if out is not None else picture_path(loaded.folder.insight(
        f"gradcam-{safe_name(Path(image).stem)}-{safe_name(name)}-{stage.name}.png"))
    predicted = loaded.classes[int(probs.argmax())]
    gradcam_figure(pixels, cam, file, f"Grad-CAM for {name!r} ({probs[c]:.1%}) at {stage.name} "
                   f"({stage.shape_text}); predicted {predicted!r}")
    return {"image": str(image), "class": name, "probability": float(probs[c]),
            "predicted": predicted, "layer": stage.name, "shape": stage.shape_text,
            "note": note, "map": cam, "file": str(file)}
