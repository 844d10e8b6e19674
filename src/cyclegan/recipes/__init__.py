"""Training recipes, one file each: cycle_gan, pix2pix, cut (CUT and FastCUT).

A recipe defines its networks, losses and optimizers and one training step, under the contract in
``base.py``; the trainer owns the loop, devices, precision, checkpoints and logging.
"""

from __future__ import annotations

import dataclasses

from cyclegan.config import TrainConfig, preset_config, preset_keys
from cyclegan.recipes.base import (
    MODELS,
    Direction,
    StepResult,
    TrainingRecipe,
    recipe_defaults,
    recipe_preset,
)
from cyclegan.recipes.colorization.model import ColorizationModel
from cyclegan.recipes.cut.model import CUTModel
from cyclegan.recipes.cycle_gan.model import CycleGANModel
from cyclegan.recipes.pix2pix.model import Pix2PixModel

__all__ = [
    "MODELS",
    "ColorizationModel",
    "CUTModel",
    "CycleGANModel",
    "Pix2PixModel",
    "StepResult",
    "TrainingRecipe",
    "Direction",
    "create_model",
    "default_config",
    "default_config_at_sizes",
    "preset_config_for",
    "recipe_defaults",
    "recipe_preset",
]


def create_model(config: TrainConfig, is_train: bool = True) -> TrainingRecipe:
    """Build the recipe named by ``config.model.model`` (an unknown name lists the known ones)."""
    return MODELS.get(config.model.model)(config, is_train=is_train)


def default_config(model: str = "cycle_gan", **sections) -> TrainConfig:
    """A TrainConfig for ``model`` with that recipe's defaults (``--model pix2pix`` alone on the CLI).

    ``sections``: ``data=DataConfig(...)`` ... replace whole sections first; the recipe's defaults then
    apply only to fields those sections leave at the dataclass default.
    """
    config = TrainConfig(**sections)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, model=model))
    pristine = TrainConfig()
    given = {f"{section}.{f.name}" for section in sections for f in dataclasses.fields(getattr(config, section))
             if getattr(getattr(config, section), f.name) != getattr(getattr(pristine, section), f.name)}
    return recipe_defaults(config, given)


def default_config_at_sizes(model: str, sized: TrainConfig, **sections) -> TrainConfig:
    """``model``'s own defaults with ``sized``'s data section, generator and G / D widths (a recipe run
    at a preset's size, e.g. CUT at ``--preset quick``'s); ``sections`` replace further sections."""
    config = default_config(model, data=sized.data, **sections)
    config.model.netG, config.model.ngf, config.model.ndf = sized.model.netG, sized.model.ngf, sized.model.ndf
    return config


def preset_config_for(preset: str, model: str = "cycle_gan", **sections) -> TrainConfig:
    """``--preset <preset> --model <model>`` with no other flag: the preset's shared settings, then the
    recipe's defaults and what the preset sets for that recipe (``preset_defaults``). ``sections``
    replace sections first, as flags would (``cut=CUTOptions(CUT_mode="FastCUT")``)."""
    config = dataclasses.replace(preset_config(preset), **sections)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, model=model))
    return recipe_preset(recipe_defaults(config, preset_keys(preset)), preset)
