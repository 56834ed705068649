"""The ``augment:`` list as torchvision v2 transforms.

Per-image transforms run on one uint8 (C, H, W) image at a time, inside the DataLoader's
workers (:class:`cnnspec.data.images.ImageSet`); mixup and cutmix run on a float batch with
its labels in the training step.
"""

from __future__ import annotations

from torchvision.transforms import v2

from .. import ir


def augmentation(augment: list[ir.Augmentation], spec_input: ir.InputShape) -> v2.Transform | None:
    """The ``augment:`` list as a torchvision ``v2.Compose`` applied to one uint8 (C, H, W)
    image, in the order written. Each image draws its own random parameters (a v2 transform
    called on a whole batch would give every image of it the same crop or flip)."""
    size = [spec_input.height, spec_input.width]
    steps = []
    for a in (a for a in augment if not a.batched):
        if a.kind == "hflip":
            steps.append(v2.RandomHorizontalFlip())
        elif a.kind == "vflip":
            steps.append(v2.RandomVerticalFlip())
        elif a.kind == "crop":
            steps.append(v2.RandomCrop(a.size, padding=a.pad or None))
            if a.size != spec_input.height or a.size != spec_input.width:
                steps.append(v2.Resize(size, antialias=True))
        elif a.kind == "rotate":
            steps.append(v2.RandomRotation(a.degrees))
        elif a.kind == "random_resized_crop":
            steps.append(v2.RandomResizedCrop(a.size or size, scale=a.scale or (0.08, 1.0),
                                              antialias=True))
            if a.size is not None and [a.size, a.size] != size:
                steps.append(v2.Resize(size, antialias=True))
        elif a.kind == "color_jitter":  # hue and saturation leave 1-channel images unchanged
            steps.append(v2.ColorJitter(brightness=a.brightness, contrast=a.contrast,
                                        saturation=a.saturation, hue=a.hue))
        elif a.kind == "random_erasing":  # erased pixels are 0 (black) before normalisation
            steps.append(v2.RandomErasing(p=a.p, scale=a.scale or (0.02, 0.33), value=0))
    return v2.Compose(steps) if steps else None


def batch_augmentation(augment: list[ir.Augmentation], num_classes: int) -> v2.Transform | None:
    """``mixup`` / ``cutmix`` as torchvision's batch transforms: called on a float batch
    (B, C, H, W) and its labels (B,), they return the mixed batch and soft labels
    (B, num_classes); with both, ``v2.RandomChoice`` picks one per batch."""
    steps = [v2.MixUp(alpha=a.alpha, num_classes=num_classes) if a.kind == "mixup"
             else v2.CutMix(alpha=a.alpha, num_classes=num_classes)
             for a in augment if a.batched]
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else v2.RandomChoice(steps)
