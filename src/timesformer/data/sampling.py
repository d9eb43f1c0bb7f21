"""Clip samplers: which frame indices (and which spatial crop) make each training or test view.

All samplers take the video's frame count and return indices in ``[0, video_frames)``; a video
shorter than a clip repeats its last frame, so no sampler fails on a short video. Random choices
come from an explicit ``torch.Generator`` so runs are reproducible.

The rate rule is the official one: a clip of ``num_frames`` at ``sampling_rate`` spans
``sampling_rate * num_frames`` frames of a ``target_fps`` (30) video, i.e.
``sampling_rate * num_frames * fps / target_fps`` frames of this video, with the frames spread
evenly over the span.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class View:
    """One test view of a video: frame indices, temporal clip id, spatial crop id, view id.

    ``view == clip * num_crops + crop``.
    """

    indices: tuple[int, ...]
    clip: int
    crop: int
    view: int


def clip_span(num_frames: int, sampling_rate: int, fps: float, target_fps: float = 30.0) -> float:
    """Frames of this video spanned by one clip: ``sampling_rate * num_frames * fps / target_fps``."""
    raise NotImplementedError


def train_clip_indices(
    video_frames: int,
    num_frames: int,
    sampling_rate: int,
    fps: float,
    *,
    target_fps: float = 30.0,
    generator: torch.Generator | None = None,
) -> list[int]:
    """A random clip: uniform start within the video, ``num_frames`` evenly over the span."""
    raise NotImplementedError


def test_clip_indices(
    video_frames: int,
    num_frames: int,
    sampling_rate: int,
    fps: float,
    *,
    clip_index: int = 0,
    num_clips: int = 1,
    target_fps: float = 30.0,
    official: bool = False,
) -> list[int]:
    """Temporal clip ``clip_index`` of ``num_clips`` evenly spaced over the video.

    Default: clip k starts at ``delta * (k + 0.5) / num_clips`` (``delta`` = frames left over by
    the span), so a single clip is centred. ``official=True`` reproduces the official code,
    ``delta * k / num_clips`` (a single clip starts at frame 0).
    """
    raise NotImplementedError


def segment_indices(
    video_frames: int,
    num_frames: int,
    *,
    train: bool,
    generator: torch.Generator | None = None,
    view: int = 0,
    num_views: int = 1,
) -> list[int]:
    """SSv2-style sampling: ``num_frames`` equal segments, one frame from each.

    Training: a random frame per segment. Test: view ``view`` of ``num_views`` takes the frame at
    fraction ``(view + 0.5) / num_views`` of each segment (one view: the middle), so different
    temporal views really differ (the official code returns identical views).
    """
    raise NotImplementedError


def test_views(
    video_frames: int,
    num_frames: int,
    sampling_rate: int,
    fps: float,
    *,
    num_clips: int = 1,
    num_crops: int = 3,
    sampler: str = "rate",
    target_fps: float = 30.0,
    official: bool = False,
) -> list[View]:
    """All ``num_clips x num_crops`` test views of a video (``sampler``: "rate" or "segments")."""
    raise NotImplementedError


def cover_clips(
    video_frames: int,
    num_frames: int,
    sampling_rate: int,
    fps: float,
    *,
    target_fps: float = 30.0,
) -> list[list[int]]:
    """Consecutive non-overlapping clips covering the whole video (long-video inference).

    Clip j spans frames ``[j * span, (j + 1) * span)``; the last, partial clip repeats the
    video's last frame. A video shorter than one span gives one clip.
    """
    raise NotImplementedError
