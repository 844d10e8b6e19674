"""CUT's networks (Park et al., ECCV 2020; taesungp/contrastive-unpaired-translation), key for key.

- ``CUTResnetGenerator``: the ResNet generator with anti-aliased down-sampling (conv, norm, ReLU,
  blur-and-subsample) and up-sampling (blur-upsample, conv, norm, ReLU); called as CUT calls it,
  ``G(x, layers=nce_layers, encode_only=True)`` returns the encoder features PatchNCE reads.
- ``CUTNLayerDiscriminator``: the PatchGAN with the same anti-aliasing.
- ``PatchSampleF`` (``--netF mlp_sample | sample``) and ``ReshapeF`` (``reshape``): the feature
  projector; its per-layer MLPs are built from the first batch's feature shapes.

Module order and names follow CUT's ``networks.py`` (``model.7.filt``, ``mlp_0.2.weight``) so its
checkpoints load with ``strict=True``; keep it so when editing. With ``no_antialias`` and
``no_antialias_up`` the generator's keys are those of the CycleGAN reference's ResNet generator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from cyclegan.core.registry import Registry
from cyclegan.networks import DISCRIMINATORS, GENERATORS, define_D, define_G
from cyclegan.networks.discriminators import NLayerDiscriminator
from cyclegan.networks.generators import ImageSizeError, ResnetGenerator
from cyclegan.networks.layers import NormFactory, init_weights

Features = list[torch.Tensor]


class CUTResnetGenerator(ResnetGenerator):
    """The anti-aliased ResNet generator with CUT's defaults (instance norm, 9 blocks, conv biases).

    ``forward(x)`` translates; ``forward(x, layers=[...])`` also returns the outputs of the
    ``self.model`` entries at those indices (CUT's ``nce_layers``, e.g. 0, 4, 8, 12, 16), and with
    ``encode_only=True`` stops after the last of them and returns the features alone.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        norm_layer: NormFactory = nn.InstanceNorm2d,
        use_dropout: bool = False,
        n_blocks: int = 9,
        padding_type: str = "reflect",
        use_bias: bool = True,
        no_antialias: bool = False,
        no_antialias_up: bool = False,
        residual_output: bool = False,
        colour_branch: int = 0,
        body_scale: float = 1.0,
    ):
        super().__init__(input_nc, output_nc, ngf, norm_layer, use_dropout, n_blocks, padding_type, use_bias,
                         antialias=not no_antialias, antialias_up=not no_antialias_up,
                         residual_output=residual_output, colour_branch=colour_branch, body_scale=body_scale)

    def forward(
        self, x: torch.Tensor, layers: Sequence[int] | None = None, encode_only: bool = False
    ) -> torch.Tensor | Features | tuple[torch.Tensor, Features]:
        if not layers:
            return super().forward(x)
        return self.forward_features(x, layers, encode_only)

    def forward_features(
        self, x: torch.Tensor, layers: Sequence[int], encode_only: bool = False
    ) -> Features | tuple[torch.Tensor, Features]:
        """The outputs of ``self.model[i]`` for i in ``layers`` (in layer order), and the image unless encode_only."""
        self.check_input(x)
        wanted = sorted(set(int(i) for i in layers))
        if wanted[0] < 0 or wanted[-1] >= len(self.model):
            raise ValueError(
                f"nce_layers {list(layers)} out of range: this generator has layers 0..{len(self.model) - 1}"
            )
        height, width = x.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ImageSizeError(
                f"{type(self).__name__} needs height and width divisible by {self.size_multiple} for its "
                f"features, got {height}×{width}; crop or resize to a multiple (e.g. --crop_size)"
            )
        features: Features = []
        feature = x
        for index, layer in enumerate(self.model):
            feature = layer(feature)
            if index in wanted:
                features.append(feature)
                if encode_only and index == wanted[-1]:
                    return features  # the decoder is not needed
        return (self.add_input(feature, x) if self.residual_output else feature), features


class CUTNLayerDiscriminator(NLayerDiscriminator):
    """The anti-aliased PatchGAN with CUT's defaults; with ``no_antialias`` the reference's, key for key."""

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm_layer: NormFactory = nn.InstanceNorm2d,
        use_bias: bool = True,
        no_antialias: bool = False,
    ):
        super().__init__(input_nc, ndf, n_layers, norm_layer, use_bias, antialias=not no_antialias)


