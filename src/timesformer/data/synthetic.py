"""Labelled synthetic videos rendered to real files (H.264 mp4 by default), for demos and tests.

``motion``: the class is only in how an object moves (left, right, up, down, approach, recede,
rotate_cw, rotate_ccw). Shape, colour, background, start position, size and speed are random and
positions wrap around the frame (``wrap=True``), as does the log-size of approaching/receding
objects within its range, so a single frame says nothing about the class: position, size and
angle have the same distribution at every frame for every class. Options make
the task easier or harder: more labelled objects (all moving the same way), object size, speed,
static clutter, distractor objects that only jitter (a random walk: no steady motion, so no
label), pixel noise, frame size, class subset. The labelled object's bounding box per frame is
saved (``boxes.json``) so an attention map can be checked against it; ``wrap=False`` keeps it
inside the frame so the box is one rectangle.

``appearance``: the class is the object's colour x shape (red/green/blue x square/circle/
triangle), visible in any single frame; its motion is random.

Rendering is numpy drawing (signed-distance shapes with anti-aliased edges) plus PyAV encoding,
deterministic from the seed, and cached: ``render_dataset`` writes ``info.json`` with its
parameters and reuses the files when called again with the same parameters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

MOTION_CLASSES: tuple[str, ...] = (
    "left", "right", "up", "down", "approach", "recede", "rotate_cw", "rotate_ccw",
)  # fmt: skip
MOTION_SHAPES: tuple[str, ...] = ("square", "triangle", "bar")  # no circle: rotation must show
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
}
APPEARANCE_CLASSES: tuple[str, ...] = tuple(f"{c} {s}" for s in SHAPES for c in COLOURS)
_FORMAT_VERSION = 2  # 2: repeatable H.264 encodes (write_video)
_MAX_TURN = math.radians(30)  # rotation per frame stays below half the square's symmetry

_ENCODERS = {"h264": "libx264", "mpeg4": "mpeg4", "vp9": "libvpx-vp9"}
_STAMP = ".synth-render.json"  # the parameters of a render under way (removed when done)


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
            # one thread and no macroblock tree: with libx264's mbtree on, the same frames gave a
            # different file about 1 time in 20 (more under CPU load; even single-threaded), which
            # made the demo's results differ from run to run; a thread count that follows the
            # machine's cores would tie the bytes to the machine
            opts.update(crf=str(crf), preset="veryfast", threads="1", **{"x264-params": "mbtree=0"})
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
            # converted to yuv420p here, not by the encoder: PyAV's encode-time conversion gave
            # different pixels for the same frames once videos had been decoded in the process
            # (a third of a demo dataset differed from run to run, and so did the demo's results)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuv420p")
            if pts is not None:
                frame.pts = int(pts[i])
                frame.time_base = tb or Fraction(1, 1) / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# ---------------------------------------------------------------------------------- drawing
def _polygon(shape: str) -> np.ndarray:
    """Unit-radius convex polygon vertices (V, 2), counter-clockwise in (x, y-down) terms."""
    if shape == "square":
        a = np.array([0.25, 0.75, 1.25, 1.75]) * math.pi
        return np.stack([np.cos(a), np.sin(a)], 1) * 1.0
    if shape == "triangle":
        a = np.array([-0.5, 1 / 6, 5 / 6]) * math.pi
        return np.stack([np.cos(a), np.sin(a)], 1) * 1.15
    if shape == "bar":
        return np.array([[-1.0, -0.35], [1.0, -0.35], [1.0, 0.35], [-1.0, 0.35]]) * 1.1
    raise ValueError(f"unknown polygon shape {shape!r}")


def _coverage(
    shape: str, size: int, cx: np.ndarray, cy: np.ndarray, r: np.ndarray, angle: np.ndarray,
    wrap: bool,
) -> np.ndarray:  # fmt: skip
    """Anti-aliased coverage in [0, 1] of a shape per frame: float32 (T, size, size).

    cx, cy, r, angle: (T,) centre (pixels), radius (pixels) and rotation (radians) per frame.
    """
    grid = np.arange(size, dtype=np.float32) + 0.5
    dx = grid[None, None, :] - cx[:, None, None].astype(np.float32)  # (T, 1, W)
    dy = grid[None, :, None] - cy[:, None, None].astype(np.float32)  # (T, H, 1)
    if wrap:  # nearest copy on the torus
        dx = (dx + size / 2) % size - size / 2
        dy = (dy + size / 2) % size - size / 2
    dx, dy = np.broadcast_arrays(dx, dy)  # (T, H, W)
    rr = r[:, None, None].astype(np.float32)
    if shape == "circle":
        dist = np.sqrt(dx * dx + dy * dy) - rr
    else:
        c, s = np.cos(-angle)[:, None, None], np.sin(-angle)[:, None, None]
        ux, uy = (dx * c - dy * s) / rr, (dx * s + dy * c) / rr  # shape frame, unit radius
        verts = _polygon(shape)
        dist = None
        for i in range(len(verts)):  # convex: max over edges of the outward distance
            (x0, y0), (x1, y1) = verts[i], verts[(i + 1) % len(verts)]
            nx, ny = y1 - y0, -(x1 - x0)
            norm = math.hypot(nx, ny)
            nx, ny = nx / norm, ny / norm
            if nx * (0 - x0) + ny * (0 - y0) > 0:  # make the normal point outwards
                nx, ny = -nx, -ny
            d = (ux - x0) * nx + (uy - y0) * ny
            dist = d if dist is None else np.maximum(dist, d)
        dist = dist * rr  # back to pixels
    return np.clip(0.5 - dist, 0.0, 1.0)


def _shape_extent(shape: str, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-width and half-height (in radii) of the rotated shape's bounding box per frame."""
    if shape == "circle":
        one = np.ones_like(angle)
        return one, one
    v = _polygon(shape)  # (V, 2)
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x = v[None, :, 0] * c - v[None, :, 1] * s  # (T, V)
    y = v[None, :, 0] * s + v[None, :, 1] * c
    return np.abs(x).max(1), np.abs(y).max(1)


