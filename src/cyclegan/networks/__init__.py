"""Networks with the reference's names, arguments and defaults: ``define_G`` and ``define_D``.

Unlike the reference these know nothing of devices or wrappers: move, wrap (DDP) and compile
them in the trainer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from torch import nn

from cyclegan.config import ModelConfig
from cyclegan.core.registry import Registry
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
    residual_output: bool = False,
    colour_branch: int = 0,
    body_scale: float = 1.0,
    **extra,
) -> nn.Module:
    """Build and initialise a generator: resnet_9blocks | resnet_6blocks | unet_128 | unet_256.

    ``residual_output``: a ResNet generator that starts as the identity (see ``ResnetGenerator``).
    """
    builder = GENERATORS.get(netG)
    kwargs = {"norm_layer": get_norm_layer(norm), "use_dropout": use_dropout, "use_bias": conv_bias_for(norm)}
    if "resnet" in netG:
        kwargs["padding_type"] = padding_type
        if residual_output:
            kwargs["residual_output"] = True
        if colour_branch:
            kwargs["colour_branch"] = colour_branch
        if body_scale != 1.0:
            kwargs["body_scale"] = body_scale
    elif residual_output or colour_branch or body_scale != 1.0:
        raise ValueError(f"--residual_output, --colour_branch and --body_scale are for the ResNet generators (resnet_9blocks, "
                         f"resnet_6blocks), not {netG!r}")
    net = init_weights(builder(input_nc, output_nc, ngf=ngf, **kwargs, **extra), init_type, init_gain)
    if residual_output:
        net.start_as_identity()
    return net


def generator_options(m: ModelConfig) -> dict[str, Any]:
    """``define_G``'s keyword arguments from a run's model section (every recipe builds its G with them)."""
    return {"norm": m.norm, "use_dropout": not m.no_dropout, "init_type": m.init_type, "init_gain": m.init_gain,
            "padding_type": m.padding_type, "residual_output": m.residual_output,
            "colour_branch": m.colour_branch, "body_scale": m.body_scale}


def define_D(
    input_nc: int,
    ndf: int,
    netD: str,
    n_layers_D: int = 3,
    norm: str = "batch",
    init_type: str = "normal",
    init_gain: float = 0.02,
    **extra,
) -> nn.Module:
    """Build and initialise a discriminator: basic (70×70 PatchGAN) | n_layers | pixel."""
    builder = DISCRIMINATORS.get(netD)
    kwargs = {"norm_layer": get_norm_layer(norm), "use_bias": conv_bias_for(norm)}
    if netD.endswith("n_layers"):
        kwargs["n_layers"] = n_layers_D
    net = builder(input_nc, ndf=ndf, **kwargs, **extra)
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
    "generator_options",
    "init_weights",
    "load_reference_state_dict",
]
