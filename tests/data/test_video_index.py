"""Packet index: reused from memory and from disk, stale after a change, frames still exact."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _video_helpers import NUM_FRAMES, decode_index, index_frames

from timesformer.data import index as packet_index
from timesformer.data.synthetic import write_video
from timesformer.data.video import VideoReader


@pytest.fixture()
def fresh_cache():
    packet_index.MEMORY_CACHE.clear()
    yield packet_index.MEMORY_CACHE
    packet_index.MEMORY_CACHE.clear()


@pytest.mark.parametrize("name", ["h264_bframes.mp4", "vp9.webm", "mpeg4.avi"])
def test_second_open_reuses_the_index_and_stays_exact(index_videos, fresh_cache, name):
    idx = [5, 64, 65, 119, 0]
    with VideoReader(index_videos[name]) as a:
        assert a.index_source == "scan"
        first = a.get_frames(idx)
    with VideoReader(index_videos[name]) as b:
        assert b.index_source == "memory"
        assert (b.num_frames, b.frame_rate, b.duration) == (a.num_frames, a.frame_rate, a.duration)
        assert decode_index(b.get_frames(idx)) == idx
        assert (b.get_frames(idx) == first).all()
    with VideoReader(index_videos[name], cache_index=False) as c:
        assert c.index_source == "scan"


def test_disk_index_is_used_by_a_new_process_and_refreshed_on_change(tmp_path, fresh_cache):
    path = tmp_path / "v.mp4"
    write_video(path, index_frames(40), 30.0, gop=10, bframes=2)
    store = tmp_path / "idx"
    with VideoReader(path, index_dir=store) as r:
        assert r.index_source == "scan"
    assert len(list(store.glob("*.tsidx.npz"))) == 1
    fresh_cache.clear()  # as in another process
    with VideoReader(path, index_dir=store) as r:
        assert r.index_source == "disk" and r.num_frames == 40
        assert decode_index(r.get_frames([0, 17, 39])) == [0, 17, 39]
    # the environment variable chooses the folder too
    fresh_cache.clear()
    os.environ[packet_index.INDEX_DIR_ENV] = str(store)
    try:
        with VideoReader(path) as r:
            assert r.index_source == "disk"
    finally:
        del os.environ[packet_index.INDEX_DIR_ENV]
    # rewrite the file with other content: both copies are stale (size/mtime changed)
    write_video(path, index_frames(NUM_FRAMES), 30.0, gop=10, bframes=2)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with VideoReader(path, index_dir=store) as r:
        assert r.index_source == "scan" and r.num_frames == NUM_FRAMES
    # a damaged index file is ignored, not an error
    for f in store.glob("*.tsidx.npz"):
        f.write_bytes(b"not an index")
    fresh_cache.clear()
    with VideoReader(path, index_dir=store) as r:
        assert r.index_source == "scan" and r.num_frames == NUM_FRAMES


def test_memory_cache_is_bounded_by_frames():
    cache = packet_index.IndexCache(budget_frames=100)
    idx = packet_index.PacketIndex(np.arange(40), np.array([0]), 40)
    for k in range(5):
        cache.put((f"v{k}", 1, 1), idx)
    assert len(cache) == 2  # 80 frames fit, 120 do not
    assert cache.get(("v0", 1, 1)) is None and cache.get(("v4", 1, 1)) is idx
