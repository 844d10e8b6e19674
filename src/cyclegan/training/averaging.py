"""An exponential moving average of the translating networks' weights (``--ema_decay``).

A GAN's generator weights wander from step to step as the discriminator pushes them; the average
over the last few hundred steps translates more steadily than any one of them (StyleGAN, BigGAN and
most diffusion trainers ship the average). Training still updates the raw weights; validation,
``best`` and everything that loads a checkpoint for inference (``test``, ``translate``, ``export``,
``serve``) use the average. torch's ``AveragedModel`` keeps it; the buffers (batch-norm statistics)
follow the raw network, as they are not trained by gradients.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cyclegan.networks.compat import strip_module_prefix


class WeightAverage:
    """One ``AveragedModel`` per network name; ``update`` after each optimiser step."""

    def __init__(self, nets: Mapping[str, nn.Module], names: Iterable[str], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema_decay must lie between 0 and 1 (0: off), got {decay}")
        self.decay = decay
        self.averages = {
            name: AveragedModel(nets[name], multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
            for name in dict.fromkeys(names)
        }

    @torch.no_grad()
    def update(self, nets: Mapping[str, nn.Module]) -> None:
        """Move each average towards the network's current weights (the first call copies them)."""
        for name, average in self.averages.items():
            average.update_parameters(nets[name])

    @property
    def updates(self) -> int:
        return int(next(iter(self.averages.values())).n_averaged)

    def weights(self) -> dict[str, dict[str, torch.Tensor]]:
        """The averaged networks' state dicts, keyed as the raw networks' (what inference loads)."""
        return {name: strip_module_prefix(average.module.state_dict()) for name, average in self.averages.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "nets": self.weights()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, average in self.averages.items():
            average.module.load_state_dict(state["nets"][name], strict=True)
            average.n_averaged.fill_(int(state["updates"]))

    @contextmanager
    def swapped_in(self, nets: nn.ModuleDict) -> Iterator[None]:
        """Within the block, ``nets[name]`` is the average (validation translates with it)."""
        raw = {name: nets[name] for name in self.averages}
        try:
            for name, average in self.averages.items():
                nets[name] = average.module
            yield
        finally:
            for name, net in raw.items():
                nets[name] = net
