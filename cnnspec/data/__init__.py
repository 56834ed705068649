"""Training data: image folders as file lists, a decoded uint8 cache on disk, and the
``torch.utils.data`` pipeline (lazy Dataset, workers, augmentation) that feeds training.

- :mod:`.folder`: scan ``DIR/<class>/<image>``, decode one file (no pixels kept);
- :mod:`.cache`: decode a folder once per input size, memory-mapped afterwards;
- :mod:`.images`: the decoded images, the Dataset and the per-epoch batch sampler;
- :mod:`.pipeline`: load, split, streaming normalisation statistics, DataLoaders, workers;
- :mod:`.transforms`: the ``augment:`` list as torchvision v2 transforms;
- :mod:`.report`: ``cnnspec data DIR``.
"""

from .folder import SPLIT_FOLDERS, class_names, load_image, scan
from .images import Images, ImageSet
from .pipeline import (
    channel_stats,
    default_workers,
    embedded_digits,
    load_data,
    loader,
    split_indices,
    stratified_split,
    usable_cores,
)
from .transforms import augmentation, batch_augmentation

__all__ = [
    "SPLIT_FOLDERS", "ImageSet", "Images", "augmentation", "batch_augmentation",
    "channel_stats", "class_names", "default_workers", "embedded_digits", "load_data",
    "load_image", "loader", "scan", "split_indices", "stratified_split", "usable_cores",
]
