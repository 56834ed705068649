"""The ``augment:`` list as transforms of uint8 batches, in the DataLoader's workers.

A leading run of geometric steps (``crop N pad P`` at the input size, ``rotate D``,
``hflip``, ``vflip``) is fused into one affine resampling of the whole batch with per-image
random parameters (:class:`BatchGeometry`: one ``affine_grid`` + ``grid_sample``, the
technique of the fast CIFAR-10 trainers); the remaining steps run image by image as
torchvision v2 transforms. mixup and cutmix run on a float batch with its labels in the
training step (:func:`batch_augmentation`).
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms import v2

from .. import ir

GEOMETRIC = ("crop", "rotate", "hflip", "vflip")


class BatchGeometry:
    """crop (with zero padding, at the input size), rotate, hflip and vflip of a uint8
    batch (B, C, H, W), each image with its own random parameters, as one affine map from
    output to input pixel coordinates per image, sampled with nearest-neighbour
    interpolation and zeros outside the image: the distributions of ``v2.RandomCrop(size,
    padding=P)`` (integer shifts in [-P, P]), ``v2.RandomRotation(D)`` (angle uniform in
    [-D, D] degrees about the centre, nearest, fill 0) and the random flips (p = 0.5),
    composed in the order written."""

    def __init__(self, steps: list[ir.Augmentation]):
        self.steps = steps

    def _inverse(self, a: ir.Augmentation, n: int, h: int, w: int, g) -> torch.Tensor:
        """(n, 3, 3): output pixel (x, y, 1) -> input pixel of step ``a``."""
        m = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
        if a.kind == "crop":
            shift = torch.randint(-a.pad, a.pad + 1, (n, 2), generator=g).double()
            m[:, 0, 2], m[:, 1, 2] = shift[:, 0], shift[:, 1]
        elif a.kind == "rotate":
            t = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * math.radians(a.degrees)
            cx, cy = (w - 1) / 2, (h - 1) / 2
            cos, sin = t.cos(), t.sin()
            m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
            m[:, 0, 2] = cx - cos * cx + sin * cy
            m[:, 1, 2] = cy - sin * cx - cos * cy
        else:  # hflip / vflip with probability 1/2
            flip = torch.rand(n, generator=g) < 0.5
            axis, extent = (0, w) if a.kind == "hflip" else (1, h)
            m[flip, axis, axis] = -1.0
            m[flip, axis, 2] = extent - 1
        return m

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        m = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
        for a in self.steps:  # sample map of T1 then T2: M1 @ M2
            m = m @ self._inverse(a, n, h, w, generator)
        # pixel coordinates -> the [-1, 1] coordinates of affine_grid (align_corners=False)
        to_norm = torch.tensor([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]],
                               dtype=torch.float64)
        theta = (to_norm @ m @ torch.linalg.inv(to_norm))[:, :2].float()
        grid = torch.nn.functional.affine_grid(theta, [n, c, h, w], align_corners=False)
        out = torch.nn.functional.grid_sample(x.float(), grid, mode="nearest",
                                              padding_mode="zeros", align_corners=False)
        return out.round_().to(torch.uint8)


class Augment:
    """The per-image part of ``augment:`` for uint8 images: ``geometry`` on the whole batch,
    then ``per_image`` (a v2 Compose) on each image. Called on (C, H, W) or (B, C, H, W)."""

    def __init__(self, geometry: BatchGeometry | None, per_image: v2.Transform | None):
        self.geometry, self.per_image = geometry, per_image

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None):
        single = x.dim() == 3
        x = x.unsqueeze(0) if single else x
        if self.geometry is not None:
            x = self.geometry(x, generator)
        if self.per_image is not None:
            x = torch.stack([self.per_image(img) for img in x])
        return x[0] if single else x


def augmentation(augment: list[ir.Augmentation], spec_input: ir.InputShape) -> Augment | None:
    """The ``augment:`` list (but mixup and cutmix) as an :class:`Augment`, in the order
    written; each image draws its own random parameters (a v2 transform called on a whole
    batch would give every image of it the same crop or flip). The leading geometric steps
    are fused (:class:`BatchGeometry`); the rest are torchvision v2 transforms."""
    size = [spec_input.height, spec_input.width]
    steps = [a for a in augment if not a.batched]
    lead = 0
    while lead < len(steps) and steps[lead].kind in GEOMETRIC and (
            steps[lead].kind != "crop" or [steps[lead].size] * 2 == size):
        lead += 1
    geometry = BatchGeometry(steps[:lead]) if lead else None
    per_image = _v2_steps(steps[lead:], spec_input)
    return Augment(geometry, per_image) if geometry or per_image else None


def _v2_steps(augment: list[ir.Augmentation], spec_input: ir.InputShape) -> v2.Transform | None:
    """torchvision v2 transforms of one uint8 (C, H, W) image."""
    size = [spec_input.height, spec_input.width]
    steps = []
    for a in augment:
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
