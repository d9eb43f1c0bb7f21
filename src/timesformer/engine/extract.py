"""Embeddings from videos: one vector per video, or one row per window of a long video.

- `extract(model, videos, mode="video")`: per video, the class-token features after the final
  norm (`forward_features`, or `pool="mean"`: the mean of the normed patch tokens), averaged
  over the K x S test views, shape (D,).
- `extract(..., mode="windows")`: consecutive windows covering the whole video (the `cover`
  sampler of `predict --long`; `stride` in the video's own frames for overlapping windows),
  one row per window, shape (windows, D), with each window's [start_s, end_s].
- `iter_extract(...)`: the same, yielding each video as soon as it is done (the sharded writer
  in `extract_run` stores them one by one).

Decoding runs in DataLoader workers (one video per worker at a time, decoded forward once, so
memory is bounded on an hour-long file); clips from different videos share model batches.
A video that cannot be read comes back with `status="failed"` and its `error`, never dropped.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..data.inputs import VideoInput
from ..models.preprocess import Preprocess, preprocess_of
from .distributed import pick_device
from .runtime import autocast

MODES = ("video", "windows")
POOLS = ("cls", "mean")
DTYPES = {"fp32": np.float32, "fp16": np.float16}


@dataclass
class VideoFeatures:
    """The features of one video and what they mean (the fields of its index.jsonl line).

    `num_frames` / `sampling_rate`: frames per clip and the gap between them (counted at
    `target_fps`, as the model was trained); `video_frames`: frames in the file. Windows mode:
    `windows` ([start_s, end_s] per row), `feat_stride` (frames between window starts) and
    `window_frames` (frames one window spans), both in the video's own frames.
    """

    video: str  # the input's name (relative path under a folder input)
    path: str
    status: str  # "ok" or "failed"
    features: np.ndarray | None = None  # (D,) or (windows, D)
    error: str | None = None
    fps: float | None = None
    duration: float | None = None
    video_frames: int | None = None
    num_frames: int = 0
    sampling_rate: int = 0
    target_fps: float | None = None
    mode: str = "video"
    pool: str = "cls"
    views: str = "1x1"
    windows: list[list[float]] | None = None
    feat_stride: float | None = None
    window_frames: float | None = None
    num_clips: int = 0  # model inputs run (clips x crops)
    position: int = field(default=-1, repr=False, compare=False)  # index in the inputs given
    traceback: str | None = field(default=None, repr=False, compare=False)  # of a failure

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def record(self, feature: str | None = None) -> dict[str, Any]:
        """The index.jsonl object: `feature` is the file's path relative to the output folder."""
        d: dict[str, Any] = {
            "video": self.video,
            "feature": feature,
            "shape": None if self.features is None else list(self.features.shape),
            "status": self.status,
            "fps": self.fps,
            "duration": self.duration,
            "num_frames": self.num_frames,
            "sampling_rate": self.sampling_rate,
        }
        if self.mode == "windows":
            d["windows"] = self.windows
            d["feat_stride"] = _number(self.feat_stride)
            d["window_frames"] = _number(self.window_frames)
        d.update(video_frames=self.video_frames, target_fps=self.target_fps, mode=self.mode,
                 pool=self.pool, views=self.views, path=self.path)  # fmt: skip
        if self.features is not None:
            d["dtype"] = str(self.features.dtype)
        if self.error is not None:
            d["error"] = self.error
        return d


def _number(x: float | None) -> float | int | None:
    """An integral frame count as an int (ActionFormer's configs want ints), else 4 decimals."""
    if x is None:
        return None
    return int(round(x)) if abs(x - round(x)) < 1e-6 else round(float(x), 4)


# ---------------------------------------------------------------------------- settings
def clip_settings(
    model: nn.Module,
    settings: Preprocess | None = None,
    *,
    num_frames: int | None = None,
    img_size: int | None = None,
    sampling_rate: int | None = None,
) -> Preprocess:
    """How clips are cut for `model`: `settings` (from `load_for_inference`), else the model's
    preprocessing contract (`model.preprocess`) when it carries one, else the model config
    with the official sampling rate; the non-None overrides win.

    The one place that reads the contract, so that moving to `model.preprocess` is one edit.
    """
    st = settings if settings is not None else preprocess_of(model)
    return st.with_overrides(
        source="argument", num_frames=num_frames, img_size=img_size, sampling_rate=sampling_rate
    )


