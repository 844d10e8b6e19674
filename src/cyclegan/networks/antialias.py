"""Anti-aliased resampling (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019).

CUT's generator and discriminator blur before they subsample (``Downsample``) and after they
upsample (``Upsample``) instead of using strided / transposed convolutions. The fixed binomial
filter is a buffer named ``filt``, one copy per channel, because CUT's checkpoints store it under
that key (``model.7.filt``); the arithmetic below follows CUT's ``networks.py`` op for op so that
its checkpoints give its outputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_FILTER_SIZE = 7  # CUT's filters: rows 1 to 7 of Pascal's triangle

PAD_LAYERS: dict[str, type[nn.Module]] = {
    "reflect": nn.ReflectionPad2d,
    "refl": nn.ReflectionPad2d,
    "replicate": nn.ReplicationPad2d,
    "repl": nn.ReplicationPad2d,
    "zero": nn.ZeroPad2d,
}


def binomial_filter(size: int) -> torch.Tensor:
    """The normalised 2-D binomial blur (outer product of a Pascal row), size×size, summing to 1."""
    if not 1 <= size <= MAX_FILTER_SIZE:
        raise ValueError(f"blur filter size must be one of {list(range(1, MAX_FILTER_SIZE + 1))}, got {size}")
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    kernel = (row[:, None] * row[None, :]).to(torch.float32)
    return kernel / kernel.sum()


def pad_layer(pad_type: str, sizes: int | list[int]) -> nn.Module:
    if pad_type not in PAD_LAYERS:
        raise ValueError(f"unknown pad type {pad_type!r}; known: {', '.join(PAD_LAYERS)}")
    return PAD_LAYERS[pad_type](sizes)


class Downsample(nn.Module):
    """Blur, then keep every ``stride``-th pixel: H → ceil(H / 2) for the default 3×3, stride 2."""

    def __init__(self, channels: int, pad_type: str = "reflect", filt_size: int = 3, stride: int = 2, pad_off: int = 0):
        super().__init__()
        self.filt_size = filt_size
        self.stride = stride
        self.pad_off = pad_off
        self.channels = channels
        before, after = (filt_size - 1) // 2, math.ceil((filt_size - 1) / 2)
        self.pad_sizes = [before + pad_off, after + pad_off, before + pad_off, after + pad_off]  # left right top bottom
        # channels×1×k×k: one copy of the filter per channel for the depthwise (grouped) convolution.
        self.register_buffer("filt", binomial_filter(filt_size)[None, None].repeat(channels, 1, 1, 1))
        self.pad = pad_layer(pad_type, self.pad_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.filt_size == 1:
            source = x if self.pad_off == 0 else self.pad(x)
            return source[:, :, :: self.stride, :: self.stride]
        return F.conv2d(self.pad(x), self.filt, stride=self.stride, groups=x.shape[1])


class Upsample(nn.Module):
    """Zero-insert by ``stride`` and blur (a transposed depthwise convolution): H → 2H by default.

    The filter is scaled by stride² so that a constant image stays constant.
    """

    def __init__(self, channels: int, pad_type: str = "repl", filt_size: int = 4, stride: int = 2):
        super().__init__()
        self.filt_size = filt_size
        self.filt_odd = filt_size % 2 == 1
        self.pad_size = (filt_size - 1) // 2
        self.stride = stride
        self.channels = channels
        self.register_buffer("filt", (binomial_filter(filt_size) * stride**2)[None, None].repeat(channels, 1, 1, 1))
        self.pad = pad_layer(pad_type, [1, 1, 1, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Pad by one pixel, transpose-convolve, then trim to exactly stride × the input size. CUT trims
        # one more row / column on each side by slicing; for even filters that trim is symmetric and
        # the transposed convolution's own padding does it, so the next convolution (and backward)
        # gets a contiguous tensor instead of copying a strided view.
        padding = 1 + self.pad_size + (0 if self.filt_odd else 1)
        out = F.conv_transpose2d(self.pad(x), self.filt, stride=self.stride, padding=padding, groups=x.shape[1])
        return out[:, :, 1:, 1:] if self.filt_odd else out
