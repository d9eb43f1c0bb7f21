"""`timesformer data prepare`: re-encode a tree of videos for fast, predictable training clips.

Every video under SRC (by suffix) becomes ``DST/<same relative path>.mp4``: H.264 (libx264,
CRF ``crf``, no audio), the short side scaled to ``short_side`` (even sizes, aspect kept), a
constant ``fps`` (each output frame is the source frame shown at its time: frames are dropped
or repeated, so durations are kept), and a keyframe every ``gop`` frames (a random clip then
decodes at most ``gop - 1`` frames it does not need). Display rotation is baked in: the output
is upright and carries no rotation metadata.

Resumable and safe: an output that exists and verifies (frame count, frame rate and size as
expected) is skipped; a new one is encoded to a temporary name beside it, verified by decoding
every frame, then renamed into place, so an interrupted run leaves no half-written file under
a final name. Each video gives a record ``{path, out, status: written|skipped|failed, reason,
frames, width, height}``.
"""

from __future__ import annotations

import os
import random
import statistics
import traceback
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from ..files import hidden_below
from .inputs import is_listed_video
from .inspect import clip_cost_ms, run_pool
from .rotation import display_rotation, upright
from .video import VIDEO_EXTENSIONS, VideoDecodeError, VideoReader, video_stream


