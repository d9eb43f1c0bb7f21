"""The order and shape of training data: the resumable epoch sampler, worker seeding, batches.

The sample order is a function of (seed, epoch) (a DistributedSampler reseeded per epoch) and
can start mid-epoch, so a resumed run sees what the interrupted one would have seen.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler


class EpochSampler(DistributedSampler):
    """DistributedSampler (shuffled per epoch by seed + epoch) that can start mid-epoch.

    `skip` drops this rank's first samples of the epoch: a resume from a checkpoint written
    mid-epoch continues where the interrupted run stopped, with the same order.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.skip :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


def seed_worker(worker_id: int) -> None:
    """DataLoader workers: NumPy and `random` follow the worker's torch seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def unpack_batch(batch: Any) -> tuple[Tensor, Tensor, int, Tensor | None]:
    """(video, label, substituted bad files, error flags or None) from a dict or tuple batch."""
    if isinstance(batch, dict):
        failures = batch.get("failures")
        n_fail = int(torch.as_tensor(failures).sum()) if failures is not None else 0
        err = batch.get("error")
        bad = None
        if err is not None and not isinstance(err, Tensor):
            bad = torch.tensor([bool(e) for e in err])
        return batch["video"], torch.as_tensor(batch["label"]), n_fail, bad
    video, label = batch[0], batch[1]
    return video, torch.as_tensor(label), 0, None


def reported_paths(batch: Any) -> list[str]:
    """The bad files a batch says were logged: substituted in training (`skipped`, one path per
    line) or failed in evaluation (`path` where `error` is set)."""
    if not isinstance(batch, dict):
        return []
    out = [p for s in batch.get("skipped") or () for p in str(s).split("\n") if p]
    errors, paths = batch.get("error"), batch.get("path")
    if errors is not None and paths is not None and not isinstance(errors, Tensor):
        out += [str(p) for p, e in zip(paths, errors, strict=False) if e]
    return out


def mark_reported(loader: Any, batch: Any) -> None:
    """Hand a batch's logged bad files back to the loader's dataset (`mark_reported`), so that
    the workers of later epochs do not log them again."""
    mark = getattr(getattr(loader, "dataset", None), "mark_reported", None)
    if mark is not None:
        paths = reported_paths(batch)
        if paths:
            mark(paths)


def timed_batches(loader: Iterable[Any]) -> Iterator[tuple[Any, float]]:
    """(batch, seconds spent waiting for it) for each batch of `loader`: the time the training
    loop stood still for data (decode, augmentation, or workers not keeping up)."""
    it = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            return
        yield batch, time.perf_counter() - t0