def _vivid(rng: np.random.Generator) -> np.ndarray:
    """A saturated random colour (3,) in [0, 255]."""
    h, sat, val = rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.65, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    rgb = val - val * sat * np.clip(np.minimum(k, 4 - k), 0, 1)
    return rgb * 255


def _background(rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
    """A dull random colour (3,) at least 90 (RGB distance) from ``avoid``."""
    for _ in range(100):
        grey = rng.uniform(0, 255)
        col = np.clip(grey + rng.normal(0, 25, 3), 0, 255)
        if avoid is None or np.linalg.norm(col - avoid) >= 90:
            return col
    return 255 - avoid if avoid is not None else col


def _composite(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """canvas (T, H, W, 3) float32 <- alpha (T, H, W) blend of ``colour`` (3,), touching only
    the covered pixels (objects cover a small part of the frame)."""
    mask = alpha > 0
    a = alpha[mask][:, None]  # (P, 1)
    canvas[mask] = canvas[mask] * (1 - a) + a * colour.astype(np.float32)


def _clutter(rng: np.random.Generator, canvas: np.ndarray, count: int, size: int) -> None:
    """Static blobs of random shape, colour and size painted on every frame."""
    if count <= 0:
        return
    still = canvas[:1].copy()  # (1, H, W, 3): paint once, copy to every frame
    for _ in range(count):
        shape = SHAPES[rng.integers(len(SHAPES))]
        cov = _coverage(
            shape, size, np.full(1, rng.uniform(0, size)), np.full(1, rng.uniform(0, size)),
            np.full(1, rng.uniform(0.05, 0.15) * size), np.full(1, rng.uniform(0, 2 * math.pi)),
            wrap=True,
        )  # fmt: skip
        _composite(still, cov, _background(rng) * 0.5 + 60)
    canvas[:] = still


def _distractor(rng, canvas, size, num_frames, object_size, speed) -> None:
    """An object that random-walks (no steady direction): present, moving, not the label."""
    shape = (*MOTION_SHAPES, "circle")[rng.integers(len(MOTION_SHAPES) + 1)]
    steps = rng.normal(0, speed[1] * size * 0.6, (num_frames, 2))
    steps[0] = rng.uniform(0, size, 2)
    path = np.cumsum(steps, 0)
    r = np.full(num_frames, rng.uniform(*object_size) * size / 2)
    angle = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.2, num_frames))
    cov = _coverage(shape, size, path[:, 0], path[:, 1], r, angle, wrap=True)
    _composite(canvas, cov, _vivid(rng))


