"""Networks with the reference's names, arguments and defaults: ``define_G`` and ``define_D``.

Unlike the reference these know nothing of devices or wrappers: move, wrap (DDP) and compile
them in the trainer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn

from cyclegan.networks.compat import load_reference_state_dict
from cyclegan.networks.discriminators import NLayerDiscriminator, PixelDiscriminator
from cyclegan.networks.generators import (
    ImageSizeError,
    ResnetBlock,
    ResnetGenerator,
    UnetGenerator,
    UnetSkipConnectionBlock,
    enable_gradient_checkpointing,
)
from cyclegan.networks.layers import NORM_LAYERS, conv_bias_for, get_norm_layer, init_weights
from cyclegan.registry import Registry

GENERATORS: Registry[Callable[..., nn.Module]] = Registry("generator (netG)")
GENERATORS.add("resnet_9blocks", functools.partial(ResnetGenerator, n_blocks=9))
GENERATORS.add("resnet_6blocks", functools.partial(ResnetGenerator, n_blocks=6))
GENERATORS.add("unet_128", functools.partial(UnetGenerator, num_downs=7))
GENERATORS.add("unet_256", functools.partial(UnetGenerator, num_downs=8))

DISCRIMINATORS: Registry[Callable[..., nn.Module]] = Registry("discriminator (netD)")
DISCRIMINATORS.add("basic", functools.partial(NLayerDiscriminator, n_layers=3))
DISCRIMINATORS.add("n_layers", NLayerDiscriminator)
DISCRIMINATORS.add("pixel", PixelDiscriminator)


def define_G(
    input_nc: int,
    output_nc: int,
    ngf: int,
    netG: str,
    norm: str = "batch",
    use_dropout: bool = False,
    init_type: str = "normal",
    init_gain: float = 0.02,
    padding_type: str = "reflect",
) -> nn.Module:
    """Build and initialise a generator: resnet_9blocks | resnet_6blocks | unet_128 | unet_256."""
    builder = GENERATORS.get(netG)
    kwargs = {"norm_layer": get_norm_layer(norm), "use_dropout": use_dropout, "use_bias": conv_bias_for(norm)}
    if netG.startswith("resnet"):
        kwargs["padding_type"] = padding_type
    net = builder(input_nc, output_nc, ngf=ngf, **kwargs)
    return init_weights(net, init_type, init_gain)


def define_D(
    input_nc: int,
    ndf: int,
    netD: str,
    n_layers_D: int = 3,
    norm: str = "batch",
    init_type: str = "normal",
    init_gain: float = 0.02,
) -> nn.Module:
    """Build and initialise a discriminator: basic (70×70 PatchGAN) | n_layers | pixel."""
    builder = DISCRIMINATORS.get(netD)
    kwargs = {"norm_layer": get_norm_layer(norm), "use_bias": conv_bias_for(norm)}
    if netD == "n_layers":
        kwargs["n_layers"] = n_layers_D
    net = builder(input_nc, ndf=ndf, **kwargs)
    return init_weights(net, init_type, init_gain)


__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "NORM_LAYERS",
    "ImageSizeError",
    "NLayerDiscriminator",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "UnetGenerator",
    "UnetSkipConnectionBlock",
    "define_D",
    "define_G",
    "enable_gradient_checkpointing",
    "init_weights",
    "load_reference_state_dict",
]
