"""CUT and FastCUT without the trainer: their options, networks, checkpoints and the losses of a step.

Contrastive Unpaired Translation (Park, Efros, Zhang, Zhu, ECCV 2020;
taesungp/contrastive-unpaired-translation): one generator G: A→B trained with a GAN loss and
PatchNCE (each patch of G(x) must match the patch of x at the same place among the other patches
of x), plus PatchNCE on G(y) vs y as an identity term (CUT) or flip-equivariance (FastCUT). The
recipe class (``--model cut``) stays thin: it calls ``cut_forward``, ``cut_discriminator_loss``
and ``cut_generator_losses`` and steps the optimizers of G, D and F.

The loss terms carry CUT's weights as CUT logs them (``G_GAN`` includes λ_GAN, ``NCE`` and
``NCE_Y`` include λ_NCE), so loss logs compare with CUT's ``loss_log.txt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from cyclegan.losses import gan_loss
from cyclegan.recipes.cut.config import CUTOptions
from cyclegan.recipes.cut.networks import define_cut_D, define_cut_G, define_F
from cyclegan.recipes.cut.patchnce import patch_nce_loss

# CUT's modify_commandline_options: what --CUT_mode sets when the flag itself is not given.
CUT_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "cut": {"nce_idt": True, "lambda_NCE": 1.0, "flip_equivariance": False, "n_epochs": 200, "n_epochs_decay": 200},
    # FastCUT: no identity NCE (one generator call on A only), a 10× NCE weight, flip-equivariance
    # as the regulariser instead, and a shorter schedule.
    "fastcut": {"nce_idt": False, "lambda_NCE": 10.0, "flip_equivariance": True, "n_epochs": 150, "n_epochs_decay": 50},
}
NETF_CHOICES = ("mlp_sample", "sample", "reshape")


def parse_nce_layers(value: str | Sequence[int]) -> list[int]:
    """``"0,4,8,12,16"`` (CUT's flag) or a list of ints → a sorted list of distinct layer indices."""
    if isinstance(value, str):
        try:
            layers = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"--nce_layers must be comma-separated integers like 0,4,8,12,16, got {value!r}") from None
    else:
        layers = [int(v) for v in value]
    if not layers:
        raise ValueError("--nce_layers is empty: give at least one generator layer index, e.g. 0,4,8,12,16")
    return sorted(set(layers))


