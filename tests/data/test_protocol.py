"""Test protocols: official clip placement and crops (ceil-centred) against the official rules,
and the official training draws (scale round(uniform), offsets from [0, margin))."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import pytest
import torch

from timesformer.data.sampling import test_clip_indices, test_views
from timesformer.data.transforms import (
    TestTransform,
    TrainTransform,
    centre_offset,
    crop_positions,
)


def official_selective_decode(frames: int, n: int, rate: int, fps: Fraction, k: int, kk: int):
    """The official test-time decode, simulated on a constant-rate stream whose frame j has
    timestamp j * 512 and whose header states ``frames``: clip start delta * k / K in frames,
    converted to timestamps by truncation, frames decoded from that timestamp through one past
    the clip end, then n frames spread over the clip span of the decoded ones (float32)."""
    ticks = 512
    clip_sz = rate * n / 30 * float(fps)
    delta = max(frames - clip_sz, 0)
    start = delta * k / kk
    end = start + clip_sz - 1
    start_pts, end_pts = int(start * ticks), int(end * ticks)
    decoded = []
    for j in range(frames):
        if j * ticks < start_pts:
            continue
        decoded.append(j)
        if j * ticks > end_pts:
            break
    pos = torch.linspace(0, clip_sz - 1, n).clamp(0, len(decoded) - 1).long()
    return [decoded[i] for i in pos.tolist()]


@pytest.mark.parametrize("fps", [Fraction(30), Fraction(30000, 1001), Fraction(25)])
def test_official_clip_starts_match_the_official_decoder(fps):
    for frames in (90, 250, 301, 1000, 2345):
        for rate in (4, 8, 32):
            for kk in (1, 2, 3, 5, 10):
                for k in range(kk):
                    ours = test_clip_indices(
                        frames, 8, rate, fps, clip_index=k, num_clips=kk, protocol="official"
                    )
                    assert ours == official_selective_decode(frames, 8, rate, fps, k, kk), (
                        frames, rate, kk, k,
                    )  # fmt: skip


def test_official_start_is_the_ceiling_of_the_clip_position():
    # 301 frames, span 64: delta 237; clip 1 of 2 starts at 118.5 -> frame 119 (centred: 177)
    idx = test_clip_indices(301, 8, 8, 30, clip_index=1, num_clips=2, protocol="official")
    assert idx[0] == 119 and idx == [119 + 9 * i for i in range(8)]
    assert test_clip_indices(301, 8, 8, 30, protocol="official")[0] == 0
    assert test_clip_indices(301, 8, 8, 30)[0] == math.floor(Fraction(237, 2))  # centred
    views = test_views(301, 8, 8, 30, num_clips=2, num_crops=3, protocol="official")
    assert views[3].indices[0] == 119 and len(views) == 6
    with pytest.raises(ValueError, match="protocol"):
        test_views(301, 8, 8, 30, protocol="paper")


def test_crop_windows_round_as_the_official_code():
    # odd margins: 80 - 33 = 47, 48 - 33 = 15
    assert centre_offset(80, 33, "official") == 24 and centre_offset(80, 33) == 23
    assert crop_positions(48, 80, 33, 1, "official") == [(8, 24)]
    assert crop_positions(48, 80, 33, 1, "centred") == [(7, 23)]
    assert crop_positions(48, 80, 33, 3, "official") == [(8, 0), (8, 24), (8, 47)]
    assert crop_positions(80, 48, 33, 3, "official") == [(0, 8), (24, 8), (47, 8)]  # portrait
    assert crop_positions(40, 40, 33, 3, "official") == [(4, 0), (4, 4), (4, 7)]  # square


def _coords(t: int, h: int, w: int) -> torch.Tensor:
    x = torch.zeros(t, h, w, 3, dtype=torch.uint8)
    x[..., 0] = torch.arange(w, dtype=torch.uint8).view(1, 1, w)
    x[..., 1] = torch.arange(h, dtype=torch.uint8).view(1, h, 1)
    return x


def _pixels(y: torch.Tensor) -> torch.Tensor:
    return (y * 0.225 + 0.45) * 255  # (3, T, S, S) back to pixel values


def test_official_three_crops_resize_to_the_crop_size():
    frames = _coords(2, 33, 81)  # short side already the crop size: no resize, exact pixels
    t = TestTransform(33, num_crops=3, protocol="official")
    for k, left in enumerate((0, 24, 48)):  # margin 48: centre 24
        assert _pixels(t(frames, k))[0, 0, 0, 0].round() == left
    frames = _coords(2, 33, 80)  # margin 47: official centre 24, centred 23
    assert _pixels(t(frames, 1))[0, 0, 0, 0].round() == 24
    assert _pixels(TestTransform(33, 3)(frames, 1))[0, 0, 0, 0].round() == 23


def test_official_single_crop_resizes_to_train_short_side_then_centre_crops():
    frames = _coords(2, 48, 96)
    t = TestTransform(32, num_crops=1, protocol="official", train_short_side=40)
    assert t.resize_to == 40
    out = t(frames, 0)
    assert out.shape == (3, 2, 32, 32)
    # the reference: float resize of the whole frame to 40 x 80, centre crop at ceil(8/2), (48/2)
    x = frames.permute(0, 3, 1, 2).float()
    ref = torch.nn.functional.interpolate(x, size=(40, 80), mode="bilinear", align_corners=False)
    ref = ref[:, :, 4:36, 24:56] / 255.0
    ref = ((ref - 0.45) / 0.225).permute(1, 0, 2, 3)
    assert torch.allclose(out, ref, atol=1e-5)
    assert TestTransform(224, 1, protocol="official").resize_to == 256  # train_jitter[0]
    assert TestTransform(224, 3, protocol="official").resize_to == 224
    assert TestTransform(224, 1).resize_to == 224  # centred: the crop size
    with pytest.raises(ValueError, match="protocol"):
        TestTransform(224, 1, protocol="tta")


def test_training_scale_is_round_of_a_uniform_draw():
    t = TrainTransform(crop_size=32, scale_range=(40, 44), flip=False)
    counts = Counter(
        t.sample_params(48, 64, torch.Generator().manual_seed(s))["scale"] for s in range(4000)
    )
    assert set(counts) == {40, 41, 42, 43, 44}
    inner = [counts[v] for v in (41, 42, 43)]
    for end in (40, 44):  # expected 500 each (half weight), inner ones 1000
        assert 400 < counts[end] < 600
    assert all(850 < c < 1150 for c in inner)


def test_training_crop_offsets_never_take_the_last_one():
    t = TrainTransform(crop_size=32, scale_range=(40, 40), flip=False)
    tops, lefts = Counter(), Counter()
    for s in range(3000):
        p = t.sample_params(40, 50, torch.Generator().manual_seed(s))  # 40 x 50: margins 8, 18
        tops[p["top"]] += 1
        lefts[p["left"]] += 1
    assert set(tops) == set(range(8)) and set(lefts) == set(range(18))  # [0, margin)
    assert min(tops.values()) > 250  # uniform: 375 expected each
    # no margin: offset 0; margin 1: offset 0 too (the official randint(0, 1))
    t2 = TrainTransform(crop_size=32, scale_range=(32, 32), flip=False)
    for s in range(50):
        g = torch.Generator().manual_seed(s)
        assert t2.sample_params(32, 33, g)["top"] == 0 and t2.sample_params(32, 33, g)["left"] == 0
