"""Start a generator as the identity: a short L1 fit of G(x) to x before adversarial training.

A freshly initialised generator outputs structureless noise, and in a short CPU run the adversarial
and cycle terms spend most of their iterations recovering the input's structure (edges, shapes)
before they can change its colours: the learning issue saw a half-trained model print the same
purple noise for every input. Images of both domains in translation tasks mostly keep their layout,
so starting from G(x) = x leaves the adversarial term only the change of appearance to learn.
"""

from __future__ import annotations

import torch
from torch import nn

from cyclegan.core.precision import Precision


def identity_warm_start(generator: nn.Module, images: torch.Tensor, steps: int, precision: Precision,
                        lr: float = 1e-3, batch_size: int = 4, seed: int = 0) -> float:
    """Fit ``generator(x) ≈ x`` (L1) on ``images`` for ``steps`` Adam steps; returns the last L1.

    Its own optimizer (dropped afterwards, so training's Adam starts fresh) and its own random
    generator for the batches: the same images and seed give the same weights.
    """
    optimizer = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    chooser = torch.Generator().manual_seed(seed)
    loss = torch.tensor(float("nan"))
    generator.train()
    for _ in range(steps):
        index = torch.randint(len(images), (min(batch_size, len(images)),), generator=chooser)
        batch = images[index.to(images.device)]
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            output = generator(batch)
        loss = (output.float() - batch.float()).abs().mean()
        precision.backward(loss)
        precision.step(optimizer)
        precision.update()
    return float(loss.detach())

