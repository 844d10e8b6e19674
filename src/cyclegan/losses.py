"""Loss functions as small pure functions of tensors.

The GAN objectives take a discriminator's raw prediction map (no sigmoid) and say whether the
target is "real". Their weights (lambda_A, lambda_identity ...) are applied in one place, the
model's training step. Unlike the reference, the WGAN-GP penalty here is actually applied by the
training step when ``gan_mode == "wgangp"``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.core.registry import Registry

GanLoss = Callable[..., torch.Tensor]
GAN_LOSSES: Registry[GanLoss] = Registry("gan_mode")


@GAN_LOSSES.register("lsgan")
def lsgan_loss(prediction: torch.Tensor, target_is_real: bool, real_label: float = 1.0, fake_label: float = 0.0,
               for_discriminator: bool = True) -> torch.Tensor:
    """Least-squares GAN (Mao et al. 2017): MSE to the real or fake label."""
    target = torch.full_like(prediction, real_label if target_is_real else fake_label)
    return F.mse_loss(prediction, target)


@GAN_LOSSES.register("vanilla")
def vanilla_loss(prediction: torch.Tensor, target_is_real: bool, real_label: float = 1.0, fake_label: float = 0.0,
                 for_discriminator: bool = True) -> torch.Tensor:
    """The original GAN's cross-entropy, on logits (numerically stable BCE-with-logits)."""
    target = torch.full_like(prediction, real_label if target_is_real else fake_label)
    return F.binary_cross_entropy_with_logits(prediction, target)


@GAN_LOSSES.register("wgangp")
def wasserstein_loss(prediction: torch.Tensor, target_is_real: bool, real_label: float = 1.0,
                     fake_label: float = 0.0, for_discriminator: bool = True) -> torch.Tensor:
    """Wasserstein critic loss: -mean for real, +mean for fake (labels do not apply)."""
    return -prediction.mean() if target_is_real else prediction.mean()


@GAN_LOSSES.register("hinge")
def hinge_loss(prediction: torch.Tensor, target_is_real: bool, real_label: float = 1.0, fake_label: float = 0.0,
               for_discriminator: bool = True) -> torch.Tensor:
    """Hinge loss (Lim & Ye 2017; SAGAN): D gets mean(relu(1 ∓ D(x))), G gets -mean(D(G(z)))."""
    if not for_discriminator:
        if not target_is_real:
            raise ValueError("the generator's hinge loss is only defined for target_is_real=True")
        return -prediction.mean()
    return F.relu(1.0 - prediction).mean() if target_is_real else F.relu(1.0 + prediction).mean()


def gan_loss(mode: str) -> GanLoss:
    """The GAN objective for ``--gan_mode``; an unknown mode lists the known ones."""
    return GAN_LOSSES.get(mode)


def gradient_penalty(
    discriminator: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    kind: str = "mixed",
    constant: float = 1.0,
    lambda_gp: float = 10.0,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): ``λ · mean((‖∇D(x̂)‖₂ − constant)²)``.

    ``kind`` picks x̂: ``real``, ``fake`` or ``mixed`` (a random per-sample interpolation;
    ``alpha`` of shape (N, 1) may be given, else drawn with torch.rand). The graph is kept
    (create_graph) so the penalty trains the discriminator. Like the reference, 1e-16 is added to
    the gradient before the norm so that a zero gradient does not give a NaN derivative.
    """
    if lambda_gp <= 0:
        return real.new_zeros(())
    if kind == "real":
        interpolated = real
    elif kind == "fake":
        interpolated = fake
    elif kind == "mixed":
        batch = real.shape[0]
        if alpha is None:
            alpha = torch.rand(batch, 1, device=real.device)
        alpha = alpha.to(real.dtype).reshape(batch, *([1] * (real.dim() - 1)))  # N×1×1×1
        interpolated = alpha * real + (1 - alpha) * fake
    else:
        raise ValueError(f"unknown gradient-penalty kind {kind!r}; known: mixed, real, fake")
    interpolated = interpolated.detach().requires_grad_(True)
    prediction = discriminator(interpolated)
    (gradients,) = torch.autograd.grad(
        outputs=prediction,
        inputs=interpolated,
        grad_outputs=torch.ones_like(prediction),
        create_graph=True,
        retain_graph=True,
    )
    gradients = gradients.reshape(gradients.shape[0], -1)  # N × (C·H·W)
    norms = (gradients + 1e-16).norm(2, dim=1)
    return ((norms - constant) ** 2).mean() * lambda_gp


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Cycle-consistency: L1 between F(G(x)) and x (weighted by lambda_A / lambda_B in the step)."""
    return F.l1_loss(reconstructed, original)


def identity_loss(same_domain_output: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Identity mapping: L1 between G(y) and y for y already in G's target domain."""
    return F.l1_loss(same_domain_output, original)


def sphere_directions(count: int, channels: int = 3) -> torch.Tensor:
    """``count`` fixed unit vectors spread over the sphere (a Fibonacci lattice for 3 channels, the
    axes and their diagonals' pattern repeated otherwise): no random state, so a resumed run projects
    on the same directions."""
    if channels != 3:
        eye = torch.eye(channels)
        return torch.cat([eye, F.normalize(torch.ones(1, channels), dim=1)])[:max(count, 1)]
    index = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1 - 2 * index / count
    radius = (1 - z * z).sqrt()
    angle = torch.pi * (1 + 5**0.5) * index
    return torch.stack([radius * angle.cos(), radius * angle.sin(), z], dim=1).float()


def pixel_cloud(images: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → (N·H·W)×C in fp32: every pixel a point in colour space."""
    return images.float().permute(0, 2, 3, 1).reshape(-1, images.shape[1])


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Sliced Wasserstein-2 distance between two point clouds (P×C, Q×C): both projected on each
    direction, sorted and compared quantile by quantile (the larger cloud subsampled evenly)."""
    n = min(len(a), len(b))
    a = a[torch.linspace(0, len(a) - 1, n, device=a.device).long()] if len(a) > n else a
    b = b[torch.linspace(0, len(b) - 1, n, device=b.device).long()] if len(b) > n else b
    return quantile_distance(sorted_projections(a, directions), sorted_projections(b, directions))


def sorted_projections(points: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """A point cloud (P×C) projected on each of ``directions`` (D×C), each projection sorted: P×D."""
    projected = points @ directions.to(points.device).T
    if projected.requires_grad or projected.device.type != "cpu":
        return projected.sort(dim=0).values
    # Without a gradient no indices are needed, and numpy's SIMD sort is several times faster than
    # torch.sort on a CPU; the sorted values are the same (bf16 and fp16 go through fp32 exactly).
    exact = projected if projected.dtype in (torch.float32, torch.float64) else projected.float()
    return torch.from_numpy(np.sort(exact.numpy(), axis=0)).to(projected.dtype)


def quantile_distance(sorted_a: torch.Tensor, sorted_b: torch.Tensor) -> torch.Tensor:
    """The mean squared distance between two sets of sorted projections of equal size (the sliced
    Wasserstein-2 distance of the clouds they came from)."""
    return (sorted_a - sorted_b).pow(2).mean()


def colour_distribution_loss(fake: torch.Tensor, real: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Sliced Wasserstein-2 distance between the pixel colours of two batches (N×C×H×W each).

    Zero exactly when the projected colour distributions agree, so it pulls a generator's palette onto
    the target domain's, with a gradient for every pixel, where the discriminator's judgement of colour
    is coarse. The batches may differ in size.
    """
    return sliced_wasserstein(pixel_cloud(fake), pixel_cloud(real), directions)
