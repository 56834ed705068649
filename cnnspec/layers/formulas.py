"""The formulas of shapes and counts, each with its source and a doctest: output sizes of
windows, parameters and multiply-accumulates (MACs: one multiply plus one add; FLOPs =
2 x MACs). Read by the layer kinds; :mod:`cnnspec.shapes` re-exports them."""

from __future__ import annotations

Shape = tuple[int, ...]


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window along one axis.

    ``floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``, from the
    ``torch.nn.Conv2d`` and ``torch.nn.MaxPool2d`` docs (shape section).

    >>> conv_out(224, 11, stride=4, padding=2)   # AlexNet's first convolution
    55
    >>> conv_out(32, 5)                          # LeNet-5's C1, no padding
    28
    """
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_out(size: int, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False,
             dilation: int = 1) -> int:
    """Output length of a pooling window, with PyTorch's ``ceil_mode`` rule: round up, but a
    window must start inside the input or its left padding (``torch.nn.MaxPool2d`` docs;
    ``pooling_output_shape`` in ATen's Pool.h).

    >>> pool_out(112, 3, 2, ceil_mode=True), pool_out(112, 3, 2)   # GoogLeNet's maxpool1
    (56, 55)
    >>> pool_out(14, 2, 2, ceil_mode=True)
    7
    """
    if not ceil_mode:
        return conv_out(size, kernel, stride, padding, dilation)
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def conv_params(in_channels: int, out_channels: int, kernel: tuple[int, int], bias: bool = True,
                groups: int = 1) -> int:
    """Weights ``out * (in / groups) * kh * kw`` plus one bias per filter.

    >>> conv_params(512, 512, (3, 3))    # VGG's 3x3x512 convolution
    2359808
    >>> conv_params(512, 128, (1, 1))    # a transition 1x1x128
    65664
    """
    return out_channels * (in_channels // groups) * kernel[0] * kernel[1] + (out_channels if bias else 0)


def conv_macs(out_shape: Shape, in_channels: int, kernel: tuple[int, int], groups: int = 1) -> int:
    """One multiply-accumulate per weight per output position: ``Ho*Wo*Co * (Ci/groups)*kh*kw``.

    The usual count (torchvision's model docs, fvcore, ptflops); biases are not counted.

    >>> conv_macs((64, 224, 224), 3, (3, 3))   # VGG-16's first convolution
    86704128
    """
    c, h, w = out_shape
    return h * w * c * (in_channels // groups) * kernel[0] * kernel[1]


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """``in * out`` weights plus ``out`` biases (``torch.nn.Linear``).

    >>> dense_params(400, 120)   # LeNet-5's F1 (C5 in the paper)
    48120
    """
    return in_features * out_features + (out_features if bias else 0)


def batchnorm_counts(channels: int) -> tuple[int, int]:
    """(parameters, buffers) of ``torch.nn.BatchNorm2d``: weight + bias; running mean + var
    + ``num_batches_tracked``. Buffers are state, never parameters.

    >>> batchnorm_counts(64)
    (128, 129)
    """
    return 2 * channels, 2 * channels + 1
