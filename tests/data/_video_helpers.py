"""Helpers for the data tests: frames that encode their own index, and the codec cases."""

from __future__ import annotations

import numpy as np

BITS = 12  # a 4 x 3 grid of 16 px blocks, one bit each: up to 4096 frames
SIDE = 16


def index_frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """uint8 (count, H, W, 3): frame i shows i in binary as black/white blocks (red, blue
    channels); the green channel varies too so neighbouring frames differ everywhere."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    for i in range(count):
        for b in range(BITS):
            r, c = divmod(b, width // SIDE)
            if (i >> b) & 1:
                frames[i, r * SIDE : (r + 1) * SIDE, c * SIDE : (c + 1) * SIDE, [0, 2]] = 255
        frames[i, ..., 1] = (i * 37) % 200
    return frames


def decode_index(frames) -> list[int]:
    """Inverse of index_frames on decoded (T, H, W, 3) frames (tensor or array)."""
    arr = np.asarray(frames, dtype=np.float32)
    width = arr.shape[2]
    out = []
    for f in arr:
        v = 0
        for b in range(BITS):
            r, c = divmod(b, width // SIDE)
            block = f[r * SIDE + 3 : (r + 1) * SIDE - 3, c * SIDE + 3 : (c + 1) * SIDE - 3, 0]
            if block.mean() > 128:
                v |= 1 << b
        out.append(v)
    return out


# (file name, write_video options): B-frames and sparse keyframes, other codecs/containers
CODEC_CASES = {
    "h264_bframes.mp4": dict(codec="h264", gop=40, bframes=3),
    "h264.mkv": dict(codec="h264", gop=25, bframes=2),
    "mpeg4.avi": dict(codec="mpeg4", gop=30, bframes=2),
    "vp9.webm": dict(codec="vp9", gop=35),
}
NUM_FRAMES = 120
