"""Samplers: the official rate rule, centred/official test clips, segments, cover, short videos."""

from __future__ import annotations

import pytest
import torch

from timesformer.data.sampling import (
    clip_span,
    cover_clips,
    segment_indices,
    test_clip_indices,
    test_views,
    train_clip_indices,
)


def test_clip_span_rescales_to_the_video_fps():
    assert clip_span(8, 32, 30.0) == 256
    assert clip_span(8, 32, 60.0) == 512  # twice the frames at 60 fps: same seconds
    assert clip_span(8, 32, 15.0) == 128
    with pytest.raises(ValueError):
        clip_span(0, 32, 30.0)
    with pytest.raises(ValueError):
        clip_span(8, 32, 0.0)


def test_train_clip_spacing_and_range():
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(200):
        idx = train_clip_indices(300, 8, 32, 30.0, generator=g)
        assert len(idx) == 8 and idx == sorted(idx)
        assert 0 <= idx[0] and idx[-1] <= 299
        assert idx[-1] - idx[0] in (254, 255, 256)  # span 256 frames: first to last ~255
        assert all(30 <= b - a <= 38 for a, b in zip(idx, idx[1:]))  # every ~36.4 frames
        starts.add(idx[0])
    assert min(starts) <= 3 and max(starts) >= 40  # start uniform in [0, 300 - 256]


def test_train_clip_is_seeded():
    a = train_clip_indices(1000, 8, 4, 30.0, generator=torch.Generator().manual_seed(3))
    b = train_clip_indices(1000, 8, 4, 30.0, generator=torch.Generator().manual_seed(3))
    c = train_clip_indices(1000, 8, 4, 30.0, generator=torch.Generator().manual_seed(4))
    assert a == b and a != c


def test_train_clip_at_60_fps_spans_the_same_time():
    idx = train_clip_indices(3000, 8, 8, 60.0, generator=torch.Generator().manual_seed(0))
    assert 120 <= idx[-1] - idx[0] <= 128  # 8 * 8 frames at 30 fps = 2.13 s = 128 frames at 60


def test_test_clip_centred_and_official():
    centred = test_clip_indices(300, 8, 32, 30.0)
    official = test_clip_indices(300, 8, 32, 30.0, official=True)
    assert official[0] == 0  # the official code starts a single clip at frame 0
    assert centred[0] == 22 and 299 - centred[-1] in (21, 22)  # centred: (300 - 256) / 2
    assert [b - a for a, b in zip(centred, centred[1:])] == [
        b - a for a, b in zip(official, official[1:])
    ] or max(abs(x - y - 22) for x, y in zip(centred, official)) <= 1


def test_test_clips_evenly_spaced():
    starts = [test_clip_indices(1000, 8, 8, 30.0, clip_index=k, num_clips=4)[0] for k in range(4)]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert max(gaps) - min(gaps) <= 1 and gaps[0] == pytest.approx((1000 - 64) / 4, abs=1)
    assert starts[0] == pytest.approx((1000 - 64) / 8, abs=1)
    with pytest.raises(ValueError):
        test_clip_indices(100, 8, 8, 30.0, clip_index=4, num_clips=4)


@pytest.mark.parametrize("video_frames", [1, 2, 5, 40])
def test_short_videos_repeat_the_last_frame(video_frames):
    g = torch.Generator().manual_seed(0)
    for idx in (
        train_clip_indices(video_frames, 8, 32, 30.0, generator=g),
        test_clip_indices(video_frames, 8, 32, 30.0),
        segment_indices(video_frames, 8, train=True, generator=g),
        segment_indices(video_frames, 8, train=False),
        *cover_clips(video_frames, 8, 32, 30.0),
    ):
        assert len(idx) == 8
        assert all(0 <= i < video_frames for i in idx)
        assert idx == sorted(idx)
    rate = test_clip_indices(video_frames, 8, 32, 30.0)
    assert rate[0] == 0 and rate[-1] == video_frames - 1  # starts at 0, pads with the last


def test_segments_official_boundaries_and_views():
    # 49 frames, 8 segments of 6: middle frames
    mid = segment_indices(49, 8, train=False)
    assert mid == [3, 9, 15, 21, 27, 33, 39, 45]
    v0 = segment_indices(49, 8, train=False, view=0, num_views=2)
    v1 = segment_indices(49, 8, train=False, view=1, num_views=2)
    assert v0 != v1  # different temporal views really differ
    assert all(a < b for a, b in zip(v0, v1))
    g = torch.Generator().manual_seed(0)
    seen = [set() for _ in range(8)]
    for _ in range(100):
        for s, i in enumerate(segment_indices(49, 8, train=True, generator=g)):
            assert 6 * s <= i <= 6 * (s + 1)
            seen[s].add(i)
    assert all(len(x) >= 5 for x in seen)  # random within each segment


def test_test_views_grid():
    views = test_views(300, 8, 8, 30.0, num_clips=2, num_crops=3)
    assert [(v.clip, v.crop, v.view) for v in views] == [
        (k, c, k * 3 + c) for k in range(2) for c in range(3)
    ]
    assert views[0].indices == views[2].indices != views[3].indices
    seg = test_views(300, 8, 8, 30.0, num_clips=2, num_crops=1, sampler="segments")
    assert seg[0].indices != seg[1].indices
    with pytest.raises(ValueError, match="sampler"):
        test_views(300, 8, 8, 30.0, sampler="nope")


def test_cover_clips_tile_the_video():
    clips = cover_clips(100, 8, 2, 30.0)  # span 16: 7 clips, the last partial
    assert len(clips) == 7
    assert [c[0] for c in clips] == [0, 16, 32, 48, 64, 80, 96]
    for a, b in zip(clips, clips[1:]):
        assert a[-1] < b[0]  # non-overlapping, in order
    assert clips[-1][-1] == 99 and clips[-1].count(99) >= 5  # repeats the last frame
    assert len(cover_clips(96, 8, 2, 30.0)) == 6  # exact multiple: no extra clip
    assert cover_clips(3, 8, 2, 30.0) == [[0, 2, 2, 2, 2, 2, 2, 2]]  # official spread, clamped


def test_native_rate_when_target_fps_is_none():
    # None: the sampling rate counts the video's own frames, whatever its fps
    assert clip_span(8, 4, fps=60.0, target_fps=None) == 32
    assert clip_span(8, 4, fps=60.0, target_fps=30.0) == 64
    g = torch.Generator().manual_seed(0)
    idx = train_clip_indices(1000, 8, 4, 60.0, target_fps=None, generator=g)
    assert len(idx) == 8 and 28 <= idx[-1] - idx[0] <= 32  # a 32-frame span, not 64