def render_motion_clip(
    label: str,
    rng: np.random.Generator,
    *,
    size: int = 32,
    num_frames: int = 8,
    num_objects: int = 1,
    object_size: tuple[float, float] = (0.2, 0.45),
    speed: tuple[float, float] = (0.04, 0.08),
    distractors: int = 0,
    clutter: int = 0,
    noise: float = 0.0,
    wrap: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One motion clip: (frames uint8 (T, size, size, 3), boxes float32 (T, 4) x0 y0 x1 y1).

    ``object_size``: the object's diameter as a fraction of the frame side. ``speed`` per frame:
    translation in frame sides, approach/recede log-size change, rotation in turns (capped at
    30 degrees). With ``wrap`` the position wraps around the frame and, for approach/recede, the
    log-size wraps within ``object_size`` (an object that grows past the largest size comes back
    at the smallest), so position, size and angle have the same distribution at every frame
    for every class. ``boxes`` are those of the first labelled object, clipped to the frame (with
    ``wrap=True`` a box crossing the edge covers only the part on the side of its centre).
    """
    if label not in MOTION_CLASSES:
        raise ValueError(f"unknown motion class {label!r}; expected one of {MOTION_CLASSES}")
    t = np.arange(num_frames, dtype=np.float64)
    tc = t - (num_frames - 1) / 2  # centred time
    obj_colour = _vivid(rng)
    canvas = np.empty((num_frames, size, size, 3), np.float32)
    canvas[:] = _background(rng, obj_colour).astype(np.float32)
    _clutter(rng, canvas, clutter, size)
    for _ in range(distractors):
        _distractor(rng, canvas, size, num_frames, object_size, speed)
    boxes = np.zeros((num_frames, 4), np.float32)
    for k in range(num_objects):
        shape = MOTION_SHAPES[rng.integers(len(MOTION_SHAPES))]
        v = rng.uniform(*speed)
        r = np.full(num_frames, rng.uniform(*object_size) * size / 2)
        angle = np.full(num_frames, rng.uniform(0, 2 * math.pi))
        vx = vy = 0.0
        if label in ("left", "right", "up", "down"):
            step = v * size * (1 if label in ("right", "down") else -1)
            vx, vy = (step, 0.0) if label in ("left", "right") else (0.0, step)
        elif label in ("approach", "recede"):
            sign = 1 if label == "approach" else -1
            lo, hi = object_size[0] * size / 2, object_size[1] * size / 2
            if wrap and hi > lo:  # log-size wraps like position: uniform at every frame
                span = math.log(hi / lo)
                r = lo * np.exp((rng.uniform(0, span) + sign * v * t) % span)
            else:  # size at the middle frame is independent of the class
                r = r * np.exp(sign * v * tc)
        else:
            turn = min(v * 2 * math.pi, _MAX_TURN)
            angle = angle + turn * t * (1 if label == "rotate_cw" else -1)  # y down: + is cw
        hx, hy = _shape_extent(shape, angle)
        ex, ey = hx * r, hy * r  # (T,) half extents in pixels
        if wrap:
            cx0, cy0 = rng.uniform(0, size, 2)
        else:  # keep the whole path inside the frame (slow down if it cannot fit)
            travel_x, travel_y = abs(vx) * (num_frames - 1), abs(vy) * (num_frames - 1)
            room_x, room_y = size - 2 * ex.max(), size - 2 * ey.max()
            if travel_x > room_x > 0:
                vx *= room_x / travel_x
                travel_x = room_x
            if travel_y > room_y > 0:
                vy *= room_y / travel_y
                travel_y = room_y
            lo_x = ex.max() + (travel_x if vx < 0 else 0)
            lo_y = ey.max() + (travel_y if vy < 0 else 0)
            cx0 = rng.uniform(lo_x, max(lo_x, size - ex.max() - (travel_x if vx > 0 else 0)))
            cy0 = rng.uniform(lo_y, max(lo_y, size - ey.max() - (travel_y if vy > 0 else 0)))
        cx, cy = cx0 + vx * t, cy0 + vy * t
        if wrap:
            cx, cy = cx % size, cy % size
        colour = obj_colour if k == 0 else _vivid(rng)
        _composite(canvas, _coverage(shape, size, cx, cy, r, angle, wrap), colour)
        if k == 0:
            boxes = np.stack([cx - ex, cy - ey, cx + ex, cy + ey], 1).clip(0, size)
    if noise > 0:
        canvas += rng.normal(0, noise * 255, canvas.shape).astype(np.float32)
    frames = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return frames, boxes.astype(np.float32)


def _inside_path(u: float, step: float, travel: int, half: float, size: int) -> tuple[float, float]:
    """(start, step) of a path of `travel` steps that keeps an object of half-extent `half`
    inside [0, size]: the step shortened when the whole path would not fit, the start (u in
    [0, 1)) scaled into the range that remains."""
    room = max(size - 2 * half, 0.0)
    if travel and abs(step) * travel > room:
        step = math.copysign(room / travel, step)
    lo = half + max(0.0, -step * travel)
    hi = size - half - max(0.0, step * travel)
    return lo + u * max(hi - lo, 0.0), step


def render_appearance_clip(
    label: str,
    rng: np.random.Generator,
    *,
    size: int = 32,
    num_frames: int = 8,
    object_size: tuple[float, float] = (0.2, 0.45),
    speed: tuple[float, float] = (0.04, 0.08),
    distractors: int = 0,
    clutter: int = 0,
    noise: float = 0.0,
    wrap: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One appearance clip (class = "colour shape"), random direction of motion.

    `wrap`: the object wraps around the frame's edges (split in pieces when it crosses one);
    `wrap=False` places its path so that it stays whole inside the frame (the random draws are
    the same, so the two differ only in where the path lies). Returns (frames uint8
    (T, size, size, 3), boxes float32 (T, 4)).
    """
    if label not in APPEARANCE_CLASSES:
        raise ValueError(
            f"unknown appearance class {label!r}; expected one of {APPEARANCE_CLASSES}"
        )
    colour_name, shape = label.split(" ")
    colour = np.clip(np.array(COLOURS[colour_name], float) + rng.normal(0, 12, 3), 0, 255)
    t = np.arange(num_frames, dtype=np.float64)
    canvas = np.empty((num_frames, size, size, 3), np.float32)
    grey = rng.uniform(60, 200)
    canvas[:] = np.float32(grey)  # grey background: the colour stays the object's
    _clutter(rng, canvas, clutter, size)
    for _ in range(distractors):
        _distractor(rng, canvas, size, num_frames, object_size, speed)
    direction = rng.uniform(0, 2 * math.pi)
    v = rng.uniform(*speed) * size
    x0, y0 = rng.uniform(0, size), rng.uniform(0, size)
    radius = rng.uniform(*object_size) * size / 2
    r = np.full(num_frames, radius)
    angle = np.full(num_frames, rng.uniform(0, 2 * math.pi))
    steps = (v * math.cos(direction), v * math.sin(direction))
    if wrap:
        cx, cy = ((c0 + d * t) % size for c0, d in ((x0, steps[0]), (y0, steps[1])))
    else:  # the start, scaled into the range that keeps the whole path inside the frame
        travel = max(num_frames - 1, 0)
        ex, ey = (float(e[0]) * radius for e in _shape_extent(shape, angle[:1]))
        (sx, dx), (sy, dy) = (
            _inside_path(c0 / size, d, travel, half, size)
            for c0, d, half in ((x0, steps[0], ex), (y0, steps[1], ey))
        )
        cx, cy = sx + dx * t, sy + dy * t
    _composite(canvas, _coverage(shape, size, cx, cy, r, angle, wrap), colour)
    hx, hy = _shape_extent(shape, angle)
    boxes = np.stack([cx - hx * r, cy - hy * r, cx + hx * r, cy + hy * r], 1).clip(0, size)
    if noise > 0:
        canvas += rng.normal(0, noise * 255, canvas.shape).astype(np.float32)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8), boxes.astype(np.float32)


