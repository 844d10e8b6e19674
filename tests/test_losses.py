"""GAN objectives, the gradient penalty, cycle and identity L1 on hand-computed tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cyclegan.losses import (
    GAN_LOSSES,
    colour_distribution_loss,
    cycle_loss,
    gan_loss,
    gradient_penalty,
    identity_loss,
    sorted_projections,
    sphere_directions,
)
from cyclegan.networks import define_D

from .conftest import FIXTURES

PRED = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]])  # 1×1×2×2


def test_lsgan_by_hand():
    assert gan_loss("lsgan")(PRED, True).item() == pytest.approx((0.25 + 4 + 1 + 1) / 4)
    assert gan_loss("lsgan")(PRED, False).item() == pytest.approx((0.25 + 1 + 4 + 0) / 4)


def test_label_smoothing_changes_the_target():
    smoothed = gan_loss("lsgan")(PRED, True, real_label=0.9)
    assert smoothed.item() == pytest.approx(((0.4**2) + 1.9**2 + 1.1**2 + 0.9**2) / 4)


def test_vanilla_is_bce_on_logits():
    softplus = [math.log1p(math.exp(-x)) for x in (0.5, -1.0, 2.0, 0.0)]
    assert gan_loss("vanilla")(PRED, True).item() == pytest.approx(sum(softplus) / 4, rel=1e-6)
    softplus_fake = [math.log1p(math.exp(x)) for x in (0.5, -1.0, 2.0, 0.0)]
    assert gan_loss("vanilla")(PRED, False).item() == pytest.approx(sum(softplus_fake) / 4, rel=1e-6)


def test_wgan_and_hinge():
    mean = (0.5 - 1 + 2 + 0) / 4
    assert gan_loss("wgangp")(PRED, True).item() == pytest.approx(-mean)
    assert gan_loss("wgangp")(PRED, False).item() == pytest.approx(mean)
    assert gan_loss("hinge")(PRED, True).item() == pytest.approx((0.5 + 2 + 0 + 1) / 4)
    assert gan_loss("hinge")(PRED, False).item() == pytest.approx((1.5 + 0 + 3 + 1) / 4)
    assert gan_loss("hinge")(PRED, True, for_discriminator=False).item() == pytest.approx(-mean)


def test_unknown_gan_mode_lists_the_known():
    with pytest.raises(ValueError, match="hinge, lsgan, vanilla, wgangp"):
        gan_loss("relativistic")
    assert GAN_LOSSES.names() == ["hinge", "lsgan", "vanilla", "wgangp"]


def test_gan_losses_match_the_reference():
    fixture = torch.load(FIXTURES / "gan_losses.pt", weights_only=True)
    for mode, values in fixture["values"].items():
        for target, value in values.items():
            ours = gan_loss(mode)(fixture["prediction"], target == "real")
            assert ours.item() == pytest.approx(float(value), rel=1e-6, abs=1e-7), (mode, target)


class LinearCritic(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere, so the penalty is λ(‖w‖ − c)²."""

    def __init__(self, shape):
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape))

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1, keepdim=True)


@pytest.mark.parametrize("kind", ["mixed", "real", "fake"])
def test_gradient_penalty_against_the_closed_form(kind):
    critic = LinearCritic((3, 4, 4))
    real, fake = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    penalty = gradient_penalty(critic, real, fake, kind=kind, constant=1.0, lambda_gp=10.0)
    norm = (critic.w.detach().flatten() + 1e-16).norm()
    assert penalty.item() == pytest.approx(10.0 * (norm.item() - 1.0) ** 2, rel=1e-5)
    # create_graph: the penalty trains the critic, d/dw λ(‖w‖−1)² = 2λ(‖w‖−1) w/‖w‖.
    penalty.backward()
    expected = 2 * 10.0 * (norm - 1) * critic.w.detach() / norm
    assert torch.allclose(critic.w.grad, expected, rtol=1e-4, atol=1e-6)


