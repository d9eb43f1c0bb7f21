"""Exact frame rates (Fraction) and index sets that follow the rate rule computed exactly."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from _video_helpers import decode_index, index_frames

from timesformer.data.sampling import (
    exact_rate,
    exact_span,
    test_clip_indices,
    train_clip_indices,
)
from timesformer.data.synthetic import write_video
from timesformer.data.video import VideoReader

NTSC = Fraction(30000, 1001)
FRAMES = 150
# (rate, file name, write options): B-frames, other containers, an odd-margin frame size
CASES = [
    (NTSC, "ntsc.mp4", dict(codec="h264", gop=24, bframes=3)),
    (NTSC, "ntsc.mkv", dict(codec="h264", gop=24, bframes=2)),
    (Fraction(30), "thirty.mp4", dict(codec="h264", gop=30, bframes=3)),
    (Fraction(30), "thirty.webm", dict(codec="vp9", gop=30)),
    (Fraction(25), "pal.mp4", dict(codec="h264", gop=25, bframes=3)),
    (Fraction(25), "pal.avi", dict(codec="mpeg4", gop=25, bframes=2)),
]


def rule(frames: int, n: int, rate: int, fps: Fraction, start: Fraction) -> list[int]:
    """The official rate rule, written out with exact fractions: n positions evenly over
    [start, start + span - 1], span = rate * n * fps / 30, each rounded down, clamped."""
    span = Fraction(rate * n) * fps / 30
    return [min(math.floor(start + Fraction(i, n - 1) * (span - 1)), frames - 1) for i in range(n)]


@pytest.fixture(scope="module")
def rate_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rates")
    frames = index_frames(FRAMES, 48, 80)  # 80 x 48: odd margins for a 33-pixel crop
    out = {}
    for fps, name, opts in CASES:
        write_video(folder / name, frames, float(fps), **opts)
        out[name] = (folder / name, fps)
    return out


@pytest.mark.parametrize("name", [c[1] for c in CASES])
def test_reader_rate_is_the_exact_stated_rate(rate_videos, name):
    path, fps = rate_videos[name]
    with VideoReader(path) as reader:
        assert isinstance(reader.frame_rate, Fraction)
        assert reader.frame_rate == fps  # 30000/1001, 30, 25: not 29.999999999999996
        assert reader.fps == float(fps)
        for rate in (4, 8, 16):
            idx = test_clip_indices(FRAMES, 8, rate, reader.frame_rate, protocol="official")
            assert idx == rule(FRAMES, 8, rate, fps, Fraction(0))
            # and the frames the reader returns are exactly those
            assert decode_index(reader.get_frames(idx)) == idx


def test_float_noise_does_not_drop_a_frame():
    # the reported case: a 30 fps file measured as 29.999999999999996 fps, rate 8
    noisy = 29.999999999999996
    assert exact_rate(noisy) == 30 and exact_rate(float(NTSC)) == NTSC
    want = [0, 9, 18, 27, 36, 45, 54, 63]
    assert test_clip_indices(300, 8, 8, noisy, protocol="official") == want
    assert test_clip_indices(300, 8, 8, Fraction(30), protocol="official") == want
    assert exact_span(8, 8, noisy) == 64 and exact_span(8, 8, NTSC) == Fraction(64000, 1001)


@pytest.mark.parametrize("fps", [NTSC, Fraction(30), Fraction(25), Fraction(24000, 1001)])
def test_all_samplers_follow_the_exact_rule(fps):
    for frames in (100, 301, 1234):
        for k_clips in (1, 2, 3, 5):
            span = Fraction(64) * fps / 30
            delta = max(frames - span, Fraction(0))
            for k in range(k_clips):
                centred = test_clip_indices(frames, 8, 8, fps, clip_index=k, num_clips=k_clips)
                assert centred == rule(frames, 8, 8, fps, delta * (2 * k + 1) / (2 * k_clips))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(20):
        got = train_clip_indices(900, 8, 8, fps, generator=g1)
        u = torch.rand((), generator=g2, dtype=torch.float64).item()
        assert got == rule(900, 8, 8, fps, Fraction(u) * (900 - Fraction(64) * fps / 30))