@dataclass
class CUTConfig(CUTOptions):
    """CUT's options with its flag names and defaults: the ``cut`` section's (``None`` means "the
    --CUT_mode default", ``nce_layers`` is parsed into a list) and the network and training options
    CUT's own base options give (its defaults differ from CycleGAN's: xavier, no image pool)."""

    nce_layers: str | list[int] = "0,4,8,12,16"
    input_nc: int = 3
    output_nc: int = 3
    netG: str = "resnet_9blocks"
    netD: str = "basic"
    ngf: int = 64
    ndf: int = 64
    n_layers_D: int = 3
    init_type: str = "xavier"
    init_gain: float = 0.02
    no_dropout: bool = True
    residual_output: bool = False  # ours (the quick preset's): G starts as the identity
    colour_branch: int = 0  # ours: a per-pixel colour map beside G's body (model.colour_branch)
    body_scale: float = 1.0  # ours: the residual body's output scale (model.body_scale)
    gan_mode: str = "lsgan"
    pool_size: int = 0  # CUT keeps no image pool
    n_epochs: int | None = None  # CUT 200, FastCUT 150
    n_epochs_decay: int | None = None  # CUT 200, FastCUT 50

    def __post_init__(self) -> None:
        mode = self.CUT_mode.lower()
        if mode not in CUT_MODE_DEFAULTS:
            raise ValueError(f"--CUT_mode must be CUT or FastCUT, got {self.CUT_mode!r}")
        for name, value in CUT_MODE_DEFAULTS[mode].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.nce_layers = parse_nce_layers(self.nce_layers)
        if self.netF not in NETF_CHOICES:
            raise ValueError(f"unknown --netF {self.netF!r}; known: {', '.join(NETF_CHOICES)}")
        if self.num_patches < 1:
            raise ValueError(f"--num_patches must be >= 1, got {self.num_patches}")
        if self.nce_T <= 0:
            raise ValueError(f"--nce_T must be > 0, got {self.nce_T}")
        if self.nce_keys_after_colour and not self.colour_branch:
            raise ValueError("--nce_keys_after_colour takes PatchNCE's keys from the colour branch: it needs "
                             "--colour_branch N (and --residual_output)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- networks and checkpoints ---------------------------------------------------------------


def build_generator(config: CUTConfig) -> nn.Module:
    return define_cut_G(
        config.input_nc,
        config.output_nc,
        config.ngf,
        config.netG,
        norm=config.normG,
        use_dropout=not config.no_dropout,
        init_type=config.init_type,
        init_gain=config.init_gain,
        no_antialias=config.no_antialias,
        no_antialias_up=config.no_antialias_up,
        residual_output=config.residual_output,
        colour_branch=config.colour_branch,
        body_scale=config.body_scale,
    )


def build_discriminator(config: CUTConfig) -> nn.Module:
    return define_cut_D(
        config.output_nc,
        config.ndf,
        config.netD,
        n_layers_D=config.n_layers_D,
        norm=config.normD,
        init_type=config.init_type,
        init_gain=config.init_gain,
        no_antialias=config.no_antialias,
    )


def build_feature_projector(config: CUTConfig) -> nn.Module:
    """F, still without MLPs for mlp_sample: see ``initialize_feature_projector``."""
    return define_F(config.netF, init_type=config.init_type, init_gain=config.init_gain, netF_nc=config.netF_nc)


@torch.no_grad()
def initialize_feature_projector(generator: nn.Module, projector: nn.Module, images: torch.Tensor,
                                 nce_layers: Sequence[int]) -> bool:
    """CUT's data-dependent initialisation: build F's MLPs from G's encoder features on a first batch.

    Must run before F's optimizer is made, a state dict is loaded into F, or F is wrapped for DDP
    (every rank from the same seed, so the MLPs start equal). Returns whether anything was built.
    Only the feature shapes matter, so one image is enough.
    """
    if not getattr(projector, "needs_first_batch", False):
        return False
    features = generator(images[:1], layers=list(nce_layers), encode_only=True)
    projector.create_mlp(features)
    return True


def antialias_hint(state: dict[str, torch.Tensor], config: CUTConfig) -> str:
    has_blur = any(key.endswith(".filt") for key in state)
    if has_blur and (config.no_antialias or config.no_antialias_up):
        return "the checkpoint has anti-aliasing filters (*.filt): drop --no_antialias / --no_antialias_up"
    if not has_blur and not (config.no_antialias and config.no_antialias_up):
        return "the checkpoint has no anti-aliasing filters (*.filt): add --no_antialias --no_antialias_up"
    return "check --netG, --ngf, --normG, --no_dropout and --input_nc/--output_nc against the run's flags"


# --- one training step's pieces ------------------------------------------------------------


def draw_flip(generator: torch.Generator | None = None, probability: float = 0.5) -> bool:
    """FastCUT's coin: flip this step's input horizontally (from torch's RNG, so resume replays it)."""
    return bool(torch.rand((), generator=generator).item() < probability)


@dataclass
class CUTForward:
    """G's outputs for one step. ``fake_B`` (and ``idt_B``) are in the flipped frame when ``flipped``."""

    real_A: torch.Tensor
    real_B: torch.Tensor
    fake_B: torch.Tensor
    idt_B: torch.Tensor | None
    flipped: bool
    # G's encoder features of the input batch [real_A, real_B], taken from the same pass; None
    # when not requested or when flipped (then they are of the flipped images, not usable as keys).
    input_features: list[torch.Tensor] | None = None


def cut_forward(
    generator: nn.Module,
    real_A: torch.Tensor,
    real_B: torch.Tensor,
    nce_idt: bool,
    flipped: bool = False,
    nce_layers: Sequence[int] | None = None,
) -> CUTForward:
    """CUT's ``forward``: one G call on [real_A, real_B] (real_A alone without identity NCE), flipped if asked.

    With ``nce_layers`` the same pass also returns the encoder features of its input, which are the
    PatchNCE keys when the input was not flipped: one encoder pass fewer per step.
    """
    real = torch.cat((real_A, real_B), dim=0) if nce_idt else real_A
    if flipped:
        real = real.flip(3)
    features = None
    if nce_layers and not flipped:
        fake, features = generator(real, layers=list(nce_layers), encode_only=False)
    else:
        fake = generator(real)
    batch = real_A.shape[0]
    return CUTForward(real_A, real_B, fake[:batch], fake[batch:] if nce_idt else None, flipped, features)


def cut_discriminator_loss(
    discriminator: nn.Module, fake_B: torch.Tensor, real_B: torch.Tensor, gan_mode: str = "lsgan",
    batch_calls: bool = False,
) -> dict[str, torch.Tensor]:
    """CUT's ``compute_D_loss``: D_fake, D_real and D = (D_fake + D_real) / 2; fake_B is detached.

    ``batch_calls`` scores fake and real images in one D call (same result with per-sample norms:
    instance or none; not with batch norm).
    """
    loss = gan_loss(gan_mode)
    fake = fake_B.detach()
    if batch_calls:
        pred_fake, pred_real = discriminator(torch.cat((fake, real_B), dim=0)).split([fake.shape[0], real_B.shape[0]])
    else:
        pred_fake, pred_real = discriminator(fake), discriminator(real_B)
    d_fake = loss(pred_fake, False)
    d_real = loss(pred_real, True)
    return {"D_fake": d_fake, "D_real": d_real, "D": (d_fake + d_real) * 0.5}


def nce_loss(
    generator: nn.Module,
    projector: nn.Module,
    source: torch.Tensor,
    target: torch.Tensor,
    config: CUTConfig,
    flipped: bool = False,
    source_features: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """CUT's ``calculate_NCE_loss``: λ_NCE · mean over layers of PatchNCE(F(G_enc(target)), F(G_enc(source))).

    ``target`` is G's output for ``source`` (in the flipped frame when ``flipped``: its features are
    flipped back, which is the flip-equivariance constraint). The keys' features may be passed in
    (``source_features``) when already computed; they get no gradient either way. With
    ``nce_keys_after_colour`` the keys are G's encoder features of ``G.colour_only(source)`` instead.
    """
    return _nce_per_image_group(generator, projector, source, target, config, flipped, source_features, groups=1)[0]


def _nce_per_image_group(
    generator: nn.Module,
    projector: nn.Module,
    source: torch.Tensor,
    target: torch.Tensor,
    config: CUTConfig,
    flipped: bool,
    source_features: list[torch.Tensor] | None,
    groups: int,
) -> list[torch.Tensor]:
    """λ_NCE-weighted PatchNCE for ``groups`` equal consecutive slices of the batch, one loss per slice."""
    layers = config.nce_layers
    queries = generator(target, layers=layers, encode_only=True)
    if flipped:
        queries = [query.flip(3) for query in queries]  # back to the input's frame (CUT's torch.flip(x, [3]))
    with torch.no_grad():  # PatchNCE detaches the keys: no graph is needed for them
        if config.nce_keys_after_colour:
            source_features = generator(generator.colour_only(source), layers=layers, encode_only=True)
        elif source_features is None:
            source_features = generator(source, layers=layers, encode_only=True)
        key_samples, patch_ids = projector([f.detach() for f in source_features], config.num_patches, None)
    query_samples, _ = projector(queries, config.num_patches, patch_ids)
    batch = source.shape[0]
    per_group: list[list[torch.Tensor]] = [[] for _ in range(groups)]
    for query, key in zip(query_samples, key_samples, strict=True):
        per_patch = patch_nce_loss(
            query.float(), key.float(), batch, config.nce_T, config.nce_includes_all_negatives_from_minibatch
        )
        for index, chunk in enumerate(per_patch.chunk(groups)):
            per_group[index].append(chunk.mean() * config.lambda_NCE)
    return [torch.stack(losses).mean() for losses in per_group]


def cut_generator_losses(
    generator: nn.Module,
    projector: nn.Module,
    discriminator: nn.Module,
    forward: CUTForward,
    config: CUTConfig,
    batch_nce_calls: bool = True,
) -> dict[str, torch.Tensor]:
    """CUT's ``compute_G_loss``: G_GAN, NCE, NCE_Y (identity, CUT mode) and G = G_GAN + mean(NCE, NCE_Y).

    ``batch_nce_calls`` runs the identity term's encoder passes together with the main term's (one
    call on [fake_B, idt_B], keys from the forward pass when available) and draws one set of patch
    positions for both; the negatives stay per image, so each term is CUT's up to which positions
    were drawn. It is not used with ``nce_includes_all_negatives_from_minibatch``, where batching
    would mix the two terms' negatives.
    """
    zero = forward.fake_B.new_zeros(())
    losses: dict[str, torch.Tensor] = {}
    if config.lambda_GAN > 0:
        prediction = discriminator(forward.fake_B)
        losses["G_GAN"] = gan_loss(config.gan_mode)(prediction, True, for_discriminator=False) * config.lambda_GAN
    else:
        losses["G_GAN"] = zero
    use_nce = config.lambda_NCE > 0
    use_idt = bool(config.nce_idt) and use_nce
    batched = use_idt and batch_nce_calls and not config.nce_includes_all_negatives_from_minibatch
    if not use_nce:
        losses["NCE"] = zero
    elif batched:
        sources = torch.cat((forward.real_A, forward.real_B), dim=0)
        targets = torch.cat((forward.fake_B, forward.idt_B), dim=0)
        losses["NCE"], losses["NCE_Y"] = _nce_per_image_group(
            generator, projector, sources, targets, config, forward.flipped, forward.input_features, groups=2
        )
    else:
        n, features = forward.real_A.shape[0], forward.input_features or []  # [real_A, real_B]'s
        keys_A = [f[:n] for f in features] if features else None
        keys_B = [f[n:] for f in features] if features else None
        losses["NCE"] = nce_loss(generator, projector, forward.real_A, forward.fake_B, config, forward.flipped, keys_A)
        if use_idt:
            losses["NCE_Y"] = nce_loss(
                generator, projector, forward.real_B, forward.idt_B, config, forward.flipped, keys_B
            )
    nce_both = (losses["NCE"] + losses["NCE_Y"]) * 0.5 if use_idt else losses["NCE"]
    losses["G"] = losses["G_GAN"] + nce_both
    return losses
