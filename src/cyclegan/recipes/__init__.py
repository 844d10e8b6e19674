"""Training recipes, one folder each: cycle_gan, pix2pix, colorization, cut (CUT and FastCUT).

A recipe defines its networks, losses, optimizers, config section and one training step, under the
contract in ``base.py``; the trainer owns the loop, devices, precision, checkpoints and logging.
Importing this package registers every recipe (``MODELS``) and its config section; ``resolve.py``
makes a run's config from flags, a preset and the recipe's defaults.
"""

from __future__ import annotations

from cyclegan.config import TrainConfig
from cyclegan.recipes.base import (
    MODELS,
    Direction,
    StepResult,
    TrainingRecipe,
)
from cyclegan.recipes.colorization.model import ColorizationModel
from cyclegan.recipes.cut.model import CUTModel
from cyclegan.recipes.cycle_gan.model import CycleGANModel
from cyclegan.recipes.pix2pix.model import Pix2PixModel
from cyclegan.recipes.resolve import (
    default_config,
    default_config_at_sizes,
    preset_config_for,
    recipe_defaults,
    recipe_preset,
    resolve_config,
)

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
    "resolve_config",
]


def create_model(config: TrainConfig, is_train: bool = True) -> TrainingRecipe:
    """Build the recipe named by ``config.model.model`` (an unknown name lists the known ones)."""
    return MODELS.get(config.model.model)(config, is_train=is_train)
