"""`timesformer data check`: probe videos and flag what will hurt training.

``probe_video(path)`` opens one file and returns a JSON-ready record: codec, container, stored
and displayed size, display rotation, exact frame rate (a Fraction, written "30000/1001") and
whether it varies, frames, duration, the longest keyframe interval, audio, and the measured
wall time of decoding one training clip. ``problems`` lists, in words:

- unreadable (the reason), not a video (an image), no video stream, zero frames;
- shorter than one clip span (``num_frames * sampling_rate`` frames at ``target_fps``);
- variable frame rate (a frame gap differs from the median by more than 5% and one tick);
- keyframes further apart than ``MAX_KEYFRAME_SECONDS`` (5 s) or ``MAX_KEYFRAME_FRAMES`` (150):
  a random clip then decodes from a keyframe far before it;
- a short side under ``MIN_SHORT_SIDE`` (128 px): upscaled to the 224 crop, details are lost;
- display rotation metadata (frames are turned upright on read; ``data prepare`` bakes it in).

``ok`` is True when there are no problems. ``check_videos`` runs many in a process pool.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from ..files import hidden_below, printable_path
from .index import ffmpeg_reason as _err
from .index import regular_timeline
from .inputs import extensions_hint, is_listed_video
from .listfile import list_file_paths
from .refusals import declared_size_reason, frame_size_reason, image_kind
from .rotation import display_rotation
from .sampling import clip_span, train_clip_indices
from .video import (
    VideoDecodeError,
    VideoReader,
    VideoTruncatedWarning,
    check_video_file,
    exact_rate,
    no_video_reason,
    pixel_aspect,
    stated_duration,
    truncation,
    video_stream,
)

MAX_KEYFRAME_SECONDS = 5.0
MAX_KEYFRAME_FRAMES = 150
MIN_SHORT_SIDE = 128
ERR_DETECT = "explode"  # FFmpeg: stop at damaged data instead of concealing it (data check --full)
LIST_SUFFIXES = (".csv", ".txt", ".lst", ".list", ".tsv")
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")

FIELDS = (
    "path", "ok", "problems", "format", "codec", "width", "height", "rotation",
    "sample_aspect_ratio", "fps", "variable_fps", "frames", "duration",
    "keyframe_interval_frames", "keyframe_interval_s", "audio", "clip_ms", "decoded_frames",
    "bytes",
)  # fmt: skip


def _record(path: str | Path, **fields: Any) -> dict[str, Any]:
    rec: dict[str, Any] = dict.fromkeys(FIELDS)
    rec.update(path=str(path), problems=[])
    rec.update(fields)
    return rec


def _looks_like_image(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _frame_rate(pts: list[int], tb: Fraction, stream: Any) -> tuple[Fraction | None, bool]:
    """(exact frames per second, variable?) from sorted timestamps."""
    nominal = stream.average_rate or stream.guessed_rate
    nominal = Fraction(nominal) if nominal else None
    if len(pts) < 2 or pts[-1] == pts[0]:
        return nominal, False
    gaps = [b - a for a, b in zip(pts, pts[1:], strict=False)]
    mid = statistics.median(gaps)
    variable = any(abs(g - mid) > max(1.5, 0.05 * mid) for g in gaps)
    # the reader's own rule, so that the report and every reading command agree
    return exact_rate(pts[0], pts[-1], len(pts), tb, stream), variable


def _format_name(cc: Any) -> str:
    """A codec context's format name: "av1" rather than "libdav1d", "mp3" not "mp3float"."""
    return getattr(cc.codec, "canonical_name", None) or cc.name


def clip_cost_ms(
    path: str | Path,
    num_frames: int = 8,
    sampling_rate: int = 32,
    target_fps: float | None = 30.0,
    seed: int = 0,
    upright: bool = True,
) -> float:
    """Wall milliseconds to open ``path`` and decode one random training clip (seeded)."""
    start = time.perf_counter()
    with VideoReader(path, upright=upright) as reader:
        g = torch.Generator().manual_seed(seed)
        idx = train_clip_indices(
            reader.num_frames, num_frames, sampling_rate, reader.fps,
            target_fps=target_fps, generator=g,
        )  # fmt: skip
        reader.get_frames(idx)  # (T, H, W, 3)
    return (time.perf_counter() - start) * 1000.0


