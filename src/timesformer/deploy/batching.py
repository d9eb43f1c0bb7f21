"""Dynamic batching: model calls from concurrent requests share one forward pass.

Each request decodes its video in its own thread and calls the model through a `BatchedModel`;
the call puts its clips on a queue and waits. One worker thread takes what is queued, waits up
to `max_wait_ms` for more (never past `max_batch` clips), runs one forward pass over the
concatenation and hands every caller its own rows back. Decoding thus runs in parallel while
the model sees batches, which is what a CPU or GPU does best with.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..engine.runtime import autocast


@dataclass
class _Job:
    kind: str  # "logits" or "features"
    x: Tensor  # (N, 3, T, H, W)
    future: Future = field(default_factory=Future)


@dataclass
class BatchStats:
    """Counters of what the batcher did (for /v1/model and the docs' measurement)."""

    batches: int = 0
    clips: int = 0
    largest: int = 0

    @property
    def mean_batch(self) -> float:
        return self.clips / self.batches if self.batches else 0.0


class Batcher:
    """A queue of model calls served by one thread in batches of at most `max_batch` clips."""

    def __init__(
        self,
        model: nn.Module,
        *,
        max_batch: int = 8,
        max_wait_ms: float = 10.0,
        device: torch.device | str = "cpu",
        amp: str = "off",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1; got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0; got {max_wait_ms}")
        self.model = model.eval()
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.device = torch.device(device)
        self.amp = amp
        self.stats = BatchStats()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="timesformer-batcher", daemon=True)
        self._thread.start()

    def submit(self, x: Tensor, kind: str = "logits") -> Future:
        """Queue clips (N, 3, T, H, W); the future gives (N, C) logits or (N, D) features."""
        job = _Job(kind, x.detach().cpu())
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, size = [first], first.x.shape[0]
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            left = deadline - time.monotonic()
            try:
                job = (
                    self._queue.get(timeout=max(left, 0)) if left > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            if job.kind != first.kind or size + job.x.shape[0] > self.max_batch:
                self._queue.put(job)  # next round (order among waiters is not promised)
                break
            jobs.append(job)
            size += job.x.shape[0]
        return jobs, False

    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = self._collect(first)
            try:
                out = self._forward(first.kind, torch.cat([j.x for j in jobs]))
            except Exception as e:  # every waiter learns of it; the thread lives on
                for j in jobs:
                    j.future.set_exception(e)
                continue
            start = 0
            for j in jobs:
                n = j.x.shape[0]
                j.future.set_result(out[start : start + n])
                start += n

    @torch.no_grad()
    def _forward(self, kind: str, x: Tensor) -> Tensor:
        self.stats.batches += 1
        self.stats.clips += x.shape[0]
        self.stats.largest = max(self.stats.largest, x.shape[0])
        fn: Callable[[Tensor], Tensor] = (
            self.model.forward_features if kind == "features" else self.model
        )
        with autocast(self.device, self.amp):
            y = fn(x.to(self.device))  # (N, C) or (N, D)
        return y.float().cpu()


class RequestExpired(RuntimeError):
    """A request's model calls after its deadline (the client already got its timeout)."""


class BatchedModel(nn.Module):
    """Looks like the model to the engine's predict functions; forwards go through a Batcher.

    It holds the real model (so `.config`, `.parameters()` and `.preprocess` answer as the
    model's), but its forward queues the clips and blocks until the shared pass has run.
    """

    def __init__(self, batcher: Batcher, deadline: float | None = None) -> None:
        super().__init__()
        self.inner = batcher.model
        self._batcher = batcher
        self.deadline = deadline  # time.monotonic() after which no more clips are queued

    def _check(self) -> None:
        # a request past its timeout has been answered (504): stop spending passes on it
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise RequestExpired("the request's time limit passed; its remaining clips are dropped")

    @property
    def config(self) -> Any:
        return self.inner.config

    @property
    def preprocess(self) -> Any:
        return getattr(self.inner, "preprocess", None)

    def train(self, mode: bool = True) -> BatchedModel:  # the served model stays in eval
        return self

    def forward(self, x: Tensor) -> Tensor:
        self._check()
        return self._batcher.submit(x, "logits").result()

    def forward_features(self, x: Tensor) -> Tensor:
        self._check()
        return self._batcher.submit(x, "features").result()