# ---------------------------------------------------------------------------------- datasets
def choose_classes(kind: str, classes: Sequence[str] | None, num_classes: int | None) -> list[str]:
    """The class names of `kind` to render: `classes` by name (all when None), then the first
    `num_classes`; ValueError names what is wrong."""
    if kind == "motion":
        all_classes = MOTION_CLASSES
    elif kind == "appearance":
        all_classes = APPEARANCE_CLASSES
    else:
        raise ValueError(f"kind must be 'motion' or 'appearance', got {kind!r}")
    if classes is not None:
        chosen = [str(c) for c in classes]
        unknown = [c for c in chosen if c not in all_classes]
        if unknown:
            raise ValueError(f"unknown {kind} classes {unknown}; expected some of {all_classes}")
        if len(set(chosen)) != len(chosen) or len(chosen) < 2:
            raise ValueError(f"classes must be at least 2 distinct names, got {chosen}")
    else:
        chosen = list(all_classes)
    if num_classes is not None:
        if not 2 <= num_classes <= len(chosen):
            raise ValueError(f"num_classes must be in [2, {len(chosen)}], got {num_classes}")
        chosen = chosen[:num_classes]
    return chosen


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
    object_size: tuple[float, float] = (0.2, 0.45),
    speed: tuple[float, float] = (0.04, 0.08),
    distractors: int = 0,
    clutter: int = 0,
    noise: float = 0.0,
    wrap: bool = True,
    codec: str = "h264",
    overwrite: bool = False,
    replace_synthetic: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Render a dataset to ``out_dir`` and return its info dict.

    Writes ``{train,val,test}/NNNNN.mp4`` (``.webm`` for vp9, ``.avi`` for mpeg4), list files
    ``train.csv``/``val.csv``/``test.csv`` (``relative/path label`` per line, space separated,
    paths relative to ``out_dir``: ``read_list_file`` resolves them against the list file's
    folder), ``labels.txt`` (one class name per line), ``boxes.json`` ({relative path:
    [[x0, y0, x1, y1] per frame]}, the labelled object in pixels) and ``info.json``. Labels are
    balanced within each split. Info keys: ``out_dir``, ``kind``, ``labels``, ``num_classes``,
    ``splits`` ({split: list-file path}), ``counts``, ``params``, ``cached`` (True when existing
    files were reused). ``classes`` picks classes by name, ``num_classes`` the first k.

    The folder must be missing, empty or a render of this function: files of any other kind
    raise ``FolderInUseError`` unless ``overwrite``, as does a render of other parameters unless
    ``overwrite`` or ``replace_synthetic`` (a folder the caller owns, as the demo's data).
    """
    labels = choose_classes(kind, classes, num_classes)
    if size < 8 or size % 2:
        raise ValueError(f"size must be an even number >= 8, got {size}")
    if num_frames < 1 or not 0 < fps < math.inf:
        raise ValueError(f"num_frames must be >= 1 and fps finite > 0, got {num_frames}, {fps}")
    if min(num_train, num_val, num_test, distractors, clutter) < 0 or num_objects < 1:
        raise ValueError("split sizes, distractors and clutter must be >= 0, num_objects >= 1")
    if not (0 < object_size[0] <= object_size[1] <= 1 and 0 <= speed[0] <= speed[1] < math.inf):
        raise ValueError(f"bad ranges: object_size={object_size} (within (0, 1]), speed={speed}")
    out = Path(out_dir)
    params: dict[str, Any] = {
        "version": _FORMAT_VERSION, "kind": kind, "labels": labels, "size": size,
        "num_frames": num_frames, "fps": fps, "seed": seed, "num_objects": num_objects,
        "object_size": list(object_size), "speed": list(speed), "distractors": distractors,
        "clutter": clutter, "noise": noise, "wrap": wrap, "codec": codec,
        "counts": {"train": num_train, "val": num_val, "test": num_test},
    }  # fmt: skip
    ext = {"h264": ".mp4", "vp9": ".webm", "mpeg4": ".avi"}.get(codec)
    if ext is None:
        raise ValueError(f"unknown codec {codec!r}; expected one of {sorted(_ENCODERS)}")
    splits = {name: out / f"{name}.csv" for name in ("train", "val", "test")}
    info = {
        "out_dir": str(out), "kind": kind, "labels": labels, "num_classes": len(labels),
        "splits": {k: str(v) for k, v in splits.items()}, "counts": params["counts"],
        "params": params, "cached": False,
    }  # fmt: skip
    info_path = out / "info.json"
    if not overwrite and _holds_this_render(out, params, replace_synthetic):
        if _params_in(info_path) == params and _files_present(out, splits, ext, params["counts"]):
            info["cached"] = True
            return info
    info_path.unlink(missing_ok=True)  # written last: its presence marks a finished render
    out.mkdir(parents=True, exist_ok=True)
    (out / _STAMP).write_text(json.dumps({"params": params}))  # marks an unfinished one
    opts = dict(size=size, num_frames=num_frames, object_size=tuple(object_size),
                speed=tuple(speed), distractors=distractors, clutter=clutter, noise=noise)  # fmt: skip
    all_boxes: dict[str, list[list[float]]] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num_train + num_val + num_test, desc=f"rendering {kind}", unit="video")
    for split_id, (split, count) in enumerate(params["counts"].items()):
        order = np.random.default_rng([seed, split_id, 7]).permutation(
            np.arange(count) % len(labels)
        )
        lines = []
        for i in range(count):
            rng = np.random.default_rng([seed, split_id, i])
            label = int(order[i])
            if kind == "motion":
                frames, boxes = render_motion_clip(
                    labels[label], rng, num_objects=num_objects, wrap=wrap, **opts
                )
            else:
                frames, boxes = render_appearance_clip(labels[label], rng, **opts)
            rel = f"{split}/{i:05d}{ext}"
            write_video(out / rel, frames, fps, codec=codec)
            lines.append(f"{rel} {label}\n")
            all_boxes[rel] = np.round(boxes, 2).tolist()
            if bar is not None:
                bar.update(1)
        splits[split].write_text("".join(lines))
    if bar is not None:
        bar.close()
    (out / "labels.txt").write_text("".join(f"{name}\n" for name in labels))
    (out / "boxes.json").write_text(json.dumps(all_boxes))
    info_path.write_text(json.dumps(info, indent=2))
    (out / _STAMP).unlink(missing_ok=True)
    return info


class FolderInUseError(ValueError):
    """`render_dataset`'s folder holds other files, or a render of other options.

    ``reason`` is the message without the remedy, for a command to add its own flag."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}; overwrite=True renders over it")
        self.reason = reason


