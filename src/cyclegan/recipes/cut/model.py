"""CUT and FastCUT (Park et al. 2020) as a recipe: ``--model cut --CUT_mode CUT|FastCUT``.

One generator G: A→B, a discriminator D on B, and F (PatchSampleF), which samples patches of G's
encoder features and projects them for PatchNCE. The losses and the forward pass live in
``cut_objective.py`` (checked against CUT's own code by tests/test_cut.py); this file holds the
order of one step, the optimizers and the contract's hooks.

One step, as CUT's ``optimize_parameters``:
1. forward: fake_B = G(real_A) (and idt_B = G(real_B) in one call for CUT's identity NCE); FastCUT
   flips the input horizontally with probability 1/2 (flip-equivariance);
2. D's loss on real_B and the detached fake_B, and D's update;
3. G's loss with D frozen and scored by the *updated* D: G_GAN + mean(NCE, NCE_Y), and the updates
   of G and F.
A non-finite loss (on any rank) skips the update it would feed, and the step reports it skipped.

F's MLPs take their input sizes from G's features, so they are built from the first batch
(``data_dependent_init``) before the optimizers, the restore of a resumed run and any DDP wrapping;
every rank builds them from the same seed, so they start equal.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from cyclegan.config import TrainConfig
from cyclegan.core.precision import Precision
from cyclegan.networks.compat import strip_module_prefix
from cyclegan.recipes.base import MODELS, Direction, StepResult, TrainingRecipe, set_requires_grad
from cyclegan.recipes.colour_start import FIT_IMAGES, choose_grey_output, fit_colour_start
from cyclegan.recipes.cut.networks import mlp_channels_in_state_dict
from cyclegan.recipes.cut.objective import (
    CUT_MODE_DEFAULTS,
    CUTConfig,
    antialias_hint,
    build_discriminator,
    build_feature_projector,
    build_generator,
    cut_discriminator_loss,
    cut_forward,
    cut_generator_losses,
    draw_flip,
    initialize_feature_projector,
)

log = logging.getLogger("cyclegan.train")


def cut_config(config: TrainConfig) -> CUTConfig:
    """CUT's options from the ``cut`` section and the shared ``model`` / ``data`` options (by name;
    the epoch counts stay None: the --CUT_mode's)."""
    shared = {**dataclasses.asdict(config.data), **dataclasses.asdict(config.model), **dataclasses.asdict(config.cut)}
    return CUTConfig(**{f.name: shared[f.name] for f in dataclasses.fields(CUTConfig) if f.name in shared})


