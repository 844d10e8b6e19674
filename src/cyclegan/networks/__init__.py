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
from cyclegan.networks.compat import load_reference_state_dict
from cyclegan.networks.cut import (
    CUTNLayerDiscriminator,
    CUTResnetGenerator,
    PatchSampleF,
    ReshapeF,
    mlp_channels_in_state_dict,
)
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
# CUT's generators (anti-aliased by default); define_cut_G maps CUT's own --netG names onto these.
CUT_GENERATOR_PREFIX = "cut_"
GENERATORS.add("cut_resnet_9blocks", functools.partial(CUTResnetGenerator, n_blocks=9))
GENERATORS.add("cut_resnet_6blocks", functools.partial(CUTResnetGenerator, n_blocks=6))
GENERATORS.add("cut_resnet_4blocks", functools.partial(CUTResnetGenerator, n_blocks=4))

DISCRIMINATORS: Registry[Callable[..., nn.Module]] = Registry("discriminator (netD)")
DISCRIMINATORS.add("basic", functools.partial(NLayerDiscriminator, n_layers=3))
DISCRIMINATORS.add("n_layers", NLayerDiscriminator)
DISCRIMINATORS.add("pixel", PixelDiscriminator)
DISCRIMINATORS.add("cut_basic", functools.partial(CUTNLayerDiscriminator, n_layers=3))
DISCRIMINATORS.add("cut_n_layers", CUTNLayerDiscriminator)

# CUT's --netF: how PatchNCE samples and projects the generator's encoder features.
FEATURE_PROJECTORS: Registry[Callable[..., nn.Module]] = Registry("feature projector (netF)")
FEATURE_PROJECTORS.add("mlp_sample", functools.partial(PatchSampleF, use_mlp=True))
FEATURE_PROJECTORS.add("sample", functools.partial(PatchSampleF, use_mlp=False))
FEATURE_PROJECTORS.add("reshape", lambda **_: ReshapeF())


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
    elif residual_output:
        raise ValueError(f"--residual_output is for the ResNet generators (resnet_9blocks, resnet_6blocks), "
                         f"not {netG!r}")
    net = init_weights(builder(input_nc, output_nc, ngf=ngf, **kwargs, **extra), init_type, init_gain)
    if residual_output:
        net.start_as_identity()
    return net


def generator_options(m: ModelConfig) -> dict[str, Any]:
    """``define_G``'s keyword arguments from a run's model section (every recipe builds its G with them)."""
    return {"norm": m.norm, "use_dropout": not m.no_dropout, "init_type": m.init_type, "init_gain": m.init_gain,
            "padding_type": m.padding_type, "residual_output": m.residual_output}


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


def define_cut_G(
    input_nc: int,
    output_nc: int,
    ngf: int,
    netG: str,
    norm: str = "instance",
    use_dropout: bool = False,
    init_type: str = "xavier",
    init_gain: float = 0.02,
    no_antialias: bool = False,
    no_antialias_up: bool = False,
    residual_output: bool = False,
) -> nn.Module:
    """CUT's ``define_G``: resnet_9blocks | resnet_6blocks | resnet_4blocks, anti-aliased unless told not to
    (``residual_output``: ours, as in ``define_G``; the keys stay CUT's)."""
    name = CUT_GENERATOR_PREFIX + netG
    if name not in GENERATORS:
        known = ", ".join(n.removeprefix(CUT_GENERATOR_PREFIX) for n in GENERATORS if n.startswith(CUT_GENERATOR_PREFIX))
        raise ValueError(f"unknown CUT generator (netG) {netG!r}; known: {known}")
    return define_G(input_nc, output_nc, ngf, name, norm, use_dropout, init_type, init_gain,
                    residual_output=residual_output, no_antialias=no_antialias, no_antialias_up=no_antialias_up)


def define_cut_D(
    input_nc: int,
    ndf: int,
    netD: str,
    n_layers_D: int = 3,
    norm: str = "instance",
    init_type: str = "xavier",
    init_gain: float = 0.02,
    no_antialias: bool = False,
) -> nn.Module:
    """CUT's ``define_D``: basic | n_layers (anti-aliased PatchGAN) | pixel."""
    if netD == "pixel":  # no down-sampling, so nothing to anti-alias: the reference's PixelGAN
        return define_D(input_nc, ndf, netD, n_layers_D, norm, init_type, init_gain)
    name = CUT_GENERATOR_PREFIX + netD
    if name not in DISCRIMINATORS:
        raise ValueError(f"unknown CUT discriminator (netD) {netD!r}; known: basic, n_layers, pixel")
    return define_D(input_nc, ndf, name, n_layers_D, norm, init_type, init_gain, no_antialias=no_antialias)


def define_F(netF: str = "mlp_sample", init_type: str = "xavier", init_gain: float = 0.02, netF_nc: int = 256) -> nn.Module:
    """CUT's ``define_F``: mlp_sample | sample | reshape. An mlp_sample's MLPs are built on its first batch."""
    return FEATURE_PROJECTORS.get(netF)(init_type=init_type, init_gain=init_gain, nc=netF_nc)


__all__ = [
    "CUTNLayerDiscriminator",
    "CUTResnetGenerator",
    "FEATURE_PROJECTORS",
    "PatchSampleF",
    "ReshapeF",
    "define_F",
    "define_cut_D",
    "define_cut_G",
    "mlp_channels_in_state_dict",
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