def default_views(model: nn.Module, mode: str) -> tuple[int, int]:
    """(K, S): the contract's test views for a whole video (else 1x3, as predict); windows: 1x1."""
    if mode == "windows":
        return (1, 1)
    pre = getattr(model, "preprocess", None)
    return tuple(pre.test_views) if pre is not None else (1, 3)  # type: ignore[return-value]


def parse_views(
    views: str | tuple[int, int] | None, model: nn.Module, mode: str
) -> tuple[int, int]:
    """(K, S) from "KxS", a pair, or None (the default for `mode`). S must be 1 or 3."""
    if views is None:
        return default_views(model, mode)
    if isinstance(views, str):
        from .config import parse_views as parse

        k, s = parse(views, "views")
    else:
        k, s = int(views[0]), int(views[1])
    if k < 1 or s not in (1, 3):
        raise ValueError(f"views={views!r}: expected K >= 1 temporal clips x S = 1 or 3 crops")
    if mode == "windows" and k != 1:
        raise ValueError(f"views={views!r}: windows mode takes 1xS (the windows are the clips)")
    return k, s


# ---------------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class _Plan:
    """What the decoding workers need to know (picklable)."""

    st: Preprocess
    mode: str
    K: int
    S: int
    stride: float | None


def video_clips(
    plan: _Plan,
    total: int,
    fps: float,
    duration: float,
    time_of: Callable[[float], float] | None = None,
) -> tuple[list, dict]:
    """Frame indices of every clip of a video and the metadata of its rows. `time_of` maps a
    frame position to seconds by the video's timestamps (default: position / fps)."""
    from ..data import clip_span, contract_views, cover_clips

    st = plan.st
    meta: dict[str, Any] = {}
    at = time_of or (lambda pos: pos / fps)
    if plan.mode == "windows":
        span = max(clip_span(st.num_frames, st.sampling_rate, fps, st.target_fps), 1.0)
        step = span if plan.stride is None else float(plan.stride)
        clips = cover_clips(total, st.num_frames, st.sampling_rate, fps,
                            target_fps=st.target_fps, stride=plan.stride)  # fmt: skip
        meta["windows"] = [
            [round(min(at(j * step), duration), 6), round(min(at(j * step + span), duration), 6)]
            for j in range(len(clips))
        ]
        meta["feat_stride"], meta["window_frames"] = step, span
    else:
        views = contract_views(st, total, fps, num_clips=plan.K, num_crops=1)
        clips = [list(v.indices) for v in views]
    return clips, meta


class _ClipStream(IterableDataset):
    """Yields, per video: ("start", pos, meta, n_clips), then ("clip", pos, j, crops (S, 3, T,
    s, s)) for each clip, or ("error", pos, message). Worker w takes videos w, w + W, ..."""

    def __init__(self, paths: list[str], plan: _Plan) -> None:
        self.paths, self.plan = paths, plan

    def __iter__(self) -> Iterator[tuple]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        for pos in range(wid, len(self.paths), nw):
            yield from self._video(pos)

    def _video(self, pos: int) -> Iterator[tuple]:
        from ..data import VideoReader, contract_transform

        st, path = self.plan.st, self.paths[pos]
        try:
            with VideoReader(path) as reader:
                fps, duration, total = float(reader.fps), float(reader.duration), reader.num_frames
                clips, meta = video_clips(self.plan, total, fps, duration, reader.time_of)
                meta.update(fps=fps, duration=duration, video_frames=int(total))
                yield ("start", pos, meta, len(clips))
                tf = contract_transform(st, self.plan.S)
                seen = 0
                for j, frames in reader.iter_clips(clips):  # (T, H, W, 3) uint8, decoded once
                    yield ("clip", pos, j, tf(frames))  # (S, 3, T, s, s)
                    seen += 1
                if seen < len(clips):
                    raise RuntimeError(f"{path}: decoding stopped at clip {seen} of {len(clips)}")
        except Exception as e:  # noqa: BLE001 - every failure is reported for this video only
            text = str(e).strip().splitlines()
            tb = traceback.format_exc()  # text: a worker's exception does not cross processes
            yield ("error", pos, text[0] if text else type(e).__name__, tb)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers: one thread each, the model has the rest