def _params_in(path: Path) -> dict[str, Any] | None:
    """The render parameters recorded in `path` (info.json or the stamp); None if none."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, unreadable, not JSON, not UTF-8
        return None
    params = data.get("params") if isinstance(data, dict) else None
    ours = isinstance(params, dict) and "version" in params and "kind" in params
    return params if ours else None


def _holds_this_render(out: Path, params: dict[str, Any], replace: bool) -> bool:
    """Whether `out` holds a render (finished or not) of these very `params`; False for a
    missing or empty folder, or another render when `replace`. Raises FolderInUseError for a
    folder with files of its own, or with a render of other options (unless `replace`)."""
    if not out.is_dir() or not any(out.iterdir()):
        return False
    old = _params_in(out / _STAMP) or _params_in(out / "info.json")
    if old is None:
        raise FolderInUseError(
            f"{out} is not empty and holds no synthetic dataset (no info.json of a render)"
        )
    if old == params or replace:
        return old == params
    changed = ", ".join(
        f"{k} {old.get(k)!r} -> {v!r}" for k, v in params.items() if old.get(k) != v
    )
    raise FolderInUseError(
        f"{out} holds a synthetic dataset rendered with other options ({changed})"
    )


def _files_present(out: Path, splits: dict[str, Path], ext: str, counts: dict[str, int]) -> bool:
    if not (out / "labels.txt").is_file() or not (out / "boxes.json").is_file():
        return False
    for split, path in splits.items():
        if not path.is_file():
            return False
        if any(not (out / f"{split}/{i:05d}{ext}").is_file() for i in range(counts[split])):
            return False
    return True
