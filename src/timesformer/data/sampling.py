"""Clip samplers: which frame indices (and which spatial crop) make each training or test view.

All samplers take the video's frame count and return indices in ``[0, video_frames)``; a video
shorter than a clip repeats its last frame, so no sampler fails on a short video. Random choices
come from an explicit ``torch.Generator`` so runs are reproducible.

The rate rule is the official one: a clip of ``num_frames`` at ``sampling_rate`` spans
``sampling_rate * num_frames`` frames of a ``target_fps`` (30) video, i.e.
``sampling_rate * num_frames * fps / target_fps`` frames of this video, with the frames spread
evenly over the span. The arithmetic is exact (``fractions.Fraction``): a rate given as a float
is read as the nearest fraction with a denominator up to 10**6 (29.999999999999996 -> 30,
29.97002997 -> 30000/1001), so integer positions stay integers instead of truncating one
frame low.

Test protocols (``protocol=``), both with clip ``k`` of ``K``, ``delta = max(frames - span, 0)``:

- ``"official"``: as the official decoder places clips in the files it reads selectively (mp4,
  e.g. Kinetics): the clip starts at the first frame at or after ``delta * k / K``, i.e. frame
  ``ceil(delta * k / K)``, and takes frames ``start + floor(i * (span - 1) / (num_frames - 1))``
  (a single clip starts at frame 0).
- ``"centred"``: the clip starts at ``delta * (k + 0.5) / K`` (a single clip is centred) and takes
  frames ``floor(start + i * (span - 1) / (num_frames - 1))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

TEST_PROTOCOLS: tuple[str, ...] = ("official", "centred")

Rate = float | int | Fraction


def exact_rate(value: Rate) -> Fraction:
    """A frame rate as an exact fraction: ints and Fractions as they are, a float as the nearest
    fraction with a denominator up to 10**6 (undoes float noise such as 29.999999999999996)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    return Fraction(float(value)).limit_denominator(1_000_000)


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is a known test protocol, else a ValueError naming the choices."""
    if protocol not in TEST_PROTOCOLS:
        raise ValueError(f"unknown test protocol {protocol!r}; expected 'official' or 'centred'")
    return protocol


@dataclass(frozen=True)
class View:
    """One test view of a video: frame indices, temporal clip id, spatial crop id, view id.

    ``view == clip * num_crops + crop``.
    """

    indices: tuple[int, ...]
    clip: int
    crop: int
    view: int


def exact_span(
    num_frames: int, sampling_rate: int, fps: Rate, target_fps: Rate | None = 30
) -> Fraction:
    """Frames of this video spanned by one clip, exactly: ``sampling_rate * num_frames * fps /
    target_fps`` as a Fraction (``target_fps=None``: the rate counts the video's own frames)."""
    if num_frames < 1 or sampling_rate < 1:
        raise ValueError(
            f"num_frames and sampling_rate must be >= 1, got {num_frames} and {sampling_rate}"
        )
    f = exact_rate(fps)
    t = f if target_fps is None else exact_rate(target_fps)
    if f <= 0 or t <= 0:
        raise ValueError(f"fps and target_fps must be > 0, got {fps} and {target_fps}")
    return sampling_rate * num_frames * f / t


def clip_span(
    num_frames: int, sampling_rate: int, fps: Rate, target_fps: Rate | None = 30.0
) -> float:
    """Frames of this video spanned by one clip: ``sampling_rate * num_frames * fps / target_fps``.

    ``target_fps=None`` counts the sampling rate in the video's own frames (no fps rescaling).
    A float; :func:`exact_span` gives the same as a Fraction.
    """
    return float(exact_span(num_frames, sampling_rate, fps, target_fps))


def _spread(start: Fraction, span: Fraction, num_frames: int, video_frames: int) -> list[int]:
    """``num_frames`` indices evenly over ``[start, start + span - 1]``, each position rounded
    down (exact fractions) and clamped to the video (frames past the end repeat the last one),
    as the official temporal sampling does."""
    step = max(span - 1, Fraction(0)) / (num_frames - 1) if num_frames > 1 else Fraction(0)
    last = video_frames - 1
    return [min(max(math.floor(start + i * step), 0), last) for i in range(num_frames)]


def _official_spread(
    start: Fraction, span: Fraction, num_frames: int, video_frames: int
) -> list[int]:
    """The official selective decode: the first frame at or after ``start``, then offsets
    ``floor(i * (span - 1) / (num_frames - 1))`` from it, clamped to the video."""
    first = math.ceil(start)
    step = max(span - 1, Fraction(0)) / (num_frames - 1) if num_frames > 1 else Fraction(0)
    last = video_frames - 1
    return [min(first + math.floor(i * step), last) for i in range(num_frames)]


def _check_video(video_frames: int) -> None:
    if video_frames < 1:
        raise ValueError(f"video_frames must be >= 1, got {video_frames}")


def train_clip_indices(
    video_frames: int,
    num_frames: int,
    sampling_rate: int,
    fps: Rate,
    *,
    target_fps: Rate | None = 30.0,
    generator: torch.Generator | None = None,
) -> list[int]:
    """A random clip: uniform start in ``[0, frames - span]``, ``num_frames`` evenly over the
    span (the official random temporal jitter)."""
    _check_video(video_frames)
    span = exact_span(num_frames, sampling_rate, fps, target_fps)
    delta = max(video_frames - span, Fraction(0))
    u = torch.rand((), generator=generator, dtype=torch.float64).item()
    return _spread(Fraction(u) * delta, span, num_frames, video_frames)


def test_clip_indices(
    video_frames: int,
    num_frames: int,
    sampling_rate: int,
    fps: Rate,
    *,
    clip_index: int = 0,
    num_clips: int = 1,
    target_fps: Rate | None = 30.0,
    official: bool = False,
    protocol: str | None = None,
) -> list[int]:
    """Temporal clip ``clip_index`` of ``num_clips`` evenly spaced over the video.

    ``protocol`` "centred" (the default): clip k starts at ``delta * (k + 0.5) / num_clips``
    (``delta`` = frames left over by the span), so a single clip is centred. "official": the
    official placement, the first frame at or after ``delta * k / num_clips`` (a single clip
    starts at frame 0); see the module docstring. ``official=True`` is the older spelling of
    ``protocol="official"``.
    """
    _check_video(video_frames)
    protocol = check_protocol(protocol or ("official" if official else "centred"))
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"clip_index must be in [0, {num_clips}), got {clip_index}")
    span = exact_span(num_frames, sampling_rate, fps, target_fps)
    delta = max(video_frames - span, Fraction(0))
    if protocol == "official":
        return _official_spread(delta * clip_index / num_clips, span, num_frames, video_frames)
    start = delta * (2 * clip_index + 1) / (2 * num_clips)
    return _spread(start, span, num_frames, video_frames)


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

    Segment s covers ``[round(s * L), round((s + 1) * L)]`` with ``L = (video_frames - 1) /
    num_frames`` (the official boundaries). Training: a random frame per segment. Test: view
    ``view`` of ``num_views`` takes the frame at fraction ``(view + 0.5) / num_views`` of each
    segment (one view: the middle), so different temporal views really differ (the official
    code returns identical views). Short videos give repeated frames, never an error.
    """
    _check_video(video_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not 0 <= view < num_views:
        raise ValueError(f"view must be in [0, {num_views}), got {view}")
    seg = (video_frames - 1) / num_frames
    out = []
    for s in range(num_frames):
        lo, hi = int(round(seg * s)), int(round(seg * (s + 1)))
        if train:
            i = lo + int(torch.randint(hi - lo + 1, (), generator=generator))
        else:
            i = lo + int((hi - lo) * (view + 0.5) / num_views)
        out.append(min(max(i, 0), video_frames - 1))
    return out


def test_views(
    video_frames: int,
    num_frames: int,
    sampling_rate: int,
    fps: Rate,
    *,
    num_clips: int = 1,
    num_crops: int = 3,
    sampler: str = "rate",
    target_fps: Rate | None = 30.0,
    official: bool = False,
    protocol: str | None = None,
) -> list[View]:
    """All ``num_clips x num_crops`` test views of a video (``sampler``: "rate" or "segments").

    ``protocol``: "centred" (default) or "official" temporal placement of the rate clips (see
    the module docstring; ``official=True`` means "official"). Segment views do not depend on it.
    """
    protocol = check_protocol(protocol or ("official" if official else "centred"))
    if num_clips < 1 or num_crops < 1:
        raise ValueError(f"num_clips and num_crops must be >= 1, got {num_clips}, {num_crops}")
    views = []
    for k in range(num_clips):
        if sampler == "rate":
            idx = test_clip_indices(
                video_frames, num_frames, sampling_rate, fps, clip_index=k,
                num_clips=num_clips, target_fps=target_fps, protocol=protocol,
            )  # fmt: skip
        elif sampler == "segments":
            idx = segment_indices(
                video_frames, num_frames, train=False, view=k, num_views=num_clips
            )
        else:
            raise ValueError(f"unknown sampler {sampler!r}; expected 'rate' or 'segments'")
        for c in range(num_crops):
            views.append(View(tuple(idx), k, c, k * num_crops + c))
    return views


def cover_clips(
    video_frames: int,
    num_frames: int,
    sampling_rate: int,
    fps: Rate,
    *,
    target_fps: Rate | None = 30.0,
    stride: Rate | None = None,
) -> list[list[int]]:
    """Consecutive non-overlapping clips covering the whole video (long-video inference).

    Clip j spans frames ``[j * span, (j + 1) * span)``; the last, partial clip repeats the
    video's last frame. A video shorter than one span gives one clip. ``stride`` (in this
    video's frames, default ``span``) starts clip j at ``j * stride`` instead: overlapping
    windows when smaller than the span, until a clip reaches the video's end.
    """
    _check_video(video_frames)
    # at least one frame per clip: a video of a few frames hours apart (a rate far below the
    # target's) would otherwise give thousands of clips of the same frames
    span = max(exact_span(num_frames, sampling_rate, fps, target_fps), Fraction(1))
    if stride is None:  # back to back
        count = max(1, math.ceil(video_frames / span))
        return [_spread(j * span, span, num_frames, video_frames) for j in range(count)]
    step = exact_rate(stride)
    if step <= 0:
        raise ValueError(f"stride must be > 0 frames, got {stride}")
    count = max(1, math.ceil((video_frames - span) / step) + 1)  # until a clip reaches the end
    return [_spread(j * step, span, num_frames, video_frames) for j in range(count)]


# Public names that start with "test_": keep pytest from collecting them where they are imported.
test_clip_indices.__test__ = False  # type: ignore[attr-defined]
test_views.__test__ = False  # type: ignore[attr-defined]
