"""Training recipes, one file each (cycle_gan now; pix2pix and CUT can join as siblings).

A recipe defines its networks, losses and optimizers and one training step; the trainer owns
the loop, devices, precision, checkpoints and logging.
"""

from __future__ import annotations

from cyclegan.models.base import MODELS, TrainingRecipe
from cyclegan.models.cycle_gan import CycleGANModel

__all__ = ["MODELS", "CycleGANModel", "TrainingRecipe", "create_model"]


def create_model(config, is_train: bool = True) -> TrainingRecipe:
    """Build the recipe named by ``config.model.model`` (an unknown name lists the known ones)."""
    return MODELS.get(config.model.model)(config, is_train=is_train)