class CUTDiscriminatorLoss(nn.Module):
    """D's loss terms of one step as one module call (one forward per backward under DDP)."""

    def __init__(self, D: nn.Module, gan_mode: str, batch_calls: bool) -> None:
        super().__init__()
        self.D, self.gan_mode, self.batch_calls = D, gan_mode, batch_calls

    def forward(self, fake_B: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        return cut_discriminator_loss(self.D, fake_B.float(), real_B, self.gan_mode, batch_calls=self.batch_calls)


@MODELS.register("cut")
class CUTModel(TrainingRecipe):
    title = "CUT"
    directions = (Direction("G", "A"),)
    generator_names = ("G",)
    loss_names = ("G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y")  # CUT's names and order
    progress_losses = ("G_GAN", "NCE", "NCE_Y", "D_real", "D_fake")
    visual_names = ("real_A", "fake_B", "real_B", "idt_B")
    config_section = "cut"
    variants = {"fastcut": {"cut.CUT_mode": "FastCUT"}}
    # CUT's base and train options where they differ from CycleGAN's (its normG / normD are in the
    # cut section); CUT's 200 + 200 epochs, FastCUT's 150 + 50 (see defaults_for).
    defaults = {
        "model.init_type": "xavier",
        "model.pool_size": 0,
        "model.gan_mode": "lsgan",
        "model.no_dropout": True,
        "data.dataset_mode": "unaligned",
    }

    # --preset quick also sets, for --CUT_mode CUT, most of what it sets for CycleGAN (measured in
    # benchmarks/README.md, "Learning curves" and "The task family"): no norms (instance norm removes
    # each image's absolute colours); a generator that starts as the identity, with CycleGAN's per-pixel
    # colour branch fitted to B's colours before training and the body's changes scaled down (it raised
    # every task of the family it was measured on); a grey output when B is greyscale; an average of G's
    # weights; 800 iterations. Not the vanilla GAN loss: with it CUT's D won outright in one run of three;
    # CUT's lsgan did not. FastCUT keeps its own defaults there: with these settings and the vanilla loss
    # it stayed the identity (its 10x NCE weight holds G at the start) or, without the identity start,
    # its D won.
    preset_defaults = {"quick": {
        "cut.normG": "none", "cut.normD": "none", "model.init_type": "kaiming", "model.residual_output": True,
        "model.colour_branch": 32, "model.body_scale": 0.1, "model.colour_warmup_steps": 200,
        "model.grey_output_for_grey": True, "optim.ema_decay": 0.995, "optim.max_iters": 800,
        "cut.nce_keys_after_colour": True,
    }}

    @classmethod
    def preset_defaults_for(cls, config: TrainConfig, preset: str) -> Mapping[str, Any]:
        return super().preset_defaults_for(config, preset) if config.cut.CUT_mode.lower() == "cut" else {}

    @classmethod
    def defaults_for(cls, config: TrainConfig) -> Mapping[str, Any]:
        mode = config.cut.CUT_mode.lower()
        if mode not in CUT_MODE_DEFAULTS:
            raise ValueError(f"--CUT_mode must be CUT or FastCUT, got {config.cut.CUT_mode!r}")
        per_mode = CUT_MODE_DEFAULTS[mode]
        resolved = {f"cut.{name}": per_mode[name] for name in ("lambda_NCE", "nce_idt", "flip_equivariance")
                    if getattr(config.cut, name) is None}
        return {**cls.defaults, **resolved,
                "optim.n_epochs": per_mode["n_epochs"], "optim.n_epochs_decay": per_mode["n_epochs_decay"]}

    def __init__(self, config: TrainConfig, is_train: bool = True) -> None:
        super().__init__()
        self.options = options = cut_config(config)
        self.lr, self.betas = config.optim.lr, (config.optim.beta1, config.optim.beta2)
        self.colour_warmup_steps, self.seed = config.model.colour_warmup_steps, config.runtime.seed or 0
        self.grey_output_for_grey = config.model.grey_output_for_grey
        self.nets["G"] = build_generator(options)
        self.is_train = is_train
        if is_train:
            if options.pool_size:
                raise ValueError(f"--model cut uses no image pool (CUT's --pool_size 0), got --pool_size "
                                 f"{options.pool_size}")
            self.nets["D"] = build_discriminator(options)
            self.nets["F"] = build_feature_projector(options)
            self.batch_nce_calls = config.cut.batch_nce_calls
            self.batch_discriminator_calls = (config.cut.batch_real_fake_calls
                                              and options.normD in ("instance", "none"))
            # FastCUT's coin, from its own generator: the checkpoint carries its state.
            self.flip_rng = torch.Generator().manual_seed((config.runtime.seed or 0) + 3)
            self.rebuild_step_modules()

    # --- building -------------------------------------------------------------------------

    @property
    def needs_first_batch(self) -> bool:  # type: ignore[override]
        return self.is_train and (bool(getattr(self.nets["F"], "needs_first_batch", False))
                                  or self.colour_warmup_steps > 0 or self.grey_output_for_grey)

    first_batch_images = FIT_IMAGES  # the colour start fits on these

    def data_dependent_init(self, batch: dict[str, Any], precision: Precision, fresh: bool = True) -> None:
        """Make G output grey if B is greyscale (``--grey_output_for_grey``) and fit its colour branch to
        B's colours (``--colour_warmup_steps``), a fresh run only: a resume restores both; then build F's
        MLPs from G's features of the first batch (on a resume too: the restore then finds F's
        parameters; their initial values are overwritten)."""
        if self.grey_output_for_grey and fresh:
            reason = choose_grey_output(self.nets["G"], batch["B"], "B")
            if reason is not None:
                log.info("G %s", reason)
        if self.colour_warmup_steps > 0 and fresh:
            start = fit_colour_start(self.nets["G"], batch["A"], batch["B"], self.colour_warmup_steps, seed=self.seed)
            log.info("G %s", start.describe())
        if getattr(self.nets["F"], "needs_first_batch", False):
            initialize_feature_projector(self.nets["G"], self.nets["F"], batch["A"], self.options.nce_layers)

    @classmethod
    def reference_weights_hint(cls, state: Mapping[str, torch.Tensor], config: TrainConfig) -> str | None:
        return antialias_hint(strip_module_prefix(state), cut_config(config))

    def build_from_state(self, nets: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        F = self.nets["F"] if "F" in self.nets else None
        if F is not None and getattr(F, "needs_first_batch", False) and "F" in nets:
            F.create_mlp_for_channels(mlp_channels_in_state_dict(nets["F"]))

    def build_optimizers(self) -> None:
        self.optimizers = {"G": self.adam(self.nets["G"]), "D": self.adam(self.nets["D"])}
        if any(True for _ in self.nets["F"].parameters()):  # mlp_sample; sample / reshape have no weights
            self.optimizers["F"] = self.adam(self.nets["F"])  # (CUT makes no optimizer for those)

    def rebuild_step_modules(self) -> None:
        self.step_modules = {
            "G": self.nets["G"],
            "D": CUTDiscriminatorLoss(self.nets["D"], self.options.gan_mode, self.batch_discriminator_calls),
        }

    def wrap_step_modules(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """G (the forward), D's loss and F (its MLPs exist by now: data_dependent_init came first). G's
        NCE encoder passes call G itself: its gradient hooks sit on the parameters, so DDP still
        averages the whole gradient once per backward."""
        modules = dict(self.step_modules)
        if any(param.requires_grad for param in self.nets["F"].parameters()):
            modules["F"] = self.nets["F"]
        self.step_modules = {name: wrap(module) for name, module in modules.items()}

    # --- the step -------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Any], precision: Precision,
                      all_ranks: Callable[[bool], bool] = bool) -> StepResult:
        o = self.options
        G, D, F = self.nets["G"], self.nets["D"], self.nets["F"]
        real_A, real_B = batch["A"], batch["B"]
        flipped = bool(o.flip_equivariance) and draw_flip(self.flip_rng)
        with precision.autocast():
            forward = cut_forward(self.step_modules["G"], real_A, real_B, bool(o.nce_idt) and o.lambda_NCE > 0,
                                  flipped=flipped, nce_layers=o.nce_layers if self.input_features_are_keys else None)
        self._visuals = {"real_A": real_A, "fake_B": forward.fake_B, "real_B": real_B}
        if forward.idt_B is not None:
            self._visuals["idt_B"] = forward.idt_B

        # D on real_B and the detached fake_B.
        opt_D = self.optimizers["D"]
        opt_D.zero_grad(set_to_none=True)
        with precision.autocast():
            losses = dict(self.step_modules["D"](forward.fake_B, real_B))
        loss_D = losses.pop("D")
        if not all_ranks(bool(torch.isfinite(loss_D))):
            return StepResult(self.ordered_losses(losses), skipped=True)
        precision.backward(loss_D)
        precision.step(opt_D)

        # G and F with D frozen (no gradient for D's weights), D called outside its DDP wrapper.
        set_requires_grad([D], False)
        generator_optimizers = [self.optimizers[name] for name in ("G", "F") if name in self.optimizers]
        for optimizer in generator_optimizers:
            optimizer.zero_grad(set_to_none=True)
        # The images in fp32 for the losses (autocast may have produced bf16).
        forward = dataclasses.replace(forward, fake_B=forward.fake_B.float(),
                                      idt_B=None if forward.idt_B is None else forward.idt_B.float())
        with precision.autocast():
            g_losses = cut_generator_losses(G, self.step_modules.get("F", F), D, forward, o,
                                            batch_nce_calls=self.batch_nce_calls)
        losses.update(g_losses)
        if not all_ranks(bool(torch.isfinite(g_losses["G"]))):
            set_requires_grad([D], True)
            precision.update()
            return StepResult(self.ordered_losses(losses), skipped=True)
        precision.backward(g_losses["G"])
        set_requires_grad([D], True)
        for optimizer in generator_optimizers:
            precision.step(optimizer)
        precision.update()
        return StepResult(self.ordered_losses(losses))

    @property
    def input_features_are_keys(self) -> bool:
        """Whether the forward pass's encoder features of the input serve as PatchNCE's keys (not with
        ``--nce_keys_after_colour``: its keys come from the colour branch's output)."""
        return self.options.lambda_NCE > 0 and not self.options.nce_keys_after_colour

    def extra_state(self) -> dict[str, Any]:
        return {"flip_rng": self.flip_rng.get_state()} if self.is_train else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.is_train and state:
            self.flip_rng.set_state(state["flip_rng"])
