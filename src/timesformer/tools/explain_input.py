"""The clip that explain looks at: one test view, as the model sees it and as a person does."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_clip(path: str | Path, settings: Any) -> tuple[Any, Any, list[int], list[float]]:
    """One test clip of `path` as `settings` cut it: (model input (3, T, S, S) float, display
    frames (T, S, S, 3) uint8, frame indices, frame times in seconds)."""
    from ..data import TestTransform, VideoReader, crop_positions, short_side_resize, test_views

    with VideoReader(path) as reader:
        fps = float(reader.fps)
        target_fps = settings.target_fps if settings.target_fps is not None else fps
        view = test_views(
            reader.num_frames,
            settings.num_frames,
            settings.sampling_rate,
            fps,
            num_clips=1,
            num_crops=1,
            sampler=settings.sampler,
            target_fps=target_fps,
        )[0]
        indices = list(view.indices)
        frames = reader.get_frames(indices)  # (T, H, W, 3) uint8
    transform = TestTransform(
        crop_size=settings.img_size,
        num_crops=1,
        mean=settings.mean,
        std=settings.std,
        channel_order=settings.channel_order,
    )
    video = transform(frames, crop_index=0)  # (3, T, S, S)
    # the same pixels for display, before normalisation
    x = short_side_resize(frames.permute(0, 3, 1, 2), settings.img_size)  # (T, 3, h, w)
    top, left = crop_positions(x.shape[2], x.shape[3], settings.img_size, 1)[0]
    c = settings.img_size
    shown = x[:, :, top : top + c, left : left + c].permute(0, 2, 3, 1).contiguous()
    times = [i / fps for i in indices]
    return video, shown.numpy(), indices, times