def decode_all(path: str | Path) -> tuple[int, str]:
    """Decode every frame of the video stream in order: (frames decoded, the first failure).
    A last packet the file cuts short is left out, as the reader does (data/index.py).

    The decoder is told to stop on errors it would otherwise hide (``err_detect``), so damaged
    data anywhere in the file shows, not only in the clip ``probe_video`` times."""
    decoded, why = 0, ""
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = video_stream(container)
        stream.codec_context.options = {"err_detect": ERR_DETECT}
        stream.thread_type = "AUTO"  # a whole-file pass: every core helps
        packets = container.demux(stream)
        held = None  # a cut-short packet: decoded once data follows (a last one is left out)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.FFmpegError, OSError) as e:
                why = why or f"demuxing stopped after frame {decoded} ({_err(e)})"
                break
            batch = [packet]
            if packet.size and held is not None:
                batch, held = [held, packet], None
            if packet.size and packet.is_corrupt:
                batch, held = batch[:-1], packet
            for pkt in batch:
                try:
                    decoded += len(pkt.decode())  # the last, empty packet flushes the decoder
                except av.FFmpegError as e:
                    why = why or f"near frame {decoded}: {_err(e)}"
    return decoded, why


def probe_video(
    path: str | Path,
    *,
    num_frames: int = 8,
    sampling_rate: int = 32,
    target_fps: float | None = 30.0,
    measure: bool = True,
    full: bool = False,
) -> dict[str, Any]:
    """One file -> a record (module doc); never raises for a bad file, only reports it.

    ``full``: also decode every frame (``decode_all``; as slow as decoding the video)."""
    p = Path(path)
    try:  # the reader's reasons: an empty file, a folder, a link loop, no permission
        check_video_file(p)
    except VideoDecodeError as e:
        return _record(p, ok=False, problems=[f"unreadable: {e.reason}"])
    rec = _record(p, bytes=p.stat().st_size)
    probs: list[str] = rec["problems"]
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as e:
        too_large = declared_size_reason(p)  # FFmpeg's reason would be "Device or resource busy"
        if too_large:
            probs.append(f"unreadable: {too_large}")
        elif _looks_like_image(p):
            probs.append("not a video: an image")
        else:
            why = getattr(e, "strerror", None) or str(e).strip() or type(e).__name__
            probs.append(f"unreadable: {why} (not a media file, or truncated)")
        rec["ok"] = False
        return rec
    with container:
        rec["format"] = container.format.name
        if not container.streams.video:
            probs.append(no_video_reason(container))
            rec["ok"] = False
            return rec
        stream = video_stream(container)
        cc = stream.codec_context
        rec["codec"] = _format_name(cc)  # the format (av1), not the decoder (libdav1d)
        if container.streams.audio:
            rec["audio"] = _format_name(container.streams.audio[0].codec_context)
        pts: list[int] = []
        keys: list[int] = []
        cut = False
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None or packet.is_discard:
                    continue  # (an edit list hides a discarded packet: not a frame)
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
                cut = packet.is_corrupt
        except (av.FFmpegError, OSError) as e:
            probs.append(f"unreadable: demuxing stopped early ({e})")
        if cut and pts:  # the reader leaves out a last frame whose data the file cuts short
            pts.pop()
            probs.append("truncated: the file ends inside its last frame's data")
        pts.sort()
        grid = regular_timeline(np.asarray(pts, dtype=np.int64), stream)
        if grid is not None:  # timestamps that mislabel B-frames: the reader's true ones
            relabel = dict(zip(pts, grid.tolist(), strict=True))  # keyframes, near enough
            pts, keys = grid.tolist(), [relabel[k] for k in keys if k in relabel]
        # the reader's rules, in its order (data/refusals.py): an image, then frames too large
        kind = image_kind(container.format.name, cc.name, len(pts))
        w, h = int(cc.width or stream.width), int(cc.height or stream.height)
        refused = f"not a video: an image ({kind})" if kind else None
        if not refused and frame_size_reason(w, h):
            refused = f"unreadable: {frame_size_reason(w, h)}"
        if refused:
            rec.update(width=w, height=h, frames=len(pts), ok=False)
            probs[:] = [refused]  # the one reason: nothing else about it matters
            return rec
        stated = stated_duration(container, stream)
        tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 30)
        fps, variable = _frame_rate(pts, tb, stream)
        rec.update(
            width=int(cc.width or stream.width),
            height=int(cc.height or stream.height),
            frames=len(pts),
            variable_fps=variable,
            fps=None if fps is None else str(fps),
        )
        try:
            rec["rotation"] = display_rotation(container, stream)
        except (av.FFmpegError, OSError):
            rec["rotation"] = 0
        sar = pixel_aspect(stream)
        rec["sample_aspect_ratio"] = f"{sar.numerator}:{sar.denominator}"
    if not pts:
        probs.append("zero video frames")
        rec["ok"] = False
        return rec
    rate = float(fps) if fps else 30.0
    rec["duration"] = round(float((pts[-1] - pts[0]) * tb) + 1.0 / rate, 3)
    cut = truncation(stated, rec["duration"], rate)
    if cut:  # a cut .mkv/.webm demuxes cleanly: only its header's duration tells
        probs.append(cut)
    index = {q: i for i, q in enumerate(pts)}
    starts = sorted({index[k] for k in keys if k in index} | {0})
    gap = max(b - a for a, b in zip(starts, [*starts[1:], len(pts)], strict=False))
    rec["keyframe_interval_frames"] = gap
    rec["keyframe_interval_s"] = round(gap / rate, 3)
    span = clip_span(num_frames, sampling_rate, rate, target_fps)
    if len(pts) < span:
        probs.append(
            f"shorter than one clip: {len(pts)} frame{'' if len(pts) == 1 else 's'}, a {num_frames} x {sampling_rate} clip "
            f"spans {span:.0f} (the last frame repeats)"
        )
    if variable:
        probs.append("variable frame rate (clip spans assume even spacing)")
    if gap > MAX_KEYFRAME_FRAMES or gap / rate > MAX_KEYFRAME_SECONDS:
        probs.append(
            f"sparse keyframes: {gap} frames ({gap / rate:.1f} s) apart, random clips decode slowly "
            "(re-encode with `timesformer data prepare --gop 16`)"
        )
    if min(rec["width"], rec["height"]) < MIN_SHORT_SIDE:
        probs.append(f"tiny: {rec['width']}x{rec['height']} (short side < {MIN_SHORT_SIDE})")
    if rec["rotation"]:
        probs.append(f"display rotation: {rec['rotation']} degrees (turned upright on read)")
    if sar != 1:
        shown = f"{round(rec['width'] * sar)}x{rec['height']}"
        probs.append(
            f"anamorphic: pixels are {rec['sample_aspect_ratio']}, not square; frames are read at "
            f"their stored {rec['width']}x{rec['height']}, not the displayed {shown} "
            "(`data prepare` makes them square)"
        )
    if measure:
        try:
            with warnings.catch_warnings():  # already a problem above, not a second line
                warnings.simplefilter("ignore", VideoTruncatedWarning)
                ms = clip_cost_ms(p, num_frames, sampling_rate, target_fps)
            rec["clip_ms"] = round(ms, 1)
        except (VideoDecodeError, av.FFmpegError, OSError, IndexError) as e:
            probs.append(f"unreadable: {getattr(e, 'reason', None) or e}")
    if full:
        try:
            decoded, why = decode_all(p)
        except (av.FFmpegError, OSError) as e:
            decoded, why = 0, _err(e)
        rec["decoded_frames"] = decoded
        missing = len(pts) - decoded
        if missing > 0 or why:
            lost = f"{missing} of {len(pts)} frames did not decode" if missing > 0 else "errors"
            probs.append(f"damaged: {lost}" + (f" (first {why})" if why else ""))
    rec["ok"] = not probs
    return rec


