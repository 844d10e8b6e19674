"""``--model cycle_gan``'s own options: the TrainConfig section ``cycle_gan``, registered here."""

from __future__ import annotations

from dataclasses import dataclass

from cyclegan.config import register_section


@register_section("cycle_gan")
@dataclass
class CycleGANConfig:
    """``--model cycle_gan``: the cycle and identity weights (the reference's flag names)."""

    lambda_A: float = 10.0
    lambda_B: float = 10.0
    # A fraction of lambda_A / lambda_B, as in the reference (0.5 means 0.5 * 10 = 5 on the L1).
    lambda_identity: float = 0.5
    # Run G_B on real_B and fake_B (and the identity inputs) as one batch: fewer, larger calls.
    # Same result for per-sample norms (instance, none); ignored for batch norm.
    batch_generator_calls: bool = True
    # Score real and pooled fake images in one discriminator call (same per-sample-norm rule).
    batch_discriminator_calls: bool = True
    # Steps of an L1 fit of each generator to the identity before training (0: the reference's random
    # start). See cyclegan.recipes.cycle_gan.warm_start; the quick preset uses it.
    identity_warmup_steps: int = 0
    # Weight of the sliced Wasserstein distance between fake_B's and real_B's pixel colours (and
    # fake_A's and real_A's): see cyclegan.losses.colour_distribution_loss (0: off, the reference).
    lambda_colour: float = 0.0
    # Weight of the L1 distance between G(x) and G's output without its body (residual-output
    # generators): the body pays for each change that the colour map alone does not make (0: off).
    lambda_body: float = 0.0
    # Cycle weight for maps far from the identity (0: off, lambda_A / lambda_B always). When > 0, a
    # fresh run whose domains' pixel colours lie farther apart than colour_start.FAR_MAP_DISTANCE on the
    # first batch trains with this weight on both cycles instead: at 10 the cycle term outweighed the
    # adversarial one on far maps, while maps near the identity kept their structure best at 10.
    lambda_cycle_far: float = 0.0
    # lambda_body instead for a map near the identity (0: off, lambda_body always), chosen on the first
    # batch as lambda_cycle_far is. Near maps are mostly colour maps, which the colour branch makes alone;
    # a body that is only lightly paid for printed texture over their structure.
    lambda_body_near: float = 0.0
