"""torchrun / process-group helpers: one place that knows whether we run distributed.

Under `torchrun --nproc_per_node N` the environment holds RANK, WORLD_SIZE and LOCAL_RANK;
`init_distributed` then starts the process group (NCCL on GPUs, gloo on CPU) and picks this
rank's device. Without them everything below degrades to single-process no-ops, so the same
training code runs both ways.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main rank writes files and prints."""
        return self.rank == 0


def pick_device(
    spec: str | torch.device = "auto", local_rank: int = 0, what: str = "train.device"
) -> torch.device:
    """ "auto" -> this rank's GPU when CUDA is available, else the CPU; or an explicit device.

    The one device pick of the package (training, eval, predict, explain); `what` names the
    setting in the error message (e.g. "--device").
    """
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"{what}={spec!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"{what}={spec!r} but CUDA is not available on this machine")
        if dev.index is None:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) without it."""
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", rank))
    return rank, world, local


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Start the process group when launched by torchrun (or reuse one already started).

    Backend: NCCL when this rank uses a GPU, gloo otherwise.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        return DistInfo(rank, world, local, pick_device(device, local))
    rank, world, local = env_world()
    dev = pick_device(device, local)
    if world > 1:
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local, dev)


def cleanup() -> None:
    """Tear the process group down (no-op when none is running)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a list of numbers over all ranks (returned unchanged in a single process)."""
    if not is_dist():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is True on any rank (agree to stop together)."""
    if not is_dist():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order ([obj] in a single process)."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ... of a dataset, in order, without padding.

    For evaluation: every example is seen exactly once over all ranks, so sums reduced across
    ranks give exact counts (DistributedSampler pads with repeats to equal lengths).
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))
