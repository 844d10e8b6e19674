"""Where a run's tensors live: crop sizes the generator takes, memory layouts, batches on the device."""

from __future__ import annotations

from typing import Any

import torch

from cyclegan.config import TrainConfig


def check_crop_size(config: TrainConfig, multiple: int) -> None:
    """A crop the generator cannot take fails here, before any data is read or weights built."""
    data = config.data
    if data.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop") and data.crop_size % multiple:
        lower, upper = data.crop_size // multiple * multiple, (data.crop_size // multiple + 1) * multiple
        raise ValueError(
            f"--crop_size {data.crop_size} is not a multiple of {multiple}, which --netG {config.model.netG} needs; "
            f"use {lower or upper} or {upper}"
        )


def channels_last_weights(device: torch.device) -> bool:
    """Whether ``--channels_last`` converts the weights too, or only the batches.

    The weights too on CUDA (cuDNN's NHWC kernels). On a CPU only the batches: oneDNN takes NHWC
    activations with plain weights, the fused Adam kernel copied channels-last weights every step
    (measured slower), and with ``--compile`` torch 2.14's CPU inductor computed wrong gradients
    for conv → InstanceNorm → conv with channels-last weights at batch 1 (off by more than their
    size; tests/test_train.py checks ours against eager).
    """
    return device.type == "cuda"


def compiled_channels_last_is_safe(device: torch.device) -> bool:
    """Whether ``--compile`` may take channels-last batches on ``device``: not on a CPU.

    torch 2.14's CPU inductor turned the first step's losses into NaN with channels-last batches on
    AVX2 kernels (eager, and compiled with contiguous batches, were fine; tests/test_train.py compares
    compiled against eager gradients), and a compiled bf16 step at batch 4 on AVX-512 ones aborted
    with heap corruption (possibly a stale inductor cache; not isolated).
    """
    return device.type != "cpu"


def batch_to_device(batch: dict[str, Any], config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """A loader batch on ``device`` (channels-last with ``--channels_last``), A and B swapped for BtoA."""
    moved = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if config.runtime.channels_last:
                value = value.contiguous(memory_format=torch.channels_last)
        moved[key] = value
    if config.data.direction == "BtoA":  # the folders stay A / B; the roles swap (reference)
        moved["A"], moved["B"] = moved["B"], moved["A"]
    return moved
