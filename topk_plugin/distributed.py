"""One process or many (``torchrun --nproc_per_node N``): the same calls, the same results.

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`setup` joins
its group (gloo on the CPU, nccl on GPUs, each process on ``cuda:LOCAL_RANK``).
The evaluators then split their images into disjoint, strided shards
(:func:`shard`: rank r takes images r, r + N, r + 2N, ...), and :func:`gather`
brings every rank's per-image results to every rank, so each process ends up
with exactly what one process would have computed. Only the main process writes
files and prints. A single process needs no group, and every helper is then a
no-op.

Errors: :func:`gather` is also where failures meet. A rank whose work raised
sends its error instead of results, and every rank raises it, so one corrupt
image stops the whole run with its path instead of leaving the others waiting.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

__all__ = ["DistEnv", "RankError", "local_device", "setup", "current", "shard", "gather", "in_index_order", "all_sum", "barrier",
           "teardown"]

T = TypeVar("T")


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    owns_group: bool = False  # created here, so destroyed here

    @property
    def main(self) -> bool:
        """Only the main process writes files and prints."""
        return self.rank == 0


class RankError(RuntimeError):
    """Another process of the run failed; the message is its error."""


def local_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, else CUDA when there is one, else the CPU; a bare ``cuda`` is ``cuda:LOCAL_RANK``
    (``cuda:0`` in a single process)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def setup(device: str | torch.device | None = None) -> DistEnv:
    """The process' rank and device; joins torchrun's group if there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = local_device(device)
    owns = False
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    return DistEnv(rank, world, local_rank, device, owns)


def current() -> DistEnv:
    """The running group (one process when none is initialised); used by the evaluators."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return DistEnv(0, 1, 0, torch.device("cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
    return DistEnv(dist.get_rank(), dist.get_world_size(), local_rank, device)


class _Shard(Dataset):
    """Items ``rank, rank + world, ...`` of ``base``; items keep their own (base) index."""

    def __init__(self, base: Dataset, rank: int, world: int):
        self.base, self.indices = base, range(rank, len(base), world)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.base[self.indices[i]]


def shard(dataset: Dataset, env: DistEnv) -> Dataset:
    """This rank's disjoint, deterministic part of ``dataset`` (all of it for one process)."""
    return dataset if env.world == 1 else _Shard(dataset, env.rank, env.world)


def gather(env: DistEnv, work: Callable[[], T]) -> list[T]:
    """Every rank's ``work()`` result, in rank order, on every rank; a failure on any rank is raised on all.

    The failing rank raises its own exception; the others raise ``RankError``
    with its message (which names the file for a corrupt image).
    """
    try:
        result, error = work(), None
    except Exception as err:  # noqa: BLE001 - sent to the other ranks, then raised here
        result, error = None, err
    if env.world == 1:
        if error is not None:
            raise error
        return [result]
    outcomes: list = [None] * env.world
    message = None if error is None else f"rank {env.rank}: {type(error).__name__}: {error}"
    dist.all_gather_object(outcomes, (result, message))
    if error is not None:
        raise error
    failures = [m for _, m in outcomes if m is not None]
    if failures:
        raise RankError("; ".join(failures))
    return [r for r, _ in outcomes]


def in_index_order(parts) -> list:
    """The items of ``(index, item)`` lists from every rank, merged in index order (one process' order)."""
    return [item for _, item in sorted((pair for part in parts for pair in part), key=lambda pair: pair[0])]


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
