"""Distributed training on PyTorch's own engine, set up from the environment ``torchrun`` provides.

``torchrun --nproc_per_node N -m cyclegan train ...`` (and ``--nnodes / --rdzv_*`` across machines)
sets RANK, LOCAL_RANK and WORLD_SIZE; without them everything here is a no-op single process. The
backend is chosen automatically: ``nccl`` for CUDA, ``gloo`` for CPU.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class DistributedContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> DistributedContext:
        """Join the process group torchrun describes; a plain single process when there is none."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, timeout=timedelta(minutes=10))
        context = cls(rank=dist.get_rank(), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                      world_size=dist.get_world_size(), backend=backend)
        log.info("rank %d of %d (%s)", context.rank, context.world_size, backend)
        return context

    def device_for(self, device: torch.device) -> torch.device:
        """Each process of a node drives its own GPU."""
        if device.type == "cuda" and self.enabled:
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    # --- agreement between ranks (each a no-op in a single process) ---------------------------

    def all_true(self, flag: bool, device: torch.device | str = "cpu") -> bool:
        """True only if every rank says True (e.g. every rank's losses are finite)."""
        if not self.enabled:
            return flag
        value = torch.tensor([1 if flag else 0], device=self._comm_device(device))
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    def any_true(self, flag: bool, device: torch.device | str = "cpu") -> bool:
        """True if any rank says True (e.g. one rank got SIGTERM: all stop at the same step)."""
        return not self.all_true(not flag, device)

    def mean(self, values: dict[str, float], device: torch.device | str = "cpu") -> dict[str, float]:
        """Average scalars over ranks, for the progress bar, the loss log and TensorBoard."""
        if not self.enabled or not values:
            return values
        names = sorted(values)
        tensor = torch.tensor([values[n] for n in names], dtype=torch.float64, device=self._comm_device(device))
        dist.all_reduce(tensor)
        tensor /= self.world_size
        return {name: float(v) for name, v in zip(names, tensor.tolist(), strict=True)}

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's object, in rank order (small objects: RNG states, pools)."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def shutdown(self) -> None:
        if self.enabled and dist.is_initialized():
            # Leave together: a rank that tears its connections down while another is still
            # finishing the last collective makes that one abort.
            dist.barrier()
            dist.destroy_process_group()

    def _comm_device(self, device: torch.device | str) -> torch.device:
        return torch.device(device) if self.backend == "nccl" else torch.device("cpu")

    # --- wrapping ----------------------------------------------------------------------------

    def wrapper(self, device: torch.device) -> Callable[[nn.Module], nn.Module]:
        """A function that wraps a module in DistributedDataParallel (identity when not distributed)."""
        if not self.enabled:
            return lambda module: module

        def wrap(module: nn.Module) -> nn.Module:
            device_ids = [device.index] if device.type == "cuda" else None
            return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)

        return wrap


def convert_sync_batchnorm(net: nn.Module, context: DistributedContext, device: torch.device) -> nn.Module:
    """``--norm syncbatch``: BatchNorm → SyncBatchNorm under DDP on CUDA.

    PyTorch's SyncBatchNorm runs on GPUs only; on CPU (gloo) each rank keeps plain BatchNorm, i.e.
    per-rank batch statistics, and we say so.
    """
    if not context.enabled:
        return net
    if device.type != "cuda":
        log.warning("--norm syncbatch: SyncBatchNorm needs CUDA; on CPU each rank uses its own batch statistics")
        return net
    return nn.SyncBatchNorm.convert_sync_batchnorm(net)