def collect_videos(inputs: Iterable[str | Path], separator: str | None = None) -> list[str]:
    """Files, folders (videos below them, by suffix) and list files (their paths) -> paths.

    A list file is a file with a suffix in LIST_SUFFIXES; a missing input is FileNotFoundError,
    a folder holding no videos a ValueError (a broken link is kept: its record says why it cannot
    be read).
    """
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            # the scan rule of every command (a broken link is kept: it is reported)
            found = [str(f) for f in sorted(p.rglob("*"))
                     if is_listed_video(f) and not hidden_below(f, p)]  # fmt: skip
            if not found:  # as predict and extract: a folder named for nothing is a mistake
                raise ValueError(
                    f"folder {printable_path(p)} holds no video files ({extensions_hint()})"
                )
            out.extend(found)
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            out.extend(list_file_paths(p, separator=separator))
        elif p.is_file() or p.is_symlink():  # a broken link or a link loop is reported
            out.append(str(p))
        else:
            raise FileNotFoundError(f"input not found: {p} (expected a video, folder or list)")
    return list(dict.fromkeys(out))


def _probe_star(job: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    path, kwargs = job
    try:
        return probe_video(path, **kwargs)
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the check
        return _record(path, ok=False, problems=[f"unreadable: {type(e).__name__}: {e}"])


def run_pool(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    workers: int = 0,
    progress: Callable[[Any], None] | None = None,
) -> list[Any]:
    """``[fn(j) for j in jobs]`` in order, in a spawned process pool when ``workers > 1``;
    ``progress`` is called with each result as it arrives."""
    if workers <= 1 or len(jobs) <= 1:
        results = []
        for j in jobs:
            results.append(fn(j))
            if progress:
                progress(results[-1])
        return results
    import multiprocessing as mp

    # the workers ignore Ctrl-C (the terminal sends it to the whole process group): this
    # process alone decides, and on any exit but success stops them at once instead of
    # waiting on tasks a half-interrupted pool may never finish
    pool = ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=_ignore_sigint
    )
    try:
        results = []
        for r in pool.map(fn, jobs):
            results.append(r)
            if progress:
                progress(r)
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown()
    return results


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the worker processes now (terminate, then kill)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join(timeout=5)
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None:
        manager.join(timeout=10)  # it reaps the workers it still holds
    for p in list((getattr(pool, "_processes", None) or {}).values()):
        if p not in procs and p.is_alive():  # started after the first look
            p.kill()
            p.join(timeout=5)


