"""The one conversion from a preprocessing contract to the samplers and transforms.

`contract` is any object with the fields of `models.preprocess.Preprocess` (num_frames,
sampling_rate, target_fps, sampler, short_side, crop_size, mean, std, channel_order,
test_views, test_protocol); the data layer reads it by attribute and imports nothing above it.
predict, eval, explain, extract and serve all cut their clips through these two functions, so
the paths cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from .sampling import Rate, View, test_views
from .transforms import TestTransform


def contract_views(
    contract: Any,
    video_frames: int,
    fps: Rate,
    *,
    num_clips: int | None = None,
    num_crops: int | None = None,
    protocol: str | None = None,
) -> list[View]:
    """The K x S test views of a video as `contract` cuts them (K, S default: its test_views;
    `protocol` default: its test_protocol)."""
    k, s = contract.test_views
    return test_views(
        video_frames, contract.num_frames, contract.sampling_rate, fps,
        num_clips=num_clips or k, num_crops=num_crops or s, sampler=contract.sampler,
        target_fps=contract.target_fps, protocol=protocol or contract.test_protocol,
    )  # fmt: skip


def contract_transform(
    contract: Any, num_crops: int | None = None, *, protocol: str | None = None
) -> TestTransform:
    """The test transform of `contract`: resize (short side per protocol), crop(s), channel
    order and normalisation."""
    return TestTransform(
        crop_size=contract.crop_size,
        num_crops=num_crops or contract.test_views[1],
        mean=contract.mean,
        std=contract.std,
        channel_order=contract.channel_order,
        protocol=protocol or contract.test_protocol,
        train_short_side=contract.short_side,
    )
