"""The clip that explain looks at: one test view, as the model sees it and as a person does."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_clip(path: str | Path, settings: Any) -> tuple[Any, Any, list[int], list[float]]:
    """One test clip of `path` as `settings` (a Preprocess) cut it: (model input (3, T, S, S)
    float, display frames (T, S, S, 3) uint8, frame indices, frame times in seconds).

    The clip is the first temporal view and the centre crop of the contract's protocol; the
    display frames are the same pixels before normalisation."""
    from ..data import (
        VideoReader,
        contract_transform,
        contract_views,
        crop_positions,
        short_side_resize,
    )

    with VideoReader(path) as reader:
        fps = float(reader.fps)
        view = contract_views(settings, reader.num_frames, reader.fps, num_clips=1, num_crops=1)[0]
        indices = list(view.indices)
        frames = reader.get_frames(indices)  # (T, H, W, 3) uint8
    transform = contract_transform(settings, 1)
    video = transform(frames, crop_index=0)  # (3, T, S, S)
    # the same pixels for display, before normalisation
    x = short_side_resize(frames.permute(0, 3, 1, 2), transform.resize_to)  # (T, 3, h, w)
    c = transform.crop_size
    top, left = crop_positions(x.shape[2], x.shape[3], c, 1, transform.protocol)[0]
    shown = x[:, :, top : top + c, left : left + c].permute(0, 2, 3, 1).contiguous()
    times = [i / fps for i in indices]
    return video, shown.numpy(), indices, times
