"""Transforms: shapes, crop positions, flips, normalisation, channel order, determinism."""

from __future__ import annotations

import pytest
import torch

from timesformer.data.transforms import (
    TestTransform,
    TrainTransform,
    crop_positions,
    normalize,
    short_side_resize,
)


def coordinate_frames(t: int, h: int, w: int) -> torch.Tensor:
    """uint8 (T, H, W, 3): red = column, green = row, blue = frame index (all < 256)."""
    x = torch.zeros(t, h, w, 3, dtype=torch.uint8)
    x[..., 0] = torch.arange(w, dtype=torch.uint8).view(1, 1, w)
    x[..., 1] = torch.arange(h, dtype=torch.uint8).view(1, h, 1)
    x[..., 2] = torch.arange(t, dtype=torch.uint8).view(t, 1, 1)
    return x


def test_short_side_resize():
    x = torch.zeros(2, 3, 48, 64, dtype=torch.uint8)
    assert short_side_resize(x, 24).shape == (2, 3, 24, 32)
    assert short_side_resize(x.transpose(2, 3), 24).shape == (2, 3, 32, 24)
    assert short_side_resize(x, 48) is x
    assert short_side_resize(x.float(), 30).dtype == torch.float32


def test_crop_positions():
    assert crop_positions(32, 48, 32, 3) == [(0, 0), (0, 8), (0, 16)]  # left, centre, right
    assert crop_positions(48, 32, 32, 3) == [(0, 0), (8, 0), (16, 0)]  # top, centre, bottom
    assert crop_positions(32, 48, 32, 1) == [(0, 8)]
    with pytest.raises(ValueError):
        crop_positions(32, 48, 40, 1)
    with pytest.raises(ValueError):
        crop_positions(32, 48, 32, 2)


def test_normalize_and_channel_order():
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    x[:, 0], x[:, 2] = 255, 0  # red
    y = normalize(x, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert y.shape == (3, 2, 4, 4)  # (C, T, H, W)
    assert torch.allclose(y[0], torch.ones(1)) and torch.allclose(y[2], -torch.ones(1))
    z = normalize(x, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), channel_order="bgr")
    assert torch.allclose(z[2], torch.ones(1)) and torch.allclose(z[0], -torch.ones(1))
    with pytest.raises(ValueError):
        normalize(x, channel_order="gbr")


def _unnorm(y: torch.Tensor) -> torch.Tensor:
    return (y * 0.225 + 0.45) * 255  # back to pixel values, (3, T, H, W)


def test_test_transform_three_crops_land_left_centre_right():
    frames = coordinate_frames(4, 32, 48)
    t = TestTransform(crop_size=32, num_crops=3)
    all_crops = t(frames)
    assert all_crops.shape == (3, 3, 4, 32, 32)
    for k, left in enumerate((0, 8, 16)):
        crop = t(frames, k)
        assert torch.equal(crop, all_crops[k])
        px = _unnorm(crop)
        assert px[0, 0, 0, 0].round() == left and px[0, 0, 0, -1].round() == left + 31
        assert px[2, :, 0, 0].round().tolist() == [0, 1, 2, 3]  # frame order kept
    assert TestTransform(32, num_crops=1)(frames).shape == (1, 3, 4, 32, 32)
    with pytest.raises(ValueError):
        t(frames, 3)


def test_test_transform_resizes_short_side():
    frames = coordinate_frames(2, 64, 96)  # short side 64 -> 32: width 48
    crop = TestTransform(crop_size=32, num_crops=3)(frames, 2)
    px = _unnorm(crop)
    assert crop.shape == (3, 2, 32, 32)
    assert 60 <= px[0, 0, 0, -1] <= 96  # right crop reaches the right edge


def test_train_transform_shapes_params_and_determinism():
    frames = coordinate_frames(4, 48, 64)
    t = TrainTransform(crop_size=32, scale_range=(40, 48), flip=True)
    out = t(frames, torch.Generator().manual_seed(1))
    assert out.shape == (3, 4, 32, 32) and out.dtype == torch.float32
    again = t(frames, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    params = [t.sample_params(48, 64, torch.Generator().manual_seed(s)) for s in range(60)]
    assert {p["flip"] for p in params} == {True, False}
    assert {p["scale"] for p in params} <= set(range(40, 49)) and len(
        {p["scale"] for p in params}
    ) > 4
    for p in params:
        h, w = p["scale"], int(64 / 48 * p["scale"])
        assert 0 <= p["top"] <= h - 32 and 0 <= p["left"] <= w - 32
    assert not any(TrainTransform(32, (40, 48), flip=False).sample_params(48, 64)["flip"]
                   for _ in range(20))  # fmt: skip


def test_train_transform_crop_and_flip_positions():
    frames = coordinate_frames(2, 48, 64)
    t = TrainTransform(crop_size=32, scale_range=(48, 48))  # no rescale: exact pixels
    px = _unnorm(t.apply(frames, {"scale": 48, "top": 5, "left": 20, "flip": False})).round()
    assert px[0, 0, 0, 0] == 20 and px[1, 0, 0, 0] == 5 and px[0, 0, 0, -1] == 51
    flipped = _unnorm(t.apply(frames, {"scale": 48, "top": 5, "left": 20, "flip": True})).round()
    assert flipped[0, 0, 0, 0] == 51 and flipped[0, 0, 0, -1] == 20
    assert torch.equal(flipped[1], px[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale_range"):
        TrainTransform(crop_size=224, scale_range=(200, 320))
    with pytest.raises(ValueError):
        TestTransform(crop_size=32, num_crops=2)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        TestTransform(32)(torch.zeros(3, 32, 32, dtype=torch.uint8))
