"""History of generated images (Shrivastava et al. 2017), as the reference's ImagePool.

The discriminators are updated with a mix of the newest fakes and older ones, which damps
oscillation. Per image: while the pool is not full, images are stored and returned; once full,
each image is with probability 1/2 swapped with a random stored one (the stored one returned),
else returned as is. Randomness comes from the pool's own generator so that its state can be
saved and restored for exact resume.
"""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    def __init__(self, pool_size: int = 50, seed: int = 0) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}")
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch of the same shape, mixing ``images`` with stored ones; always detached."""
        images = images.detach()
        if self.pool_size == 0:
            return images
        returned = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                returned.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                index = int(torch.randint(0, self.pool_size, (), generator=self.generator).item())
                returned.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                returned.append(image)
        return torch.cat(returned, 0)

    def state_dict(self) -> dict[str, Any]:
        images = torch.cat(self.images, 0).cpu() if self.images else torch.empty(0)
        return {"pool_size": self.pool_size, "images": images, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str | None = None) -> None:
        if state["pool_size"] != self.pool_size:
            raise ValueError(f"saved pool holds up to {state['pool_size']} images, this one {self.pool_size}")
        images = state["images"]
        self.images = [img.unsqueeze(0).to(device) for img in images] if images.numel() else []
        self.generator.set_state(state["generator"])
