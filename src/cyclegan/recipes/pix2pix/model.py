"""pix2pix (Isola et al. 2017): a conditional GAN for paired data, the reference's ``pix2pix_model``.

G maps A to B; D judges a pair ``cat(A, B)`` (``input_nc + output_nc`` channels), so it learns
whether B fits *this* A rather than whether B looks like the domain. G's loss is the adversarial
term plus ``lambda_L1`` × L1(G(A), B): with paired data the L1 to the true B is a strong signal, and
the GAN term adds the high frequencies the L1 alone blurs away. No image pool (the reference's
pix2pix sets ``--pool_size 0``).

The reference's per-model defaults apply unless a flag says otherwise: ``--netG unet_256 --norm
batch --dataset_mode aligned --gan_mode vanilla --pool_size 0 --lambda_L1 100`` and dropout in G.

One step, as the reference's ``optimize_parameters`` (D first, then G, each on its own loss):
1. fake_B = G(real_A);
2. D's loss on cat(A, B) as real and cat(A, fake_B.detach()) as fake, and D's update;
3. G's loss with D frozen, scored by the *updated* D: GAN(D(cat(A, fake_B)), real) + lambda_L1 ×
   L1(fake_B, real_B), and G's update.
A non-finite loss (on any rank) skips the update it would feed, and the step reports it skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cyclegan.config import TrainConfig
from cyclegan.core.precision import Precision
from cyclegan.losses import gan_loss
from cyclegan.networks import define_D, define_G, generator_options
from cyclegan.recipes.base import MODELS, Direction, StepResult, TrainingRecipe, set_requires_grad
from cyclegan.recipes.pix2pix.config import Pix2PixConfig


class ConditionalDiscriminatorLoss(nn.Module):
    """D's loss terms of one step (real pairs, fake pairs, gradient penalty) as one module call
    (one forward per backward under DistributedDataParallel)."""

    def __init__(self, D: nn.Module, loss: Callable[..., tuple[torch.Tensor, ...]]) -> None:
        super().__init__()
        self.D, self.loss = D, loss

    def forward(self, real_pair: torch.Tensor, fake_pair: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.loss(self.D, real_pair, fake_pair)


@MODELS.register("pix2pix")
class Pix2PixModel(TrainingRecipe):
    title = "pix2pix"
    directions = (Direction("G", "A"),)
    generator_names = ("G",)
    loss_names = ("G_GAN", "G_L1", "D_real", "D_fake")  # the reference's names and order
    progress_losses = ("G_GAN", "G_L1", "D_real", "D_fake")
    visual_names = ("real_A", "fake_B", "real_B")
    config_section = "pix2pix"
    # The reference's pix2pix_model.modify_commandline_options (and no_dropout False: G uses dropout).
    defaults = {
        "model.norm": "batch",
        "model.netG": "unet_256",
        "data.dataset_mode": "aligned",
        "model.gan_mode": "vanilla",
        "model.pool_size": 0,
        "model.no_dropout": False,
    }

    def __init__(self, config: TrainConfig, is_train: bool = True) -> None:
        super().__init__()
        m = config.model
        self.cfg = m
        self.options: Pix2PixConfig = config.pix2pix
        self.lr, self.betas = config.optim.lr, (config.optim.beta1, config.optim.beta2)
        input_nc, output_nc = config.data.input_nc, config.data.output_nc
        self.nets["G"] = define_G(input_nc, output_nc, m.ngf, m.netG, **generator_options(m))
        self.is_train = is_train
        if is_train:
            if m.pool_size:
                raise ValueError(f"--model pix2pix uses no image pool (the reference's --pool_size 0), got "
                                 f"--pool_size {m.pool_size}: D judges pairs, and a pooled fake has lost its A")
            # Conditional D: it sees A and B stacked along the channels.
            self.nets["D"] = define_D(input_nc + output_nc, m.ndf, m.netD, m.n_layers_D, norm=m.norm,
                                      init_type=m.init_type, init_gain=m.init_gain)
            self.gan = gan_loss(m.gan_mode)
            self.rebuild_step_modules()

    def build_optimizers(self) -> None:
        self.optimizers = {"G": self.adam(self.nets["G"]), "D": self.adam(self.nets["D"])}

    def rebuild_step_modules(self) -> None:
        # Two D calls, not one batch: with batch norm (the default) one call would mix the statistics.
        D_loss = ConditionalDiscriminatorLoss(self.nets["D"], self.discriminator_terms)
        self.step_modules = {"G": self.nets["G"], "D": D_loss}

    # --- the step -------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Any], precision: Precision,
                      all_ranks: Callable[[bool], bool] = bool) -> StepResult:
        D = self.nets["D"]
        real_A, real_B = batch["A"], batch["B"]
        opt_G, opt_D = self.optimizers["G"], self.optimizers["D"]
        with precision.autocast():
            fake_B = self.step_modules["G"](real_A)
        self._visuals = {"real_A": real_A, "fake_B": fake_B, "real_B": real_B}

        # D on real and (detached) fake pairs.
        opt_D.zero_grad(set_to_none=True)
        with precision.autocast():
            d_real, d_fake, loss_D = self.step_modules["D"](torch.cat([real_A, real_B], 1),
                                                            torch.cat([real_A, fake_B.detach()], 1))
        losses = {"D_real": d_real, "D_fake": d_fake}
        if not all_ranks(bool(torch.isfinite(loss_D))):
            return StepResult(self.ordered_losses(losses), skipped=True)
        precision.backward(loss_D)
        precision.step(opt_D)

        # G with D frozen (no gradient for D's weights), D called outside its DDP wrapper.
        set_requires_grad([D], False)
        opt_G.zero_grad(set_to_none=True)
        with precision.autocast():
            losses["G_GAN"] = self.adversarial(D(torch.cat([real_A, fake_B], 1)), True, False)
            losses["G_L1"] = (fake_B.float() - real_B.float()).abs().mean() * self.options.lambda_L1
        loss_G = losses["G_GAN"] + losses["G_L1"]
        if not all_ranks(bool(torch.isfinite(loss_G))):
            set_requires_grad([D], True)
            precision.update()
            return StepResult(self.ordered_losses(losses), skipped=True)
        precision.backward(loss_G)
        set_requires_grad([D], True)
        precision.step(opt_G)
        precision.update()
        return StepResult(self.ordered_losses(losses))
