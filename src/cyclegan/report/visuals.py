"""Turn visuals (``{"real_A": tensor, ...}`` in [-1, 1]) into PNG files.

The networks output ``tanh`` images in [-1, 1]; these helpers map them to [0, 1] like the reference's
``util.tensor2im`` and write one grid per visual (the whole batch side by side via ``make_grid``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid, save_image

from cyclegan.core.fileio import atomic_write

__all__ = ["safe_name", "save_visuals", "tensor_to_image", "to_unit_range"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(name: str) -> str:
    """File-name-safe version of a visual name (``real_A`` stays as is; ``a/b`` becomes ``a_b``)."""
    cleaned = _UNSAFE.sub("_", str(name)).strip("._")
    return cleaned or "visual"


def to_unit_range(t: torch.Tensor) -> torch.Tensor:
    """Map a [-1, 1] tensor to float32 [0, 1] on the CPU, detached (clamped: GAN outputs can overshoot)."""
    return ((t.detach().to("cpu", torch.float32) + 1.0) / 2.0).clamp_(0.0, 1.0)


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """Convert one image tensor in [-1, 1] to an 8-bit PIL image.

    Accepts ``(C, H, W)`` or ``(N, C, H, W)`` (then the first image, like the reference's
    ``tensor2im``). One channel gives a greyscale (``L``) image, three an ``RGB`` one.
    """
    if t.dim() == 4:
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"expected a (C, H, W) or (N, C, H, W) tensor, got shape {tuple(t.shape)}")
    x = to_unit_range(t)
    arr = x.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        return Image.fromarray(arr[:, :, 0], mode="L")
    if arr.shape[2] != 3:
        # Channels other than 1 or 3 (e.g. input_nc=4): show the first three.
        arr = arr[:, :, :3] if arr.shape[2] > 3 else arr[:, :, :1].repeat(3, axis=2)
    return Image.fromarray(arr, mode="RGB")


def save_visuals(
    visuals: Mapping[str, torch.Tensor], folder: str | Path, prefix: str = "", nrow: int = 8
) -> dict[str, str]:
    """Write one PNG per visual and return ``{name: path relative to folder}``.

    Each value is a tensor in [-1, 1], ``(N, C, H, W)`` or ``(C, H, W)``; a batch becomes a
    ``make_grid`` grid with ``nrow`` images per row and 2-pixel padding (one image is saved unpadded).
    Files are named ``{prefix}_{name}.png`` (``{name}.png`` without a prefix) and written atomically.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    for name, t in visuals.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"visual {name!r} is {type(t).__name__}, expected a tensor")
        if t.dim() == 3:
            t = t.unsqueeze(0)
        if t.dim() != 4:
            raise ValueError(f"visual {name!r}: expected (N, C, H, W) or (C, H, W), got {tuple(t.shape)}")
        grid = make_grid(to_unit_range(t), nrow=nrow, padding=2)
        fname = f"{prefix}_{safe_name(name)}.png" if prefix else f"{safe_name(name)}.png"
        # Not fsynced: page images are redrawn from the run; an fsync each cost more than the PNG.
        atomic_write(folder / fname, lambda tmp, g=grid: save_image(g, tmp, format="png"), durable=False)
        out[name] = fname
    return out