def check_videos(
    paths: Sequence[str | Path],
    *,
    workers: int = 0,
    progress: Callable[[dict[str, Any]], None] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """``probe_video`` over ``paths`` (keyword options passed on), in input order."""
    return run_pool(_probe_star, [(str(p), kwargs) for p in paths], workers, progress)


def summarize(records: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(name, value) rows for the end-of-check table."""
    ok = sum(r["ok"] for r in records)
    kinds: Counter[str] = Counter()
    for r in records:
        for prob in r["problems"]:
            kinds[prob.split(":")[0].split(" (")[0]] += 1
    rows = [
        ("videos", str(len(records))),
        ("ok", str(ok)),
        ("with problems", str(len(records) - ok)),
    ]
    rows += [(f"  {k}", str(n)) for k, n in kinds.most_common()]
    codecs = Counter(r["codec"] for r in records if r["codec"])
    if codecs:
        rows.append(("codecs", ", ".join(f"{c} {n}" for c, n in codecs.most_common())))
    dur = [r["duration"] for r in records if r["duration"]]
    if dur:
        rows.append(("duration", f"{sum(dur):.1f} s in all, {min(dur):.1f}-{max(dur):.1f} s each"))
    ms = [r["clip_ms"] for r in records if r["clip_ms"] is not None]
    if ms:
        rows.append(("clip decode", f"median {statistics.median(ms):.1f} ms per training clip"))
    return rows