def find_videos(src: str | Path, exclude: str | Path | None = None) -> list[Path]:
    """Videos below ``src`` (suffix in VIDEO_EXTENSIONS), sorted, none below ``exclude`` (a
    destination inside the source: its outputs are not sources); FileNotFoundError if missing."""
    root = Path(src)
    if root.is_file():
        raise ValueError(f"source {root} is a file; expected a folder of videos")
    if not root.is_dir():
        raise FileNotFoundError(f"source folder not found: {root}")
    exts = set(VIDEO_EXTENSIONS)
    skip = Path(exclude).resolve() if exclude is not None else None
    if skip == root.resolve():
        skip = None  # the same folder: prepare_tree refuses it with its own message
    return sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in exts and is_listed_video(p) and not hidden_below(p, root)
        and (skip is None or not p.resolve().is_relative_to(skip))
    )  # fmt: skip


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side ``short_side`` and the long side scaled, both even."""
    if short_side < 2:
        raise ValueError(f"short side must be >= 2 pixels, got {short_side}")
    short, long = min(width, height), max(width, height)
    scaled = max(2, int(round(long * short_side / short / 2)) * 2)
    even = short_side - short_side % 2
    return (scaled, even) if width >= height else (even, scaled)


MAX_REPEAT = 100  # the most output frames per source frame a rate change may write


class _TooManyFrames(ValueError):
    """A rate change that would repeat each source frame more than MAX_REPEAT times."""


def _expected(path: Path, short_side: int, fps: Fraction | None) -> tuple[int, int, int, float]:
    """(frames, width, height, fps) an output of ``path`` must have (upright geometry)."""
    with VideoReader(path, upright=True) as r:
        # the displayed shape: an anamorphic source's stored width stretched by its pixel
        # aspect (the stored width is the upright height after a quarter turn)
        sar = r.sample_aspect_ratio
        tall = r.rotation in (90, 270)
        shown = (r.width, round(r.height * sar)) if tall else (round(r.width * sar), r.height)
        w, h = output_size(max(1, shown[0]), max(1, shown[1]), short_side)
        if fps is None:
            return r.num_frames, w, h, r.fps
        frames = max(1, int(round(r.num_frames / r.fps * float(fps))))
        if frames > max(MAX_REPEAT * r.num_frames, r.num_frames + 1000):
            # a few frames far apart (or a broken clock): the constant-rate copy would repeat
            # each of them thousands of times
            raise _TooManyFrames(
                f"its {r.num_frames} frames span {r.duration:.0f} s ({r.fps:.3g} fps): at "
                f"{float(fps):g} fps the copy would hold {frames} frames; not re-encoded "
                "(are its timestamps right?)",
            )
        return frames, w, h, float(fps)


def verify_output(path: Path, frames: int, width: int, height: int, fps: float) -> str:
    """ "" when ``path`` decodes fully to the expected geometry, else the reason."""
    try:
        with VideoReader(path, upright=False) as r:
            got = (r.num_frames, r.width, r.height)
            if got != (frames, width, height):
                return f"expected {frames} frames of {width}x{height}, found {got[0]} of {got[1]}x{got[2]}"
            if frames > 1 and abs(r.fps - fps) > 1e-3 * fps:
                return f"expected {fps:.3f} fps, found {r.fps:.3f}"
            if r.rotation:
                return f"output carries a display rotation of {r.rotation}"
        with av.open(str(path)) as c:
            decoded = sum(1 for _ in c.decode(video=0))
        if decoded != frames:
            return f"only {decoded} of {frames} frames decode"
    except (VideoDecodeError, av.FFmpegError, OSError) as e:
        return f"unreadable output: {getattr(e, 'reason', None) or e}"
    return ""


def _encode(
    src: Path, tmp: Path, size: tuple[int, int], fps: Fraction | None, gop: int, crf: int
) -> int:
    """Decode ``src``, turn upright, resample to ``fps``, scale to ``size``; encode to ``tmp``."""
    rotation = display_rotation(src)
    turned = rotation in (90, 270)
    w, h = size
    sw, sh = (h, w) if turned else (w, h)  # scale before turning: fewer pixels to rotate
    with av.open(str(src), metadata_errors="ignore") as inp:
        ins = video_stream(inp)
        rate = fps or Fraction(ins.average_rate or ins.guessed_rate or 30).limit_denominator(1001)
        with av.open(str(tmp), "w", format="mp4") as out:
            st = out.add_stream("libx264", rate=rate)
            st.width, st.height, st.pix_fmt = w, h, "yuv420p"
            st.codec_context.gop_size = gop
            st.options = {"crf": str(crf), "preset": "veryfast", "keyint_min": str(gop),
                          "sc_threshold": "0"}  # fmt: skip
            written = 0

            def emit(frame: av.VideoFrame) -> None:
                nonlocal written
                rgb = frame.reformat(sw, sh, format="rgb24", interpolation="AREA").to_ndarray()
                arr = upright(rgb, rotation)  # (h, w, 3)
                # to yuv420p here, not inside encode (that conversion is not repeatable in a
                # process that decodes too: data/synthetic.py)
                vf = av.VideoFrame.from_ndarray(arr, format="rgb24").reformat(format="yuv420p")
                vf.pts = written
                for packet in st.encode(vf):
                    out.mux(packet)
                written += 1

            first: float | None = None
            cur: av.VideoFrame | None = None
            count, last_t = 0, 0.0
            for frame in inp.decode(ins):
                t = float(frame.time) if frame.time is not None else count / float(rate)
                first = t if first is None else first
                t -= first
                count += 1
                if fps is None:
                    emit(frame)
                    continue
                while cur is not None and written / float(fps) < t - 1e-6:
                    emit(cur)  # output frames whose time comes before this source frame
                cur, last_t = frame, t
            if fps is not None and cur is not None:
                src_rate = (count - 1) / last_t if count > 1 and last_t > 0 else float(rate)
                total = max(1, int(round(count / src_rate * float(fps))))
                while written < total:
                    emit(cur)
            for packet in st.encode():
                out.mux(packet)
    return written


def prepare_video(
    src: str | Path,
    dst: str | Path,
    *,
    short_side: int = 256,
    fps: Fraction | float | None = 30,
    gop: int = 16,
    crf: int = 23,
) -> dict[str, Any]:
    """Re-encode one video (module doc); never raises for a bad video, reports it instead."""
    src, dst = Path(src), Path(dst)
    rec: dict[str, Any] = {"path": str(src), "out": str(dst), "status": "failed", "reason": ""}
    rate = None if not fps else Fraction(fps).limit_denominator(1001)
    try:
        frames, w, h, want_fps = _expected(src, short_side, rate)
    except _TooManyFrames as e:
        rec["reason"] = str(e)
        return rec
    except (VideoDecodeError, av.FFmpegError, OSError) as e:
        rec["reason"] = f"cannot read source: {getattr(e, 'reason', None) or e}"
        rec["traceback"] = traceback.format_exc()
        return rec
    rec.update(frames=frames, width=w, height=h)
    if dst.is_file() and not verify_output(dst, frames, w, h, want_fps):
        rec["status"] = "skipped"
        return rec
    tmp = dst.with_name(f".{dst.stem}.partial.mp4")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        _encode(src, tmp, (w, h), rate, gop, crf)
        reason = verify_output(tmp, frames, w, h, want_fps)
        if reason:
            rec["reason"] = f"verification failed: {reason}"
            return rec
        os.replace(tmp, dst)
        rec["status"] = "written"
    except (av.FFmpegError, OSError, ValueError) as e:
        rec["reason"] = f"encoding failed: {e}"
        rec["traceback"] = traceback.format_exc()
    finally:
        if tmp.exists():
            tmp.unlink()
    return rec


def _prepare_star(job: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    src, dst, kwargs = job
    try:
        return prepare_video(src, dst, **kwargs)
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the tree
        return {"path": src, "out": dst, "status": "failed", "reason": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()}  # fmt: skip


def plan_outputs(
    sources: Sequence[Path], src: str | Path, dst: str | Path
) -> list[tuple[Path, Path]]:
    """(source, output) pairs: the relative path kept, suffix .mp4. Two sources that would
    share an output (``a.avi`` and ``a.mp4``) are a ValueError naming both."""
    pairs, seen = [], {}
    for s in sources:
        out = Path(dst) / s.relative_to(src).with_suffix(".mp4")
        if out in seen:
            raise ValueError(f"{seen[out]} and {s} would both be written to {out}; rename one")
        seen[out] = s
        pairs.append((s, out))
    return pairs


def prepare_tree(
    src: str | Path,
    dst: str | Path,
    *,
    short_side: int = 256,
    fps: Fraction | float | None = 30,
    gop: int = 16,
    crf: int = 23,
    workers: int = 0,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """``prepare_video`` for every video below ``src`` into ``dst`` (records in input order)."""
    if gop < 1:
        raise ValueError(f"--gop must be >= 1, got {gop}")
    if short_side < 2:
        raise ValueError(f"--short-side must be >= 2 pixels, got {short_side}")
    if not 0 <= crf <= 51:
        raise ValueError(f"--crf must be in 0..51 (x264's range), got {crf}")
    if fps is not None and fps < 0:
        raise ValueError(f"--fps must be > 0 (or 0 to keep the source rate), got {fps}")
    if Path(dst).resolve() == Path(src).resolve():
        raise ValueError(f"destination {dst} is the source folder; choose another")
    pairs = plan_outputs(find_videos(src, exclude=dst), src, dst)
    kw = dict(short_side=short_side, fps=fps, gop=gop, crf=crf)
    jobs = [(str(s), str(o), kw) for s, o in pairs]
    return run_pool(_prepare_star, jobs, workers, progress)


def clip_speed(
    paths: Sequence[str | Path], sample: int = 8, seed: int = 0, **clip: Any
) -> float | None:
    """Median wall ms per training clip over a seeded sample of ``paths`` (None if none read)."""
    chosen = random.Random(seed).sample(list(paths), min(sample, len(paths)))
    times = []
    for p in chosen:
        try:
            times.append(clip_cost_ms(p, **clip))
        except (VideoDecodeError, av.FFmpegError, OSError, IndexError):
            continue
    return statistics.median(times) if times else None
