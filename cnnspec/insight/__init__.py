"""What a trained network learned, and where to cut it for transfer.

- :mod:`.layers`: the conv stages the commands look at, hooks that capture their outputs,
  and where each map cell sits on the input (receptive-field centres);
- :mod:`.features`: ``cnnspec features`` (feature maps, first-layer filters) and ``cnnspec
  gradcam`` (Grad-CAM);
- :mod:`.probing`: ``cnnspec probe`` (a linear probe per layer, a suggested freeze point);
- :mod:`.range_test`: ``cnnspec lr-find`` (the learning-rate range test).

Pictures are drawn by :mod:`cnnspec.report.pictures`.
"""

from importlib import import_module

_WHERE = {"feature_maps": "features", "gradcam": "features", "probe": "probing",
          "lr_find": "range_test"}
__all__ = ["feature_maps", "gradcam", "lr_find", "probe"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)
