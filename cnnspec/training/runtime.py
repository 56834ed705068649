"""A finished run on ONNX Runtime: ``predict`` with the run's ``model.onnx``, no PyTorch.

``model.onnx`` holds the normalisation and the network with the run's final weights; it
takes float32 (N, C, H, W) pixels in [0, 1] and returns logits (N, outputs), or
probabilities when it was exported with ``--softmax`` (its metadata says which). Images are
decoded and resized as training decoded them (:func:`cnnspec.data.folder.decode_array`,
Pillow alone), so ONNX Runtime and PyTorch see the same pixels. Importing this module, Pillow,
numpy and ONNX Runtime takes a fraction of a second; PyTorch with torchvision takes seconds
(``benchmarks/startup.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.folder import read_image
from ..errors import CnnSpecError, DataError
from .run_folder import RunFolder

BATCH = 64
"""Images per ONNX Runtime call (memory stays bounded for any number of files)."""


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, computed stably (max subtracted first).

    >>> softmax(np.array([[0.0, np.log(3.0)]])).round(3).tolist()
    [[0.25, 0.75]]
    """
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def top_classes(probs: np.ndarray, classes: list[str], k: int) -> list[dict]:
    """The ``k`` most likely classes of one image's probabilities, most likely first."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"class": classes[i], "probability": float(probs[i])} for i in order]


def ranked(probs: np.ndarray, classes: list[str], k: int, image: str) -> dict:
    """``{"top": ...}`` for one image, or ``{"error": ...}`` when the network's outputs are
    not finite (damaged weights would otherwise print "nan%")."""
    if not np.isfinite(probs).all():
        return {"error": f"{image}: the network's outputs are not finite (NaN or inf): the "
                         "run's weights are damaged; train again, or try --weights best"}
    return {"top": top_classes(probs, classes, k)}


def predict(run: str | Path, images: list[str | Path], top_k: int = 3,
            device: str | None = None) -> list[dict]:
    """Top-k classes with softmax probabilities for each image file, from ``run/model.onnx``
    on ONNX Runtime (its CUDA provider where it loads, unless ``device`` is ``cpu``).

    Returns one dict per image, in order: ``{"image", "top": [{"class", "probability"}]}``,
    or ``{"image", "error"}`` for a file that is missing or cannot be decoded (the others are
    still predicted).

    ``run`` may also be a ``.onnx`` file that cnnspec wrote (``compile --onnx``): the class
    names are then its metadata's (named weights with ``classes keep``: their categories),
    else the output indices.

    Raises:
        CnnSpecError: ``run`` is not a finished run folder, or has no model.onnx.
    """
    from ..export import session

    model = Path(run)
    if model.suffix == ".onnx" and model.is_file():  # compile --onnx's file, no run folder
        classes = None
    else:
        folder = RunFolder(run)
        model = folder.onnx
        if not model.is_file():
            raise CnnSpecError(f"{folder.onnx}: no such file; a run writes model.onnx when it "
                               "ends. Predict with PyTorch instead: --backend torch")
        try:
            classes = folder.classes()
        except (OSError, ValueError) as exc:
            raise CnnSpecError(f"{run}: not a finished run folder ({exc})") from None
    try:
        sess = session(model, device=device)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types: a damaged file
        raise CnnSpecError(f"{model}: ONNX Runtime cannot load it: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                           ) from None
    meta = sess.get_modelmeta().custom_metadata_map
    # model.onnx says what it outputs (cnnspec.export.metadata); older ones output logits
    output = meta.get("output", "logits")
    feed, spec_input = _image_input(sess, model)
    if classes is None:  # a bare model.onnx: its metadata's class names, else the indices
        classes = _classes_of(meta, sess.get_outputs()[0].shape[-1])
    probabilities = output.startswith("probabilities")
    def probabilities_of(pixels: list[np.ndarray]) -> np.ndarray:
        x = np.stack(pixels).astype(np.float32) / np.float32(255)
        # over the run's classes only: a head wider than the data's has spare outputs
        outputs = sess.run(None, {feed.name: x})[0][:, :len(classes)].astype(np.float64)
        return outputs / outputs.sum(axis=1, keepdims=True) if probabilities else softmax(outputs)

    return in_batches(images, lambda path: read_image(path, spec_input), probabilities_of,
                      classes, top_k)


def _image_input(sess, path):
    """(the model's one input, its (C, H, W) as an InputShape): float images (N, C, H, W)
    with fixed positive sizes, as cnnspec exports them.

    Raises:
        CnnSpecError: another kind of model (more inputs, another rank, symbolic or zero
            sizes, integer input), said as such.
    """
    from ..ir import InputShape

    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise CnnSpecError(f"{path}: the model has {len(inputs)} inputs; cnnspec predicts with "
                           "models of one image input (N, C, H, W), as it exports them")
    feed = inputs[0]
    dims = list(feed.shape)
    if "float" not in feed.type or len(dims) != 4 or not all(
            isinstance(d, int) and d > 0 for d in dims[1:]):
        raise CnnSpecError(f"{path}: the model's input is {feed.type} {dims}; cnnspec predicts "
                           "with float32 images (N, C, H, W) of fixed C, H and W, as it "
                           "exports them")
    return feed, InputShape(height=dims[2], width=dims[3], channels=dims[1])


def _classes_of(meta: dict, outputs) -> list[str]:
    """A model.onnx's class names (its ``classes`` metadata), else "0", "1", ..."""
    import json

    try:
        names = json.loads(meta["classes"])
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            return names
    except (KeyError, ValueError):
        pass
    if not isinstance(outputs, int) or outputs < 1:
        raise CnnSpecError("the ONNX model names no classes and its output size is not fixed; "
                           "predict with a run folder instead")
    return [str(i) for i in range(outputs)]


def in_batches(images: list[str | Path], read, probabilities_of, classes: list[str],
               top_k: int) -> list[dict]:
    """The results of ``predict`` (both backends): each image read with ``read(path)``
    (DataError: that image's ``{"image", "error"}``, the others go on), :data:`BATCH` at a
    time through ``probabilities_of(pixels) -> (N, len(classes))``, ranked."""
    k = min(top_k, len(classes))
    results: list[dict] = []
    for start in range(0, len(images), BATCH):
        chunk, pixels = [], []
        for path in images[start:start + BATCH]:
            try:
                pixels.append(read(path))
                chunk.append({"image": str(path)})
            except DataError as exc:  # named in the results; the other images go on
                chunk.append({"image": str(path), "error": str(exc)})
        if pixels:
            probs = iter(probabilities_of(pixels))
            for item in chunk:
                if "error" not in item:
                    item.update(ranked(next(probs), classes, k, item["image"]))
        results.extend(chunk)
    return results
