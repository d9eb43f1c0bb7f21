"""`timed_batches`: the seconds the training loop waits for each batch (the data_wait share)."""

from __future__ import annotations

import time

from timesformer.engine.loaders import timed_batches


def test_timed_batches_yields_every_batch_with_its_wait() -> None:
    def slow():  # the second batch takes at least 50 ms to arrive
        yield "a"
        time.sleep(0.05)
        yield "b"

    got = list(timed_batches(slow()))
    assert [b for b, _ in got] == ["a", "b"]
    assert got[1][1] >= 0.05 and all(w >= 0 for _, w in got)
    assert list(timed_batches([])) == []