def l2_normalize(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """x / (‖x‖₂ + eps) along dim 1: CUT's ``Normalize(2)``, with its eps added to the norm.

    CUT computes the norm as ``pow(2).sum().pow(0.5)``, whose gradient is NaN for an all-zero
    vector (an MLP whose ReLU layer is all off gives one); vector_norm has the same value and a
    zero gradient there.
    """
    norm = torch.linalg.vector_norm(x, ord=2, dim=1, keepdim=True)
    return x.div(norm + eps)


class PatchSampleF(nn.Module):
    """Samples ``num_patches`` positions per feature map and projects them (``--netF mlp_sample | sample``).

    ``forward(features, num_patches, patch_ids)`` returns, per layer, a (B·num_patches)×C' tensor of
    L2-normalised vectors, and the position indices used: pass those back as ``patch_ids`` to sample
    the same positions of another image's features (CUT uses one draw for the whole batch).
    With ``use_mlp`` each layer has an MLP C→nc→nc (``mlp_<i>``), built by ``create_mlp`` from the
    first features it sees, since C differs per layer: call ``create_mlp(features)`` (or
    ``create_mlp_for_channels``) before making its optimizer, loading a state dict or wrapping in DDP.
    """

    def __init__(self, use_mlp: bool = False, init_type: str = "normal", init_gain: float = 0.02, nc: int = 256):
        super().__init__()
        self.use_mlp = use_mlp
        self.nc = nc
        self.init_type = init_type
        self.init_gain = init_gain
        self.mlp_init = False

    @property
    def needs_first_batch(self) -> bool:
        """True until the MLPs exist (always False without MLPs)."""
        return self.use_mlp and not self.mlp_init

    def create_mlp_for_channels(self, channels: Sequence[int], device: torch.device | str | None = None) -> None:
        """Build and initialise one MLP per feature layer with these channel counts (in layer order).

        Builds every MLP before initialising any, as CUT does, so the same seed draws the same weights.
        """
        if self.mlp_init:
            raise RuntimeError("PatchSampleF's MLPs are already built")
        for index, input_nc in enumerate(channels):
            mlp = nn.Sequential(nn.Linear(int(input_nc), self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc))
            self.add_module(f"mlp_{index}", mlp.to(device) if device is not None else mlp)
        init_weights(self, self.init_type, self.init_gain)
        self.mlp_init = True

    def create_mlp(self, features: Sequence[torch.Tensor]) -> None:
        """The data-dependent initialisation: MLP input sizes from the first batch's features."""
        self.create_mlp_for_channels([f.shape[1] for f in features], device=features[0].device)

    def forward(
        self, features: Sequence[torch.Tensor], num_patches: int = 64, patch_ids: Sequence[torch.Tensor] | None = None
    ) -> tuple[Features, list[torch.Tensor]]:
        if self.use_mlp and not self.mlp_init:
            self.create_mlp(features)
        samples: Features = []
        ids: list[torch.Tensor] = []
        for index, feature in enumerate(features):
            batch, height, width = feature.shape[0], feature.shape[2], feature.shape[3]
            if num_patches > 0:
                if patch_ids is not None:
                    patch_id = patch_ids[index]
                else:
                    positions = height * width
                    patch_id = torch.randperm(positions, device=feature.device)[: min(num_patches, positions)]
                # CUT permutes the whole map to B × (H·W) × C and then picks P positions; picking first
                # gives the same values without copying (and, in backward, re-copying) the full map.
                sample = feature.flatten(2)[:, :, patch_id].transpose(1, 2).flatten(0, 1)  # (B·P) × C
            else:
                patch_id = torch.zeros(0, dtype=torch.long, device=feature.device)
                sample = feature.permute(0, 2, 3, 1).flatten(1, 2)  # B × (H·W) × C: every position
            if self.use_mlp:
                sample = getattr(self, f"mlp_{index}")(sample)
            if num_patches > 0:
                sample = l2_normalize(sample)
            else:
                # CUT normalises dim 1 here too (positions, not channels), then reshapes to B×C×H×W.
                sample = l2_normalize(sample).permute(0, 2, 1).reshape(batch, sample.shape[-1], height, width)
            ids.append(patch_id)
            samples.append(sample)
        return samples, ids


class ReshapeF(nn.Module):
    """``--netF reshape``: average-pool each feature map to 4×4 and L2-normalise the 16 vectors per image.

    CUT's own ReshapeF takes a single tensor and so fails when its model calls it with a list, the
    patch count and ids; this one takes the PatchSampleF arguments, applies the pooling per layer and
    returns the same fixed positions for every call (``patch_ids`` is accepted and ignored).
    """

    grid = 4
    needs_first_batch = False

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(self.grid)

    def forward(
        self, features: Sequence[torch.Tensor], num_patches: int = 64, patch_ids: Sequence[torch.Tensor] | None = None
    ) -> tuple[Features, list[torch.Tensor]]:
        samples = [l2_normalize(self.pool(f).permute(0, 2, 3, 1).flatten(0, 2)) for f in features]  # (B·16) × C
        ids = [torch.arange(self.grid * self.grid, device=f.device) for f in features]
        return samples, ids


def mlp_channels_in_state_dict(state_dict: Mapping[str, torch.Tensor]) -> list[int]:
    """The per-layer input channels of a saved PatchSampleF (``mlp_<i>.0.weight`` is nc×C), in layer order.

    Lets a resume or a checkpoint load build F's MLPs before loading, without a forward pass.
    """
    channels: dict[int, int] = {}
    for key, value in state_dict.items():
        parts = key.removeprefix("module.").split(".")
        if len(parts) == 3 and parts[0].startswith("mlp_") and parts[1:] == ["0", "weight"]:
            channels[int(parts[0][len("mlp_"):])] = int(value.shape[1])
    if sorted(channels) != list(range(len(channels))):
        raise ValueError(f"PatchSampleF state dict has MLPs {sorted(channels)}; expected 0..{len(channels) - 1}")
    return [channels[i] for i in range(len(channels))]


# CUT's generators (anti-aliased by default); define_cut_G maps CUT's own --netG names onto these.
CUT_GENERATOR_PREFIX = "cut_"
GENERATORS.add("cut_resnet_9blocks", functools.partial(CUTResnetGenerator, n_blocks=9))
GENERATORS.add("cut_resnet_6blocks", functools.partial(CUTResnetGenerator, n_blocks=6))
GENERATORS.add("cut_resnet_4blocks", functools.partial(CUTResnetGenerator, n_blocks=4))
DISCRIMINATORS.add("cut_basic", functools.partial(CUTNLayerDiscriminator, n_layers=3))
DISCRIMINATORS.add("cut_n_layers", CUTNLayerDiscriminator)

# CUT's --netF: how PatchNCE samples and projects the generator's encoder features.
FEATURE_PROJECTORS: Registry[Callable[..., nn.Module]] = Registry("feature projector (netF)")
FEATURE_PROJECTORS.add("mlp_sample", functools.partial(PatchSampleF, use_mlp=True))
FEATURE_PROJECTORS.add("sample", functools.partial(PatchSampleF, use_mlp=False))
FEATURE_PROJECTORS.add("reshape", lambda **_: ReshapeF())


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
    colour_branch: int = 0,
    body_scale: float = 1.0,
) -> nn.Module:
    """CUT's ``define_G``: resnet_9blocks | resnet_6blocks | resnet_4blocks, anti-aliased unless told not to
    (``residual_output``: ours, as in ``define_G``; the keys stay CUT's)."""
    name = CUT_GENERATOR_PREFIX + netG
    if name not in GENERATORS:
        known = ", ".join(n.removeprefix(CUT_GENERATOR_PREFIX) for n in GENERATORS if n.startswith(CUT_GENERATOR_PREFIX))
        raise ValueError(f"unknown CUT generator (netG) {netG!r}; known: {known}")
    return define_G(input_nc, output_nc, ngf, name, norm, use_dropout, init_type, init_gain,
                    residual_output=residual_output, colour_branch=colour_branch, body_scale=body_scale,
                    no_antialias=no_antialias, no_antialias_up=no_antialias_up)


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
