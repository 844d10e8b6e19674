"""CycleGAN (Zhu et al. 2017): two generators, two discriminators, adversarial + cycle + identity.

Naming as in the reference (code vs paper): G_A: A→B (G), G_B: B→A (F), D_A judges domain B
(D_Y), D_B judges domain A (D_X).

One step computes what the reference's optimize_parameters computes:
1. forward: fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A);
2. generator losses and gradients with both discriminators frozen (no gradient for their weights);
3. discriminator losses and gradients on real images and on fakes drawn from the image pools;
4. both updates, only when every loss is finite (else the step is skipped and reported).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cyclegan.config import TrainConfig
from cyclegan.core.precision import Precision
from cyclegan.losses import colour_distribution_loss, cycle_loss, gan_loss, identity_loss, sphere_directions
from cyclegan.networks import define_D, define_G, generator_options
from cyclegan.recipes.base import MODELS, Direction, StepResult, TrainingRecipe, set_requires_grad
from cyclegan.recipes.colour_start import (
    FAR_MAP_DISTANCE,
    FIT_IMAGES,
    ColourStart,
    choose_grey_output,
    colour_distance,
    fit_colour_start,
    texture_verdict,
)
from cyclegan.recipes.cycle_gan.config import CycleGANConfig
from cyclegan.recipes.cycle_gan.pool import ImagePool
from cyclegan.recipes.cycle_gan.warm_start import identity_warm_start

log = logging.getLogger("cyclegan.train")


def cycle_input(fake: torch.Tensor, generator: nn.Module) -> torch.Tensor:
    """``fake`` as the cycle's second generator sees it. A grey output (``--grey_output_for_grey``)
    cannot carry the colours back, and the cycle loss then pushed its generator to hide them in the grey
    levels, which scrambled the structure; so no cycle gradient reaches a grey-output generator: the
    cycle through it trains only the generator that rebuilds the colours."""
    colour = getattr(generator, "colour", None)
    return fake.detach() if colour is not None and colour.outputs_grey else fake


class GeneratorPair(nn.Module):
    """G_A and G_B's whole forward of one step as one module call.

    Under DistributedDataParallel each wrapped module should see one forward per backward; G_A and
    G_B each run two or three times a step, so they are wrapped together, once, as this pair.
    """

    def __init__(self, G_A: nn.Module, G_B: nn.Module, identity: bool, batch_calls: bool = False) -> None:
        super().__init__()
        self.G_A, self.G_B, self.identity = G_A, G_B, identity
        self.batch_calls = batch_calls

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.batch_calls:
            return self._batched(real_A, real_B)
        fake_B = self.G_A(real_A)
        rec_A = self.G_B(cycle_input(fake_B, self.G_A))
        fake_A = self.G_B(real_B)
        rec_B = self.G_A(cycle_input(fake_A, self.G_B))
        out = {"fake_B": fake_B, "rec_A": rec_A, "fake_A": fake_A, "rec_B": rec_B}
        if self.identity:
            out["idt_A"] = self.G_A(real_B)  # G_A should leave an image already in B unchanged
            out["idt_B"] = self.G_B(real_A)
        return out

    def _batched(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """The same images from fewer, larger generator calls (3 instead of 4–6).

        Every call whose input is already known goes into one batch: G_B sees real_B and fake_B
        (and real_A for the identity term) at once. Small convolutions use the CPU poorly: fewer,
        larger calls are faster per image at small sizes (``benchmarks/README.md``). Only valid when each
        image is normalised on its own (instance norm or none): batch norm would mix the images'
        statistics, so the model enables this for those norms alone.
        """
        n = real_A.shape[0]
        out: dict[str, torch.Tensor] = {}
        if self.identity:
            fake_B, out["idt_A"] = self.G_A(torch.cat([real_A, real_B])).split(n)
            fake_A, rec_A, out["idt_B"] = self.G_B(torch.cat([real_B, cycle_input(fake_B, self.G_A), real_A])).split(n)
        else:
            fake_B = self.G_A(real_A)
            fake_A, rec_A = self.G_B(torch.cat([real_B, cycle_input(fake_B, self.G_A)])).split(n)
        rec_B = self.G_A(cycle_input(fake_A, self.G_B))
        return {"fake_B": fake_B, "rec_A": rec_A, "fake_A": fake_A, "rec_B": rec_B, **out}


class DiscriminatorPair(nn.Module):
    """D_A and D_B's losses of one step (real vs pooled fake, gradient penalty) as one module call."""

    def __init__(self, D_A: nn.Module, D_B: nn.Module, loss: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.D_A, self.D_B, self.loss = D_A, D_B, loss

    def forward(self, real_A, real_B, fake_A, fake_B) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loss(self.D_A, real_B, fake_B), self.loss(self.D_B, real_A, fake_A)


@MODELS.register("cycle_gan")
class CycleGANModel(TrainingRecipe):
    title = "CycleGAN"
    directions = (Direction("G_A", "A", back="G_B"), Direction("G_B", "B", back="G_A"))
    generator_names = ("G_A", "G_B")
    loss_names = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "colour_A", "colour_B", "body_A", "body_B",
                  "D_A", "D_B")
    progress_losses = ("G_A", "D_A", "cycle_A", "G_B", "D_B")
    visual_names = ("real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A")
    config_section = "cycle_gan"
    fallback_objective = ("val_cycle_l1", "min")  # no ground truth: follow the cycle-consistency L1
    # --preset quick also sets, for CycleGAN (chosen on the task family of benchmarks/learning_suite.py,
    # see benchmarks/README.md): no instance norm, which removes each image's absolute colours at the
    # first layer; generators that start as the identity, with a per-pixel colour branch fitted to the
    # other domain's colours before training (from the identity, a channel permutation or per-channel
    # histogram matching, whichever fits; left at the identity where the domains differ in texture: the
    # fit darkened a zebra's shapes whole) and the convolutional body's changes scaled down and paid for
    # (it printed texture over the structure); the fake's colours held to the other domain's (the GAN alone let them drift); the
    # vanilla GAN loss; no identity term; a cycle weight of 2 instead of 10 where the domains' colours lie
    # far apart (at 10 the cycle term outweighed the adversarial one: a hue rotation ended below a
    # constant image, a negative 12 dB lower; near maps, tints and grades, did best at 10); a body paid
    # 4 times more (20) where the colours lie close (all five near maps of the family ended higher);
    # an average of the generators' weights; and 800 iterations, which a step without norms makes fit
    # the demo's budget.
    preset_defaults = {"quick": {
        "model.norm": "none", "model.init_type": "kaiming", "model.residual_output": True,
        "model.colour_branch": 32, "model.body_scale": 0.1, "model.colour_warmup_steps": 200,
        "cycle_gan.lambda_body": 5.0, "cycle_gan.lambda_colour": 10.0, "cycle_gan.lambda_cycle_far": 2.0,
        "cycle_gan.lambda_body_near": 20.0, "model.grey_output_for_grey": True,
        "model.gan_mode": "vanilla", "cycle_gan.lambda_identity": 0.0, "optim.ema_decay": 0.995,
        "optim.max_iters": 800,
    }}

    def __init__(self, config: TrainConfig, is_train: bool = True) -> None:
        super().__init__()
        m = config.model
        self.cfg = m
        self.options: CycleGANConfig = config.cycle_gan
        options = self.options
        # The cycles' weights: lambda_A / lambda_B, or lambda_cycle_far once the first batch shows a far
        # map (data_dependent_init); the body's: lambda_body, or lambda_body_near for a near one. Both are
        # kept in the checkpoint, so a resume trains with the same weights.
        self.cycle_weights = (options.lambda_A, options.lambda_B)
        self.body_weight = options.lambda_body
        self.lr, self.betas = config.optim.lr, (config.optim.beta1, config.optim.beta2)
        input_nc, output_nc = config.data.input_nc, config.data.output_nc
        if options.lambda_identity > 0 and input_nc != output_nc:
            raise ValueError(
                f"--lambda_identity {options.lambda_identity} needs input_nc == output_nc (got {input_nc} and "
                f"{output_nc}): G_A(B) must be comparable with B; set --lambda_identity 0"
            )
        self.nets["G_A"] = define_G(input_nc, output_nc, m.ngf, m.netG, **generator_options(m))
        self.nets["G_B"] = define_G(output_nc, input_nc, m.ngf, m.netG, **generator_options(m))
        self.is_train = is_train
        if is_train:
            d_kwargs = {"norm": m.norm, "init_type": m.init_type, "init_gain": m.init_gain}
            self.nets["D_A"] = define_D(output_nc, m.ndf, m.netD, m.n_layers_D, **d_kwargs)
            self.nets["D_B"] = define_D(input_nc, m.ndf, m.netD, m.n_layers_D, **d_kwargs)
            seed = config.runtime.seed or 0
            self.seed = seed
            self.fake_A_pool = ImagePool(m.pool_size, seed=seed + 1)
            self.fake_B_pool = ImagePool(m.pool_size, seed=seed + 2)
            self.gan = gan_loss(m.gan_mode)
            self.colour_directions = sphere_directions(16, output_nc)
            self.rebuild_step_modules()

    first_batch_images = FIT_IMAGES  # the colour start, the identity warm start and the loss weights' choice

    @property
    def needs_first_batch(self) -> bool:  # type: ignore[override]
        options = self.options
        return (options.identity_warmup_steps > 0 or self.cfg.colour_warmup_steps > 0 or options.lambda_cycle_far > 0
                or options.lambda_body_near > 0 or self.cfg.grey_output_for_grey)

    def data_dependent_init(self, batch: dict[str, Any], precision: Precision, fresh: bool = True) -> None:
        """Start both generators as the identity (``--identity_warmup_steps``) and their colour branches
        at the other domain's colours (``--colour_warmup_steps``; quick preset), and choose the cycle
        and body weights (``--lambda_cycle_far``, ``--lambda_body_near``). A resume restores the weights
        and the choices this produced, so it does nothing then."""
        if not fresh:
            return
        self.choose_loss_weights(batch)
        if self.cfg.grey_output_for_grey:
            self.choose_grey_outputs(batch)
        steps = self.options.identity_warmup_steps
        if steps > 0:
            if batch["A"].shape[1] != batch["B"].shape[1]:
                raise ValueError("--identity_warmup_steps needs input_nc == output_nc: G(x) must be comparable with x")
            for offset, (name, images) in enumerate((("G_A", batch["A"]), ("G_B", batch["B"]))):
                identity_warm_start(self.nets[name], images, steps, precision, seed=self.seed + offset)
        if self.cfg.colour_warmup_steps > 0:
            unfitted = {name: copy.deepcopy(self.nets[name].colour.state_dict()) for name in ("G_A", "G_B")}
            self.fit_colour_starts(batch)
            self.unfit_colour_starts_for_textures(batch, unfitted)

    def unfit_colour_starts_for_textures(self, batch: dict[str, Any], unfitted: dict[str, dict]) -> None:
        """Where the domains differ in texture (``colour_start.texture_verdict``), put both colour branches
        back as they were before their fits (the identity) and pay the body ``--lambda_body`` even on a
        near map: a texture is the body's work. On stripes added to shapes (zebra) the fitted start
        darkened the shapes whole and the body, paid the near weight, hardly learnt the stripes; from the
        identity with the near weight the body's decoder died on one seed. Both changes together kept
        both seeds above the baselines and doing nothing's SSIM (benchmarks/README.md)."""
        if batch["A"].shape[1] != batch["B"].shape[1]:
            return
        texture, words = texture_verdict(batch["A"], batch["B"], self.nets["G_A"], self.nets["G_B"])
        if texture:
            for name, state in unfitted.items():
                self.nets[name].colour.load_state_dict(state)
            self.body_weight = self.options.lambda_body
            words += f", body weight {self.body_weight:g}"
        log.info("G_A and G_B: %s", words)

    def fit_colour_starts(self, batch: dict[str, Any]) -> None:
        """Each generator's colour start (``fit_colour_start``), then one that closes the cycle, which
        needs M_B = M_A^-1:

        - where both kept channel permutations that are not each other's inverse, the less certain one
          (its fit's distance the larger share of its identity's) is fitted again from the inverse of the
          other's. On a hue rotation between two of the cube's symmetries one direction's fits tell the
          permutations apart and the other's do not (benchmarks/README.md, hue150).
        - where one kept a permutation and the other none (both having weighed them), the other is fitted
          from the permutation's inverse too, and the two fits' shares of their identities' distances are
          summed; unless that sum is below the permutation-free pair's (the other's own share, and 1 for
          the permutation's generator fitted again from the identity), the permutation goes. On stripes
          added to shapes (zebra seed 1), G_B kept a negating permutation whose fit was 0.65 of the
          identity's while G_A kept the identity.
        """
        directions = {"G_A": ("A", "B", 0), "G_B": ("B", "A", 1)}
        partner = {"G_A": "G_B", "G_B": "G_A"}
        initial = {name: copy.deepcopy(self.nets[name].colour.state_dict()) for name in directions}
        starts = {}
        for name, (source, target, offset) in directions.items():
            starts[name] = fit_colour_start(self.nets[name], batch[source], batch[target],
                                            self.cfg.colour_warmup_steps, seed=self.seed + offset)
            log.info("%s %s", name, starts[name].describe())
        mixes = {name: self.nets[name].colour.mix.detach().cpu().clone() for name in directions}
        permuted = [name for name in directions if self.nets[name].colour.mixes]

        def refit(name: str, mix: torch.Tensor, why: str) -> ColourStart:
            source, target, offset = directions[name]
            self.nets[name].colour.load_state_dict(initial[name])
            start = fit_colour_start(self.nets[name], batch[source], batch[target], self.cfg.colour_warmup_steps,
                                     seed=self.seed + offset, mix=mix, given=why)
            log.info("%s %s", name, start.describe())
            return start

        def share(name: str) -> float:
            # Where permutations were weighed the identity was fitted too, and a fit's distance is above 0.
            return starts[name].distance / starts[name].identity_distance

        if len(permuted) == 2:
            if torch.equal(mixes["G_A"] @ mixes["G_B"], torch.eye(len(mixes["G_A"]))):
                return
            sure = min(directions, key=share)
            other = partner[sure]
            refit(other, mixes[sure].T.contiguous(), f"the inverse of {sure}'s, so that the cycle closes")
        elif len(permuted) == 1 and all(start.weighed_permutations for start in starts.values()):
            keeper = permuted[0]
            other = partner[keeper]
            own = copy.deepcopy(self.nets[other].colour.state_dict())
            inverse = refit(other, mixes[keeper].T.contiguous(), f"the inverse of {keeper}'s, weighed")
            with_permutation = share(keeper) + inverse.distance / starts[other].identity_distance
            without = share(other) + 1.0
            log.info("%s's permutation and its inverse fit %.2f of their identities' distances, %s's own start and "
                     "the identity %.2f: %s", keeper, with_permutation, other, without,
                     "kept" if with_permutation < without else "the identity instead")
            if with_permutation >= without:
                self.nets[other].colour.load_state_dict(own)
                refit(keeper, torch.eye(len(mixes[keeper])), f"as {other} keeps no permutation")

    def choose_loss_weights(self, batch: dict[str, Any]) -> None:
        """``--lambda_cycle_far`` on both cycles when the batch's A and B colours lie farther apart than
        FAR_MAP_DISTANCE (a map far from the identity), else lambda_A / lambda_B; and
        ``--lambda_body_near`` instead of lambda_body when they lie closer. One line says which."""
        options = self.options
        if (options.lambda_cycle_far <= 0 and options.lambda_body_near <= 0) \
                or batch["A"].shape[1] != batch["B"].shape[1]:
            return
        distance = colour_distance(batch["A"], batch["B"])
        near = distance <= FAR_MAP_DISTANCE
        if not near and options.lambda_cycle_far > 0:
            self.cycle_weights = (options.lambda_cycle_far, options.lambda_cycle_far)
        if near and options.lambda_body_near > 0:
            self.body_weight = options.lambda_body_near
        log.info("A and B colours %.3f apart (%s %g: a map %s the identity): cycle weights %g / %g, body weight %g",
                 distance, "<=" if near else ">", FAR_MAP_DISTANCE, "near" if near else "far from",
                 *self.cycle_weights, self.body_weight)

    def choose_grey_outputs(self, batch: dict[str, Any]) -> None:
        """``--grey_output_for_grey``: each generator whose target domain's first-batch pixels lie on the
        grey axis (``colour_start.GREY_DOMAIN_SHARE``) outputs grey from now on, in training and inference."""
        for name, target in (("G_A", "B"), ("G_B", "A")):
            reason = choose_grey_output(self.nets[name], batch[target], target)
            if reason is not None:
                log.info("%s %s", name, reason)

    def build_optimizers(self) -> None:
        self.optimizers = {"G": self.adam(self.nets["G_A"], self.nets["G_B"]),
                           "D": self.adam(self.nets["D_A"], self.nets["D_B"])}

    def rebuild_step_modules(self) -> None:
        """(Re)pair the networks, e.g. after SyncBatchNorm conversion replaced some of them."""
        per_sample_norm = self.cfg.norm in ("instance", "none")
        self._batch_discriminator_calls = per_sample_norm and self.options.batch_discriminator_calls
        self.step_modules = {
            "G": GeneratorPair(self.nets["G_A"], self.nets["G_B"], identity=self.options.lambda_identity > 0,
                               batch_calls=per_sample_norm and self.options.batch_generator_calls),
            "D": DiscriminatorPair(self.nets["D_A"], self.nets["D_B"], self.discriminator_loss),
        }

    # --- the step -------------------------------------------------------------------------

    def discriminator_loss(self, net: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return self.discriminator_terms(net, real, fake, batch_calls=self._batch_discriminator_calls)[2]

    def training_step(self, batch: dict[str, Any], precision: Precision,
                      all_ranks: Callable[[bool], bool] = bool) -> StepResult:
        """One step. ``all_ranks(flag)`` is True when every process agrees (distributed runs)."""
        m = self.options
        D_A, D_B = self.nets["D_A"], self.nets["D_B"]
        real_A, real_B = batch["A"], batch["B"]
        opt_G, opt_D = self.optimizers["G"], self.optimizers["D"]

        # Generators. The discriminators are frozen (no gradient for their weights) and called
        # directly, outside any DDP wrapper: the generators' loss must not touch D's reducer.
        set_requires_grad([D_A, D_B], False)
        opt_G.zero_grad(set_to_none=True)
        with precision.autocast():
            images = self.step_modules["G"](real_A, real_B)
            fake_B, rec_A, fake_A, rec_B = (images[k] for k in ("fake_B", "rec_A", "fake_A", "rec_B"))
            losses = {
                "G_A": self.adversarial(D_A(fake_B), True, False),
                "G_B": self.adversarial(D_B(fake_A), True, False),
                "cycle_A": cycle_loss(rec_A.float(), real_A.float()) * self.cycle_weights[0],
                "cycle_B": cycle_loss(rec_B.float(), real_B.float()) * self.cycle_weights[1],
            }
            if m.lambda_colour > 0:
                losses["colour_A"] = colour_distribution_loss(fake_B, real_B, self.colour_directions) * m.lambda_colour
                losses["colour_B"] = colour_distribution_loss(fake_A, real_A, self.colour_directions) * m.lambda_colour
            if self.body_weight > 0:
                losses["body_A"] = body_change(self.nets["G_A"], real_A, fake_B) * self.body_weight
                losses["body_B"] = body_change(self.nets["G_B"], real_B, fake_A) * self.body_weight
            if m.lambda_identity > 0:
                idt_A, idt_B = images["idt_A"], images["idt_B"]
                losses["idt_A"] = identity_loss(idt_A.float(), real_B.float()) * m.lambda_B * m.lambda_identity
                losses["idt_B"] = identity_loss(idt_B.float(), real_A.float()) * m.lambda_A * m.lambda_identity
        loss_G = sum(losses.values())
        self._visuals = {"real_A": real_A, **images, "real_B": real_B}
        # Never let a NaN / inf reach the weights or the image pools; every rank must agree, or
        # one would wait forever for the others' gradients.
        if not all_ranks(bool(torch.isfinite(loss_G))):
            set_requires_grad([D_A, D_B], True)
            return StepResult(_detached(losses), skipped=True)
        precision.backward(loss_G)
        set_requires_grad([D_A, D_B], True)

        # Discriminators, on real images and on fakes from the history pools. Their loss does not
        # depend on the generators' new weights (the fakes are detached), so both updates can wait
        # until both losses are known to be finite: the same arithmetic as the reference's order.
        opt_D.zero_grad(set_to_none=True)
        pooled_fake_B = self.fake_B_pool.query(fake_B)
        pooled_fake_A = self.fake_A_pool.query(fake_A)
        with precision.autocast():
            losses["D_A"], losses["D_B"] = self.step_modules["D"](real_A, real_B, pooled_fake_A, pooled_fake_B)
        loss_D = losses["D_A"] + losses["D_B"]
        if not all_ranks(bool(torch.isfinite(loss_D))):
            opt_G.zero_grad(set_to_none=True)
            return StepResult(_detached(losses), skipped=True)
        precision.backward(loss_D)
        precision.step(opt_G)
        precision.step(opt_D)
        precision.update()
        return StepResult(_detached(losses))

    def validation_terms(self, images: dict[str, torch.Tensor]) -> dict[str, list[float]]:
        """The cycle-consistency L1 of each direction: it needs no ground truth."""
        terms = []
        for domain in ("A", "B"):
            if f"rec_{domain}" in images:
                terms.append((images[f"rec_{domain}"].float() - images[f"real_{domain}"]).abs().mean().item())
        return {"val_cycle_l1": terms}

    def extra_state(self) -> dict[str, Any]:
        if not self.is_train:
            return {}
        return {"fake_A_pool": self.fake_A_pool.state_dict(), "fake_B_pool": self.fake_B_pool.state_dict(),
                "cycle_weights": list(self.cycle_weights), "body_weight": self.body_weight}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.is_train and state:
            device = next(self.parameters()).device
            self.fake_A_pool.load_state_dict(state["fake_A_pool"], device)
            self.fake_B_pool.load_state_dict(state["fake_B_pool"], device)
            # Checkpoints from before lambda_cycle_far trained with lambda_A / lambda_B.
            self.cycle_weights = tuple(state.get("cycle_weights", (self.options.lambda_A, self.options.lambda_B)))
            self.body_weight = state.get("body_weight", self.options.lambda_body)  # (lambda_body_near)


def body_change(generator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Mean |G(x) − G's output without its body|: what the convolutional body adds (see ``lambda_body``)."""
    return (fake.float() - generator.colour_only(real).float()).abs().mean()


def _detached(losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: value.detach().float() for name, value in losses.items()}
