"""The reference's discriminators: the N-layer PatchGAN (``basic`` = 70×70) and the 1×1 PixelGAN.

Module layout matches the reference (``model.N`` / ``net.N``) for checkpoint compatibility.
"""

from __future__ import annotations

import torch
from torch import nn

from cyclegan.networks.antialias import Downsample
from cyclegan.networks.generators import ImageSizeError
from cyclegan.networks.layers import NormFactory


class NLayerDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 4×4 convs, one stride-1 conv, then a 1-channel stride-1 conv.

    With n_layers=3 each output unit sees a 70×70 input patch (``cyclegan inspect`` shows the
    arithmetic per layer); at 256×256 the output is 30×30. ``antialias`` gives CUT's variant: each
    down-sampling is a stride-1 conv, norm, LeakyReLU, then blur-and-subsample.
    """

    def __init__(
        self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm_layer: NormFactory = nn.BatchNorm2d,
        use_bias: bool = False, antialias: bool = False,
    ):
        if n_layers < 1:
            raise ValueError(f"n_layers_D must be >= 1, got {n_layers}")
        super().__init__()
        self.input_nc = input_nc
        self.n_layers = n_layers
        self.antialias = antialias
        kernel, pad, stride = 4, 1, 1 if antialias else 2
        sequence: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=kernel, stride=stride, padding=pad),
            nn.LeakyReLU(0.2, True),
        ]
        if antialias:
            sequence.append(Downsample(ndf))
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            sequence += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=kernel, stride=stride, padding=pad, bias=use_bias),
                norm_layer(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
            if antialias:
                sequence.append(Downsample(ndf * mult))
        prev, mult = mult, min(2**n_layers, 8)
        sequence += [
            nn.Conv2d(ndf * prev, ndf * mult, kernel_size=kernel, stride=1, padding=pad, bias=use_bias),
            norm_layer(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, kernel_size=kernel, stride=1, padding=pad),
        ]
        self.model = nn.Sequential(*sequence)
        # The smallest input that still gives a 1×1 output map.
        self.min_size = next(size for size in range(1, 10**6) if self.output_size(size) >= 1)

    def output_size(self, size: int) -> int:
        """Side of the output map for an input side ``size`` (0 when too small for some layer)."""
        for _ in range(self.n_layers):
            if not self.antialias:
                size = (size - 2) // 2 + 1  # 4×4 conv, stride 2, padding 1
            else:
                size -= 1  # 4×4 conv, stride 1, padding 1
                if size < 2:  # the blur's reflection padding needs 2 pixels
                    return 0
                size = (size + 1) // 2  # 3×3 blur, padding 1, stride 2
            if size < 1:
                return 0
        return max(size - 2, 0)  # the two final 4×4 stride-1 convs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_discriminator_input(self, x)
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1×1 PatchGAN (PixelGAN): classifies each pixel on its own."""

    def __init__(self, input_nc: int, ndf: int = 64, norm_layer: NormFactory = nn.BatchNorm2d, use_bias: bool = False):
        super().__init__()
        self.input_nc = input_nc
        self.min_size = 1
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1, stride=1, padding=0),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, stride=1, padding=0, bias=use_bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, stride=1, padding=0, bias=use_bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_discriminator_input(self, x)
        return self.net(x)


def check_discriminator_input(net: nn.Module, x: torch.Tensor) -> None:
    """Raise a clear error before any convolution for a wrong channel count or a too small image."""
    if x.dim() != 4 or x.shape[1] != net.input_nc:
        raise ImageSizeError(
            f"{type(net).__name__} was built for N×{net.input_nc}×H×W input, got shape {tuple(x.shape)}"
        )
    if min(x.shape[-2:]) < net.min_size:
        raise ImageSizeError(
            f"{type(net).__name__} needs images of at least {net.min_size}×{net.min_size}, got "
            f"{x.shape[-2]}×{x.shape[-1]}; use a larger --crop_size or fewer --n_layers_D"
        )
