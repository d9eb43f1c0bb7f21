"""Display rotation of a video (phone videos): read it, and turn frames upright.

Phones store frames as the sensor saw them and record how to turn them for display: a display
matrix (FFmpeg's DISPLAYMATRIX side data, from the mp4/mov ``tkhd`` matrix) or, in files
written by old tools, a stream tag ``rotate``. FFmpeg's command-line tools apply it
("autorotate"); PyAV does not, so without this module a portrait phone video decodes lying on
its side. ``display_rotation`` gives the clockwise turn in degrees (0, 90, 180 or 270, the
``rotate`` tag's convention) and ``upright`` applies it to decoded frames. Mirroring in the
matrix (rare) is ignored.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def _snap(degrees: float) -> int:
    """The nearest multiple of 90 in [0, 360)."""
    return int(round(degrees / 90.0)) % 4 * 90


def display_rotation(
    source: str | Path | av.container.InputContainer, stream: object = None
) -> int:
    """Clockwise degrees (0, 90, 180, 270) to turn a video's stored frames for display.

    ``source``: a path, or an open input container (then ``stream`` picks the video stream;
    default the first). The stream tag ``rotate`` is read first; otherwise the first frame is
    decoded (one keyframe, a few milliseconds) for its DISPLAYMATRIX, as PyAV exposes the matrix
    on frames only. An open container is left positioned anywhere: seek before decoding more.
    Raises av.FFmpegError/OSError for unreadable files; 0 when the file has no video frame.
    """
    if isinstance(source, (str, Path)):
        with av.open(str(source), metadata_errors="ignore") as container:
            return display_rotation(container)
    container = source
    if stream is None:
        if not container.streams.video:
            return 0
        stream = container.streams.video[0]
    tag = (getattr(stream, "metadata", None) or {}).get("rotate")
    if tag:
        try:
            return _snap(float(tag))
        except ValueError:
            pass
    try:
        container.seek(0)
    except (av.FFmpegError, OSError):
        pass
    try:
        for frame in container.decode(stream):
            return frame_rotation(frame)
    except (av.FFmpegError, OSError):
        return 0
    return 0


def frame_rotation(frame: av.VideoFrame) -> int:
    """Clockwise display rotation of one decoded frame (from its DISPLAYMATRIX side data)."""
    try:
        ccw = frame.rotation  # counter-clockwise degrees in [-180, 180]
    except (AttributeError, av.FFmpegError):
        return 0
    return _snap(-float(ccw or 0))


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Turn an (H, W, C) frame ``rotation`` degrees clockwise; a contiguous copy if turned."""
    turns = _snap(rotation) // 90
    if turns == 0:
        return frame
    return np.ascontiguousarray(np.rot90(frame, -turns))  # (H', W', C), clockwise
