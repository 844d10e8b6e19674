"""Folders through a network for ``cyclegan test``: the images of a folder, read (whole, or the halves
of an A|B file), translated in batches of one size, and saved under the reference's file names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from cyclegan.config import DataConfig
from cyclegan.core.fileio import atomic_write
from cyclegan.core.precision import Precision
from cyclegan.data import list_images, scan_images, split_aligned
from cyclegan.data.transforms import image_tensor, pil_tensor
from cyclegan.report.visuals import tensor_to_image


def save_tensor_image(tensor: torch.Tensor, path: Path) -> None:
    """Save a 1×C×H×W (or C×H×W) tensor in [-1, 1] as an 8-bit image, atomically."""
    image = tensor_to_image(tensor[0] if tensor.dim() == 4 else tensor)
    # Not fsynced: a test run rewrites these from the checkpoint; an fsync per small image cost more than it.
    atomic_write(path, lambda handle: image.save(handle, format="PNG"), durable=False)


def folder_images(folder: Path, limit: int | None, max_bad_fraction: float = 0.1) -> list[Path]:
    paths, _ = list_images(folder)
    good = scan_images(paths, max_bad_fraction)
    return good[:limit] if limit is not None else good


def aligned_halves(path: Path, channels: tuple[int, int], direction: str = "AtoB",
                   data: DataConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """An aligned file (A | B side by side) as (source, target) 1×C×H×W tensors in [-1, 1].

    ``direction=BtoA``: the right half is the source, as the reference's aligned data set does.
    ``channels``: of the A and B halves. ``data`` (if given) applies its preprocessing to both halves.
    """
    source, target = (pil_tensor(half.convert("L") if nc == 1 else half, nc, data)
                      for half, nc in zip(split_aligned(path), channels, strict=True))
    return (target, source) if direction == "BtoA" else (source, target)


@dataclass
class Translation:
    stem: str
    images: dict[str, torch.Tensor]  # visual name → 1×C×H×W in [-1, 1]


@torch.no_grad()
def translate_folder(
    paths: list[Path],
    forward: Callable[[torch.Tensor], torch.Tensor],
    backward: Callable[[torch.Tensor], torch.Tensor] | None,
    channels: int,
    labels: tuple[str, str, str],
    device: torch.device | str = "cpu",
    data: DataConfig | None = None,
    batch_size: int = 1,
    precision: str = "fp32",
    read: Callable[[Path], tuple[torch.Tensor, dict[str, torch.Tensor]]] | None = None,
) -> Iterator[Translation]:
    """Yield real / fake (/ reconstructed) for each image in ``paths``.

    ``read(path)`` → (input, extra images to pass through by label): default the whole image as
    input; for aligned files, the source half with the target half as ``real_B``.

    ``forward`` / ``backward`` are torch generators or anything called the same way (an
    ``OnnxGenerator``). With ``batch_size`` > 1, images of the same size are translated together,
    up to ``batch_size`` at a time; results are yielded per batch, in the order batches fill up
    (every image keeps its own size, and in eval mode each image's output does not depend on the
    others in its batch). At most ``batch_size − 1`` images per distinct size wait in memory.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    real_label, fake_label, rec_label = labels
    # bf16 autocast: more images/s than fp32 on CPUs with native bf16, at a small cost in accuracy
    # (benchmarks/inference.py, benchmarks/README.md); fp32 by default for exact output.
    autocast = Precision(precision, torch.device(device)).autocast

    def run(batch: list[tuple[str, torch.Tensor]]) -> Iterator[Translation]:
        real = torch.cat([tensor for _, tensor in batch]).to(device)  # N×C×H×W, one size
        with autocast():
            fake = forward(real).float()
            rec = backward(fake).float() if backward is not None else None
        for index, (stem, _) in enumerate(batch):
            images = {real_label: real[index : index + 1].cpu(), fake_label: fake[index : index + 1].cpu()}
            if rec is not None:
                images[rec_label] = rec[index : index + 1].cpu()
            images.update(extras.pop(stem, {}))
            yield Translation(stem, images)

    waiting: dict[tuple[int, ...], list[tuple[str, torch.Tensor]]] = {}
    extras: dict[str, dict[str, torch.Tensor]] = {}
    for path in paths:
        if read is None:
            real = image_tensor(path, channels, data)
        else:
            real, extras[path.stem] = read(path)
        group = waiting.setdefault(tuple(real.shape), [])
        group.append((path.stem, real))
        if len(group) == batch_size:
            yield from run(waiting.pop(tuple(real.shape)))
    for group in waiting.values():
        yield from run(group)


__all__ = ["Translation", "aligned_halves", "folder_images", "save_tensor_image", "translate_folder"]
