"""torchrun support: one process per device, DistributedDataParallel over NCCL (GPUs) or gloo (CPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gara_model.device import resolve_device


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Distributed:
    """Reads torchrun's environment; a plain `python -m` run is rank 0 of 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device)
    if world_size == 1:
        return Distributed(0, 1, resolved)
    local_rank = int(os.environ["LOCAL_RANK"])
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), world_size, resolved)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
