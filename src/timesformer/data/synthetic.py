"""Labelled synthetic videos rendered to real files (H.264 mp4 by default), for demos and tests.

``motion``: the class is only in how an object moves (left, right, up, down, approach, recede,
rotate_cw, rotate_ccw); shape, colour, background, start position, size and speed are random
and positions wrap around the frame, so no single frame gives the class away. Optional
distractors (objects that only jitter) and static clutter make the labelled object something a
model has to find; its bounding box per frame is saved (``boxes.json``) so an attention map can
be checked against it. ``appearance``: the class is the object's shape x colour, its motion is
random.

Rendering is deterministic from the seed and cached: ``render_dataset`` writes ``info.json`` with
its parameters and reuses the files when called again with the same parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

MOTION_CLASSES: tuple[str, ...] = (
    "left", "right", "up", "down", "approach", "recede", "rotate_cw", "rotate_ccw",
)  # fmt: skip
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
}
APPEARANCE_CLASSES: tuple[str, ...] = tuple(f"{c} {s}" for s in SHAPES for c in COLOURS)


_ENCODERS = {"h264": "libx264", "mpeg4": "mpeg4", "vp9": "libvpx-vp9"}


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float = 30.0,
    *,
    codec: str = "h264",
    crf: int = 18,
    gop: int | None = None,
    bframes: int | None = None,
    pts: Sequence[int] | None = None,
    time_base: tuple[int, int] | None = None,
) -> None:
    """Encode uint8 (T, H, W, 3) RGB frames to ``path`` with PyAV (container from the suffix).

    ``codec``: "h264" (libx264), "mpeg4" or "vp9"; ``crf``: quality (lower is better; for
    mpeg4 it is the fixed quantiser ``qscale``); ``gop``: keyframe interval (exact: scene-cut
    keyframes are off); ``bframes``: max consecutive B-frames (H.264, MPEG-4); ``pts`` +
    ``time_base``: explicit presentation timestamps (variable frame rate). H and W must be even.
    """
    import av

    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 (T, H, W, 3) with T > 0, got {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"frame size must be even for yuv420p, got {w}x{h}")
    if codec not in _ENCODERS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(_ENCODERS)}")
    if pts is not None and len(pts) != t:
        raise ValueError(f"pts has {len(pts)} entries for {t} frames")
    rate = Fraction(fps).limit_denominator(1001)
    tb = Fraction(*time_base) if time_base else None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(_ENCODERS[codec], rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if tb is not None:
            stream.time_base = tb
            stream.codec_context.time_base = tb
        opts: dict[str, str] = {}
        if gop:
            stream.codec_context.gop_size = gop
        if codec == "h264":
            opts.update(crf=str(crf), preset="veryfast")
            if gop:
                opts.update(keyint_min=str(gop), sc_threshold="0")
            if bframes is not None:
                opts["bf"] = str(bframes)
        elif codec == "mpeg4":
            opts.update(qscale=str(max(1, min(31, crf // 6 or 1))))
            stream.codec_context.qscale = max(1, min(31, crf // 6 or 1))
            if bframes is not None:
                opts["bf"] = str(bframes)
        else:  # vp9
            opts.update(crf=str(crf), **{"b": "0", "deadline": "realtime", "cpu-used": "8"})
        stream.options = opts
        for i, arr in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            if pts is not None:
                frame.pts = int(pts[i])
                frame.time_base = tb or Fraction(1, 1) / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def render_motion_clip(
    label: str,
    rng: np.random.Generator,
    *,
    size: int = 32,
    num_frames: int = 8,
    num_objects: int = 1,
    object_size: tuple[float, float] = (0.25, 0.4),
    speed: tuple[float, float] = (0.04, 0.08),
    distractors: int = 0,
    clutter: int = 0,
    noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One motion clip: (frames uint8 (T, size, size, 3), boxes float (T, 4) x0 y0 x1 y1).

    ``object_size`` is a fraction of the frame side; ``speed`` a fraction of the frame side
    per frame (for approach/recede: relative size change per frame; for rotation: turns
    ``speed * 2`` of a half-turn per frame). ``boxes`` are those of the first labelled object.
    """
    raise NotImplementedError


def render_dataset(
    out_dir: str | Path,
    kind: str = "motion",
    *,
    num_train: int = 256,
    num_val: int = 64,
    num_test: int = 64,
    size: int = 32,
    num_frames: int = 8,
    fps: float = 30.0,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    num_classes: int | None = None,
    num_objects: int = 1,
    object_size: tuple[float, float] = (0.25, 0.4),
    speed: tuple[float, float] = (0.04, 0.08),
    distractors: int = 0,
    clutter: int = 0,
    noise: float = 0.0,
    codec: str = "h264",
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Render a dataset to ``out_dir`` and return its info dict.

    Writes ``{train,val,test}/NNNNN.mp4``, list files ``train.csv``/``val.csv``/``test.csv``
    (``relative/path label`` per line, space separated), ``labels.txt`` (one class name per
    line), ``boxes.json`` ({relative path: [[x0, y0, x1, y1] per frame]}) and ``info.json``.
    Info keys: ``out_dir``, ``kind``, ``labels``, ``num_classes``, ``splits`` ({split: list-file
    path}), ``counts``, ``params``, ``cached`` (True when existing files were reused).
    ``classes`` picks classes by name, ``num_classes`` the first k of the kind's classes.
    """
    raise NotImplementedError
