"""Mixed precision decided once, in one object the trainer hands to the training step.

``fp32`` runs as is; ``bf16`` autocasts (no scaler needed: bf16 has fp32's exponent range);
``fp16`` autocasts and scales the loss with a GradScaler (CUDA only, where fp16 pays off).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

PRECISIONS = ("fp32", "bf16", "fp16")


class Precision:
    def __init__(self, precision: str, device: torch.device) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("--precision fp16 needs a CUDA device (use bf16 on CPU)")
        self.name = precision
        self.device = device
        self.dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.step(optimizer)

    def update(self) -> None:
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.scaler.load_state_dict(state)
