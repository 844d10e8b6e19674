"""Mixed precision decided once, in one object the trainer hands to the training step.

``fp32`` runs as is; ``bf16`` autocasts (no scaler needed: bf16 has fp32's exponent range);
``fp16`` autocasts and scales the loss with a GradScaler (CUDA only, where fp16 pays off).
``auto`` (the default) picks bf16 where the hardware computes it natively — GPUs that support it,
CPUs with AVX-512 BF16 or AMX, where our training iteration and a generator's forward + backward
run faster in bf16 than in fp32 (``benchmarks/README.md``) — and fp32 elsewhere, where bf16 is
emulated and slower.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    # The kernels must be allowed to use it too: ATEN_CPU_CAPABILITY=avx2 (how an AVX2 machine is emulated,
    # or how a user pins the ISA) leaves bf16 emulated even where the flags say the CPU has it.
    if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AVX512_BF16", "AMX"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: assume emulated bf16
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


class Precision:
    def __init__(self, precision: str, device: torch.device) -> None:
        precision = resolve_precision(precision, device)
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
