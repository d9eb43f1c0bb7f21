"""Test helper: write a small H.264 mp4 that carries a display rotation (phone-style)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest


def write_rotated(path: Path, frames: np.ndarray, clockwise: int, fps: int = 30) -> Path:
    """Encode uint8 (T, H, W, 3) frames as stored; the display matrix says turn ``clockwise``."""
    t, h, w, _ = frames.shape
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if not hasattr(s, "set_display_rotation"):
            pytest.skip(f"PyAV {av.__version__} cannot write a display matrix")
        s.set_display_rotation(-clockwise)  # PyAV counts counter-clockwise
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def halves(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames whose left half is red and right half blue: the turn is visible after scaling."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[:, :, : width // 2, 0] = 230
    frames[:, :, width // 2 :, 2] = 230
    return frames
