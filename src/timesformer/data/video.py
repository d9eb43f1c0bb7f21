"""Video decoding on PyAV: metadata, exact frames by index or time, streaming clips.

Frame index ``i`` always means the i-th frame in presentation order (sorted by timestamp), so
results are exact for B-frames, sparse keyframes, variable frame rate and containers that do
not state a frame count. Frames are found through a demux-only packet scan (no decoding), then
each needed range is decoded once: seek to the keyframe at or before its first frame, decode
forward, convert to RGB only the frames that are returned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ogv", ".flv", ".3gp", ".wmv",
)  # fmt: skip


class VideoDecodeError(RuntimeError):
    """A video cannot be read: missing, unreadable, truncated, zero frames or no video stream.

    The message names the path and the reason; both are also kept as attributes.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read video {self.path}: {reason}")


class VideoReader:
    """Random access to the frames of one video file (a context manager).

    Attributes: ``num_frames`` (exact, counted by demuxing when needed), ``fps`` (average
    frames per second), ``duration`` (seconds), ``height``, ``width``, ``codec``, ``path``.
    Raises VideoDecodeError on open for a missing file, a file with no video stream or zero frames.
    """

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        raise NotImplementedError

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at ``indices`` as uint8 (T, H, W, 3) RGB, in the order asked (repeats allowed).

        Indices past the end are an IndexError; a decode failure is a VideoDecodeError.
        """
        raise NotImplementedError

    def get_frames_at(self, times: Sequence[float]) -> torch.Tensor:
        """Frames shown at ``times`` (seconds from the start) as uint8 (T, H, W, 3) RGB."""
        raise NotImplementedError

    def iter_clips(self, clips: Sequence[Sequence[int]]) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(clip_position, frames (T, H, W, 3))`` for each clip, decoding forward once.

        Clips are yielded as soon as their last frame is decoded (for clips sorted by start, in
        order); decoded frames are kept only while a pending clip needs them, so memory stays
        bounded by the clips that overlap the decode position (long-video inference).
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release the container."""
        raise NotImplementedError

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_frames(path: str | Path, indices: Sequence[int]) -> torch.Tensor:
    """One-shot helper: ``VideoReader(path).get_frames(indices)`` -> uint8 (T, H, W, 3)."""
    with VideoReader(path) as reader:
        return reader.get_frames(indices)
