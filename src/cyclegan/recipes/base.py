"""The contract every training recipe follows, so that nothing outside ``models/`` names its networks.

The reference's best idea is its five-method model contract (per-model flags and defaults,
``set_input``, ``forward``, ``optimize_parameters``, visuals and losses by name). Ours keeps the loop
out of the recipe, as Lightning's ``training_step`` + ``configure_optimizers`` does. A recipe declares:

- ``nets``: its networks by name (the checkpoint's keys, the reference's ``<epoch>_net_<name>.pth``);
- ``directions``: which networks translate at inference, with their direction (``direction(name)``,
  ``channels``, ``image_codec``: what a network reads and writes as images) (``cyclegan test``,
  validation, export and the ONNX backend follow this);
- ``generator_names``: the networks whose activations gradient checkpointing may recompute;
- ``build_optimizers`` (the trainer gives each optimizer its learning-rate schedule);
- ``loss_names`` (every logged term, in log order) and ``progress_losses`` (those on the progress bar);
- ``visual_names``: the training page's columns, in order;
- ``size_multiple``: what H and W of a training crop must be divisible by;
- ``config_section`` and ``defaults``: its own ``TrainConfig`` section, and the shared options it
  changes (the reference's ``modify_commandline_options``), applied unless a flag says otherwise;
- ``data_dependent_init(batch, precision)``: called with the first batch before the optimizers exist (CUT builds
  its feature MLPs there); ``needs_first_batch`` says whether to call it; ``build_from_state`` builds the
  same from a checkpoint's state dicts (loading without data);
- ``training_step(batch, precision, all_ranks)`` → :class:`StepResult` (losses, skipped);
- ``translate(batch)``: the visuals of one batch without training (validation, ``test``);
- ``validation_terms(images)``: extra per-image scores of the validation set (CycleGAN's cycle L1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from cyclegan.config import TrainConfig
from cyclegan.core.precision import Precision
from cyclegan.core.registry import Registry
from cyclegan.losses import gradient_penalty
from cyclegan.recipes.codec import ImageCodec


@dataclass(frozen=True)
class Direction:
    """One network that translates at inference: ``net`` maps domain ``source`` to the other one.

    ``back`` (optional) maps the result back (CycleGAN's reconstruction, shown as ``rec_<source>``).
    """

    net: str
    source: str = "A"
    back: str | None = None

    @property
    def target(self) -> str:
        return "B" if self.source == "A" else "A"

    @property
    def name(self) -> str:
        """The reference's ``--direction`` value: ``AtoB`` or ``BtoA``."""
        return f"{self.source}to{self.target}"

    @property
    def labels(self) -> tuple[str, str, str]:
        """The reference's file labels: ``real_A``, ``fake_B``, ``rec_A`` for an A→B network."""
        return f"real_{self.source}", f"fake_{self.target}", f"rec_{self.source}"


@dataclass
class StepResult:
    """What one training step returns: every loss term (detached, fp32) by name, and whether the
    update was skipped because a loss was not finite (on any rank)."""

    losses: dict[str, torch.Tensor]
    skipped: bool = False


class TrainingRecipe(nn.Module):
    """Networks + losses + optimizers + one step. Knows nothing of devices, loops or files."""

    #: the networks that translate at inference, with their direction
    directions: ClassVar[tuple[Direction, ...]] = ()
    #: the networks gradient checkpointing applies to (generators)
    generator_names: ClassVar[tuple[str, ...]] = ()
    #: every loss term the step can return, in the loss log's order
    loss_names: ClassVar[tuple[str, ...]] = ()
    #: the loss terms shown on the progress bar
    progress_losses: ClassVar[tuple[str, ...]] = ()
    #: the training page's image columns, in order (a name the step did not produce is left out)
    visual_names: ClassVar[tuple[str, ...]] = ()
    #: the recipe's own TrainConfig section (None: it has no options of its own)
    config_section: ClassVar[str | None] = None
    #: shared options this recipe changes, "section.field" → value, unless a flag sets them
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: per preset name (config.PRESETS): what that preset also sets for this recipe, as ``defaults``
    preset_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: whether the trainer calls data_dependent_init with the first batch (a property may decide)
    needs_first_batch: ClassVar[bool] = False
    #: how many training images that batch holds at least (default: the data's batch size)
    first_batch_images: ClassVar[int] = 1
    #: a human name for pages and logs
    title: ClassVar[str] = ""
    #: named settings under which the recipe is another method ("section.field" → value, as
    #: ``defaults``): CUT's FastCUT. The registry-driven tests run each as its own recipe.
    variants: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: a score from validation_terms to follow when there is no ground truth, and "min" / "max"
    fallback_objective: ClassVar[tuple[str, str] | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.nets = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        # What the step calls, by name; a plain dict, not registered: the networks already are.
        self.step_modules: dict[str, nn.Module] = {}
        self._visuals: dict[str, torch.Tensor] = {}

    @classmethod
    def defaults_for(cls, config: TrainConfig) -> Mapping[str, Any]:
        """``defaults`` for this config: a recipe whose defaults depend on one of its own options
        (CUT's ``--CUT_mode``) overrides this."""
        return cls.defaults

    @classmethod
    def preset_defaults_for(cls, config: TrainConfig, preset: str) -> Mapping[str, Any]:
        """``preset_defaults[preset]`` for this config; overridden like ``defaults_for``."""
        return cls.preset_defaults.get(preset, {})

    @classmethod
    def direction(cls, name: str) -> Direction:
        """The network that translates ``name`` (``AtoB`` / ``BtoA``); a one-direction recipe says which
        direction it has."""
        for direction in cls.directions:
            if direction.name == name:
                return direction
        have = ", ".join(d.name for d in cls.directions)
        if name not in ("AtoB", "BtoA"):
            raise ValueError(f"--direction must be AtoB or BtoA, got {name!r}")
        raise ValueError(f"a {cls.title or cls.__name__} run translates {have} only: drop --direction {name} "
                         f"(to translate the other way, train with --direction {name})")

    @classmethod
    def channels(cls, config: TrainConfig, direction: Direction) -> tuple[int, int]:
        """(input, output) channels of ``direction``'s network: A has ``input_nc``, B ``output_nc``."""
        a, b = config.data.input_nc, config.data.output_nc
        return (a, b) if direction.source == "A" else (b, a)

    @classmethod
    def image_codec(cls, config: TrainConfig, direction: Direction) -> ImageCodec:
        """How ``direction``'s network meets images: what it reads, and how its output becomes an image
        (the default: grey or RGB in [-1, 1] both ways; colorization: Lab)."""
        return ImageCodec(*cls.channels(config, direction))

    # --- building -------------------------------------------------------------------------

    @property
    def size_multiple(self) -> int:
        """H and W of a training crop must be divisible by this: the largest of the generators'."""
        multiples = [getattr(self.nets[name], "size_multiple", 1) for name in self.generator_names]
        return max(multiples, default=1)

    def data_dependent_init(self, batch: dict[str, Any], precision: Precision, fresh: bool = True) -> None:
        """Build what depends on the data (called before ``build_optimizers``, on a resume too: the
        restore then overwrites what it built, so the parameters exist when the optimizers and the
        checkpoint's state dict need them). ``fresh`` is False on a resume: work whose result the
        restore overwrites (CycleGAN's identity warm start) can be skipped."""

    @classmethod
    def reference_weights_hint(cls, state: Mapping[str, torch.Tensor], config: TrainConfig) -> str | None:
        """When another implementation's weights file does not fit the networks the flags built: the
        flag that most likely explains it (None: the generic advice)."""
        return None

    def build_from_state(self, nets: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """Build what ``data_dependent_init`` would, from saved state dicts (by network name) instead of
        a batch: loading every network of a checkpoint (reference export) needs no data."""

    def build_optimizers(self) -> None:
        """Create ``self.optimizers`` once the networks sit on their final device."""
        raise NotImplementedError

    def adam(self, *nets: nn.Module) -> torch.optim.Adam:
        """Adam over the networks' parameters with the run's ``lr`` and betas (``self.lr`` / ``self.betas``).

        The fused kernel updates each parameter in one pass (CPU and CUDA); the per-op loop it
        replaces took a sizeable share of a small bf16 step on CPU (``benchmarks/README.md``). Same
        update rule, same state keys.
        """
        return torch.optim.Adam([p for net in nets for p in net.parameters()], lr=self.lr, betas=self.betas,
                                fused=True)

    def rebuild_step_modules(self) -> None:
        """Called after the trainer replaced networks in ``nets`` (e.g. SyncBatchNorm conversion)."""

    def wrap_step_modules(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Let the trainer wrap whatever the step calls (DDP, torch.compile)."""
        self.step_modules = {name: wrap(module) for name, module in self.step_modules.items()}

    # --- training -------------------------------------------------------------------------

    # For the recipes with a PatchGAN judged by --gan_mode: they set ``self.gan`` (the loss) and
    # ``self.cfg`` (the model section).
    def adversarial(self, prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        m = self.cfg
        # Losses in fp32: autocast may hand us bf16 / fp16 prediction maps.
        return self.gan(prediction.float(), target_is_real, real_label=m.real_label, fake_label=m.fake_label,
                        for_discriminator=for_discriminator)

    def discriminator_terms(self, net: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                            batch_calls: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """D's (real term, fake term, their mean plus any gradient penalty).

        ``batch_calls``: one call of batch 2n instead of two of n, the same scores when images are
        normalised each on its own (instance norm, none). Small maps use the CPU poorly: one call on
        two images costs little more than a call on one, so the step runs faster (``benchmarks/README.md``).
        """
        if batch_calls:
            pred_real, pred_fake = net(torch.cat([real, fake])).split(real.shape[0])
        else:
            pred_real, pred_fake = net(real), net(fake)
        real_term, fake_term = self.adversarial(pred_real, True, True), self.adversarial(pred_fake, False, True)
        loss = 0.5 * (real_term + fake_term)
        if self.cfg.gan_mode == "wgangp":  # the reference defines the penalty but never applies it
            m = self.cfg
            loss = loss + gradient_penalty(net, real, fake, m.gp_type, m.gp_constant, m.lambda_gp)
        return real_term, fake_term, loss

    def training_step(self, batch: dict[str, Any], precision: Precision,
                      all_ranks: Callable[[bool], bool] = bool) -> StepResult:
        """One optimisation step. ``all_ranks(flag)`` is True when every process agrees (DDP)."""
        raise NotImplementedError

    def ordered_losses(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The step's losses, detached and fp32, in ``loss_names`` order."""
        return {name: losses[name].detach().float() for name in self.loss_names if name in losses}

    def current_visuals(self) -> dict[str, torch.Tensor]:
        """The images of the last step, by name, in [-1, 1], in ``visual_names`` order."""
        return {k: self._visuals[k].detach().float().cpu() for k in self.visual_names if k in self._visuals}

    def extra_state(self) -> dict[str, Any]:
        """State beyond networks and optimizers that an exact resume needs (e.g. image pools)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # --- inference ------------------------------------------------------------------------

    @torch.no_grad()
    def translate(self, batch: dict[str, torch.Tensor], first_only: bool = False) -> dict[str, torch.Tensor]:
        """Run every translator on the batch's images of its source domain (``A`` / ``B``).

        Returns the visuals by the reference's names: ``real_A``, ``fake_B``, ``rec_A`` (with a
        ``back`` network), and the target domain's real images when the batch holds them (paired
        data: ``real_B``, the ground truth of ``fake_B``). ``first_only``: the first translator's
        ``fake`` alone, without the way back (what a score against ground truth needs).
        """
        out: dict[str, torch.Tensor] = {}
        for translator in self.directions[:1] if first_only else self.directions:
            real = batch.get(translator.source)
            if real is None:
                continue
            real_label, fake_label, rec_label = translator.labels
            out[real_label] = real
            out[fake_label] = self.nets[translator.net](real)
            if translator.back is not None and not first_only:
                out[rec_label] = self.nets[translator.back](out[fake_label])
        for domain in ("A", "B"):
            if domain in batch and f"real_{domain}" not in out:
                out[f"real_{domain}"] = batch[domain]
        return out

    def validation_terms(self, images: dict[str, torch.Tensor]) -> dict[str, list[float]]:
        """Per-image scores of one validation item beyond PSNR / SSIM (averaged over the set)."""
        return {}


MODELS: Registry[type[TrainingRecipe]] = Registry("model")


def set_requires_grad(nets: list[nn.Module], requires_grad: bool) -> None:
    """Freeze / unfreeze networks (the discriminators during the generator step)."""
    for net in nets:
        for param in net.parameters():
            param.requires_grad_(requires_grad)
