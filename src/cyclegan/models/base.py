"""The contract every training recipe follows, so the trainer can drive any of them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cyclegan.precision import Precision
from cyclegan.registry import Registry


class TrainingRecipe(nn.Module):
    """Networks + losses + optimizers + one step. Knows nothing of devices, loops or files."""

    #: set by training_step when a non-finite loss made it skip the update
    last_step_skipped: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.nets = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    def build_optimizers(self) -> None:
        """Create optimizers once the networks sit on their final device."""
        raise NotImplementedError

    def data_dependent_init(self, batch: dict[str, Any], precision: Precision) -> None:
        """Called once in a fresh run, with a batch of training images, before the optimizers exist."""

    def training_step(self, batch: dict[str, Any], precision: Precision) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch; returns every loss term (detached) by name."""
        raise NotImplementedError

    def current_visuals(self) -> dict[str, torch.Tensor]:
        """The images of the last step, by name, in [-1, 1]."""
        raise NotImplementedError

    def rebuild_step_modules(self) -> None:
        """Called after the trainer replaced networks in ``nets`` (e.g. SyncBatchNorm conversion)."""

    def wrap_step_modules(self, wrap) -> None:
        """Let the trainer wrap whatever the step calls (DDP, torch.compile)."""

    def extra_state(self) -> dict[str, Any]:
        """State beyond networks and optimizers that an exact resume needs (e.g. image pools)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass


MODELS: Registry[type[TrainingRecipe]] = Registry("model")


def set_requires_grad(nets: list[nn.Module], requires_grad: bool) -> None:
    """Freeze / unfreeze networks (the discriminators during the generator step)."""
    for net in nets:
        for param in net.parameters():
            param.requires_grad_(requires_grad)
