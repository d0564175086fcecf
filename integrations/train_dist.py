"""One process or many (``torchrun --nproc_per_node N``): the same calls either way.

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with more than one
process the group is created here (gloo on the CPU, nccl on GPUs) and each
process takes ``cuda:LOCAL_RANK``. A single process needs no group and all
helpers are no-ops.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistEnv", "setup", "all_sum", "barrier", "teardown"]


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    owns_group: bool  # created here, so destroyed here

    @property
    def main(self) -> bool:
        """Only the main process writes files and prints."""
        return self.rank == 0


def setup(device: str | None = None) -> DistEnv:
    """The process' rank and device; joins torchrun's group if there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    owns = False
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    return DistEnv(rank, world, local_rank, device, owns)


def all_sum(env: DistEnv, values: list[float]) -> list[float]:
    """Element-wise sum over processes (float64)."""
    if env.world == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(env: DistEnv) -> None:
    if env.world > 1:
        dist.barrier()


def teardown(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()