def test_gradient_penalty_matches_direct_autograd_on_a_patchgan():
    torch.manual_seed(0)
    net = define_D(3, 4, "basic", norm="instance")
    real, fake = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    alpha = torch.tensor([[0.3], [0.8]])
    penalty = gradient_penalty(net, real, fake, "mixed", constant=1.0, lambda_gp=10.0, alpha=alpha)
    mixed = (alpha.view(2, 1, 1, 1) * real + (1 - alpha.view(2, 1, 1, 1)) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(net(mixed).sum(), mixed)
    direct = ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean() * 10.0
    assert penalty.item() == pytest.approx(direct.item(), rel=1e-5)


def test_gradient_penalty_matches_the_reference():
    fixture = torch.load(FIXTURES / "gradient_penalty.pt", weights_only=True)
    net = define_D(**fixture["config"]["define_kwargs"])
    net.load_state_dict(fixture["state_dict"])
    net.train()
    for kind in ("mixed", "real", "fake"):
        alpha = fixture["alpha"] if kind == "mixed" else None
        value = gradient_penalty(net, fixture["real"], fixture["fake"], kind, 1.0, 10.0, alpha=alpha)
        assert value.item() == pytest.approx(float(fixture["values"][kind]), rel=1e-5), kind


def test_gradient_penalty_off_and_unknown_kind():
    critic = LinearCritic((3, 2, 2))
    x = torch.rand(1, 3, 2, 2)
    assert gradient_penalty(critic, x, x, lambda_gp=0.0).item() == 0.0
    with pytest.raises(ValueError, match="mixed, real, fake"):
        gradient_penalty(critic, x, x, kind="both")


def test_cycle_and_identity_are_l1():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    b[0, 0, 0, 0] = -1.5
    expected = (11 * 0.5 + 1.5) / 12
    assert cycle_loss(b, a).item() == pytest.approx(expected)
    assert identity_loss(b, a).item() == pytest.approx(expected)


def test_sphere_directions_are_fixed_unit_vectors_spread_over_the_sphere():
    directions = sphere_directions(16)
    assert directions.shape == (16, 3) and torch.allclose(directions.norm(dim=1), torch.ones(16), atol=1e-6)
    assert torch.equal(directions, sphere_directions(16))  # no random state: a resume projects the same way
    assert (directions @ directions.T - torch.eye(16)).abs().max() < 0.99  # no two the same
    assert directions[:, 2].max() > 0.9 and directions[:, 2].min() < -0.9  # both poles covered
    assert sphere_directions(4, channels=2).shape[1] == 2


def test_colour_distribution_loss_compares_palettes_not_layouts():
    directions = sphere_directions(16)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 8, 8, generator=generator) * 2 - 1
    shuffled = images.flatten(2)[..., torch.randperm(64, generator=generator)].view_as(images)
    assert colour_distribution_loss(shuffled, images, directions) < 1e-12  # same colours, other places
    shifted = (images + 0.2).clamp(-1, 1)
    assert colour_distribution_loss(shifted, images, directions) > 1e-3
    swapped = images[:, [2, 0, 1]]  # a channel rotation changes the palette
    assert colour_distribution_loss(swapped, images, directions) > 1e-3
    # batches of different sizes: the larger is subsampled; one colour against the same colour is zero
    grey = torch.zeros(1, 3, 4, 4)
    assert colour_distribution_loss(grey, torch.zeros(3, 3, 4, 4), directions) == 0
    fake = shifted.clone().requires_grad_(True)
    colour_distribution_loss(fake, images, directions).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_sorted_projections_are_the_same_with_and_without_a_gradient(dtype):
    # Without a gradient the projections are sorted by numpy (faster); with one, by torch.sort (which
    # backward needs). Both must give the same values, ties and the bf16 of mixed precision included.
    directions = sphere_directions(16)
    generator = torch.Generator().manual_seed(0)
    points = ((torch.rand(3000, 3, generator=generator) * 8).round() / 8).to(dtype)  # many ties
    with torch.no_grad():
        without = sorted_projections(points, directions.to(dtype))
    with_gradient = sorted_projections(points.clone().requires_grad_(True), directions.to(dtype))
    assert with_gradient.requires_grad and without.dtype == dtype
    assert torch.equal(without, with_gradient.detach())
    assert torch.equal(without, (points @ directions.to(dtype).T).sort(dim=0).values)
