"""Training data: image folders as file lists, a decoded uint8 cache on disk, and the
``torch.utils.data`` pipeline (lazy Dataset, workers, augmentation) that feeds training.

- :mod:`.folder`: scan ``DIR/<class>/<image>``, decode one file (no pixels kept);
- :mod:`.cache`: decode a folder once per input size, memory-mapped afterwards;
- :mod:`.images`: the decoded images, the Dataset and the per-epoch batch sampler;
- :mod:`.pipeline`: load, split, streaming normalisation statistics, DataLoaders, workers;
- :mod:`.transforms`: the ``augment:`` list as torchvision v2 transforms;
- :mod:`.report`: ``cnnspec data DIR``.
"""

from importlib import import_module

# Names are imported on first use (PEP 562), so ``cnnspec data`` and ``predict`` on ONNX
# Runtime, which need only .folder (Pillow and numpy), never import torch.
_WHERE = {
    "SPLIT_FOLDERS": "folder", "class_names": "folder", "load_image": "folder",
    "read_image": "folder", "scan": "folder", "Images": "images", "ImageSet": "images",
    "channel_stats": "pipeline", "default_workers": "pipeline", "embedded_digits": "pipeline",
    "load_data": "pipeline", "loader": "pipeline", "split_indices": "pipeline",
    "stratified_split": "pipeline", "usable_cores": "pipeline", "augmentation": "transforms",
    "batch_augmentation": "transforms",
}
__all__ = [
    "SPLIT_FOLDERS", "ImageSet", "Images", "augmentation", "batch_augmentation",
    "channel_stats", "class_names", "default_workers", "embedded_digits", "load_data",
    "load_image", "loader", "read_image", "scan", "split_indices", "stratified_split",
    "usable_cores",
]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