# ---------------------------------------------------------------------------- extraction
def _as_inputs(videos: Any) -> list[VideoInput]:
    if isinstance(videos, (str, Path, VideoInput)):
        videos = [videos]
    out = []
    for v in videos:
        out.append(v if isinstance(v, VideoInput) else VideoInput(Path(v), Path(v).name))
    return out


@torch.no_grad()
def iter_extract(
    model: nn.Module,
    videos: str | Path | VideoInput | Sequence[str | Path | VideoInput],
    *,
    mode: str = "video",
    views: str | tuple[int, int] | None = None,
    stride: float | None = None,
    pool: str = "cls",
    dtype: str = "fp32",
    batch_size: int = 8,
    device: str | torch.device | None = None,
    amp: str = "off",
    settings: Preprocess | None = None,
    num_frames: int | None = None,
    sampling_rate: int | None = None,
    workers: int = 0,
    progress: bool = False,
) -> Iterator[VideoFeatures]:
    """Features of each video, yielded as each is finished (not necessarily in input order).

    mode "video": (D,) per video, the mean over `views` "KxS" (default: the model's contract,
    else 1x3). mode "windows": (windows, D), consecutive windows covering the video (`views`
    1xS crops per window), `stride` frames apart (default: one window span, no overlap).
    pool: "cls" (class token) or "mean" (patch tokens). dtype: "fp32" or "fp16" arrays.
    Clips are cut as `settings` say (`load_for_inference`), else as `clip_settings` finds;
    `num_frames` / `sampling_rate` override. `batch_size` model inputs per forward pass, on
    `device` (default: the model's), under `amp` autocast; `workers` decoding processes.
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
    if pool not in POOLS:
        raise ValueError(f"pool={pool!r}: expected one of {', '.join(POOLS)}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0; got {workers}")
    if stride is not None and (mode != "windows" or stride <= 0):
        raise ValueError(f"stride={stride}: a positive frame count, with mode='windows' only")
    st = clip_settings(model, settings, num_frames=num_frames, sampling_rate=sampling_rate)
    K, S = parse_views(views, model, mode)
    inputs = _as_inputs(videos)
    plan = _Plan(st, mode, K, S, None if stride is None else float(stride))
    dev = (
        pick_device(device, what="device")
        if device is not None
        else next(model.parameters()).device
    )
    autocast(dev, amp)  # a bad --amp for this device fails here, before any decoding
    base = dict(num_frames=st.num_frames, sampling_rate=st.sampling_rate,
                target_fps=st.target_fps, mode=mode, pool=pool, views=f"{K}x{S}")  # fmt: skip
    loader = DataLoader(
        _ClipStream([str(v.path) for v in inputs], plan),
        batch_size=None,
        num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=2 if workers else None,
    )
    runner = _Batcher(model, dev, amp, pool, S, batch_size)
    state: dict[int, dict[str, Any]] = {}  # pos -> {"meta", "n", "rows"}
    bar = _bar(len(inputs), progress)
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    clips_done = 0

    def finished(pos: int, error: str | None = None, tb: str | None = None) -> VideoFeatures:
        s = state.pop(pos, None) or {"meta": {}, "rows": {}}
        v = inputs[pos]
        meta = {k: val for k, val in s["meta"].items() if k in _META}
        if error is not None:
            return VideoFeatures(str(v.name), str(v.path), "failed", error=error, position=pos,
                                 traceback=tb, **meta, **base)  # fmt: skip
        rows = torch.stack([s["rows"][j] for j in range(s["n"])])  # (J, D)
        feats = rows.mean(0) if mode == "video" else rows  # (D,) or (J, D)
        return VideoFeatures(str(v.name), str(v.path), "ok",
                             features=feats.numpy().astype(DTYPES[dtype]),
                             num_clips=s["n"] * S, position=pos, **meta, **base)  # fmt: skip

    def complete(done: list[int]) -> Iterator[VideoFeatures]:
        nonlocal clips_done
        for pos in done:
            out = finished(pos)
            clips_done += out.num_clips
            yield out
            _tick(bar, clips_done, t0)

    try:
        for item in loader:
            kind, pos = item[0], int(item[1])
            if kind == "start":
                state[pos] = {"meta": item[2], "n": int(item[3]), "rows": {}}
            elif kind == "error":
                runner.drop(pos)
                yield finished(pos, item[2], item[3])
                _tick(bar, clips_done, t0)
            elif pos in state:
                for p, j, row in runner.add(pos, int(item[2]), item[3]):
                    if p in state:
                        state[p]["rows"][j] = row
                yield from complete(_ready(state, runner))
        for p, j, row in runner.flush():
            if p in state:
                state[p]["rows"][j] = row
        yield from complete(_ready(state, runner))
        for pos in sorted(state):  # streams that ended early without an error item
            yield finished(pos, f"{inputs[pos].path}: decoding stopped early")
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()


_META = ("fps", "duration", "video_frames", "windows", "feat_stride", "window_frames")


def _ready(state: dict[int, dict[str, Any]], runner: _Batcher) -> list[int]:
    """Videos whose every clip has its features (none left in the pending batch)."""
    return [p for p, s in state.items() if len(s["rows"]) == s["n"] and not runner.holds(p)]


class _Batcher:
    """Collects clips of any videos into batches of `batch_size` model inputs and runs them."""

    def __init__(self, model: nn.Module, dev: torch.device, amp: str, pool: str, S: int,
                 batch_size: int) -> None:  # fmt: skip
        self.model, self.dev, self.amp, self.pool, self.S = model, dev, amp, pool, S
        self.batch_size = batch_size
        self.pending: list[tuple[int, int, Tensor]] = []  # (video pos, clip j, (S, 3, T, s, s))

    def holds(self, pos: int) -> bool:
        return any(p == pos for p, _, _ in self.pending)

    def drop(self, pos: int) -> None:
        self.pending = [e for e in self.pending if e[0] != pos]

    def add(self, pos: int, j: int, crops: Tensor) -> list[tuple[int, int, Tensor]]:
        self.pending.append((pos, j, crops))
        if len(self.pending) * self.S >= self.batch_size:
            return self.flush()
        return []

    def flush(self) -> list[tuple[int, int, Tensor]]:
        """Features (D,) per pending clip, the mean over its S crops."""
        if not self.pending:
            return []
        x = torch.cat([c for _, _, c in self.pending])  # (n*S, 3, T, s, s)
        with autocast(self.dev, self.amp):
            f = self.model.forward_features(x.to(self.dev), pool=self.pool)  # (n*S, D)
        f = f.float().cpu().view(len(self.pending), self.S, -1).mean(1)  # (n, D)
        out = [(p, j, row) for (p, j, _), row in zip(self.pending, f)]
        self.pending = []
        return out


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="extract", unit="video", dynamic_ncols=True)


def _tick(bar: Any, clips: int, t0: float) -> None:
    if bar is not None:
        bar.update(1)
        bar.set_postfix_str(f"{clips / max(time.perf_counter() - t0, 1e-9):.1f} clips/s")


def extract(
    model: nn.Module,
    videos: str | Path | VideoInput | Sequence[str | Path | VideoInput],
    **options: Any,
) -> list[VideoFeatures]:
    """Features of `videos` (paths or `VideoInput`s) in input order, one `VideoFeatures` each.

    `options` are `iter_extract`'s (mode, views, stride, pool, dtype, batch_size, device, amp,
    settings, num_frames, sampling_rate, workers, progress): mode "video" gives (D,) per video,
    the mean over the test views; mode "windows" (windows, D) over consecutive windows.
    """
    inputs = _as_inputs(videos)
    got = {vf.position: vf for vf in iter_extract(model, inputs, **options)}
    return [got[i] for i in range(len(inputs))]


def clips_per_second(results: Sequence[VideoFeatures], seconds: float) -> float:
    """Model inputs per second over a run (the summary's throughput)."""
    return sum(r.num_clips for r in results) / seconds if seconds > 0 else math.nan
