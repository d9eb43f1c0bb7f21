"""Inference on video files: top-k labels from a few test views, or over a whole long video.

- `predict(model, path, ...)` -> `Prediction`: K temporal x S spatial views (default: the
  model's contract, `model.preprocess.test_views`), cut by its test protocol; "official"
  combines the views by summed logits (softmax of the mean logit), "centred" by mean softmax.
- `predict(..., long=True)`: consecutive non-overlapping clips cover the whole video (the
  paper's long-video protocol); clips are decoded as a stream (`VideoReader.iter_clips`) and
  classified in batches as they arrive, so memory stays bounded on an hour-long file. The video
  label is the mean of the clip probabilities; `Prediction.clips` is the per-clip timeline.
- `load_for_inference(checkpoint)` -> (model, `Preprocess`): any checkpoint format that
  `from_pretrained` reads (or a Hugging Face Hub id), plus the preprocessing contract it
  stores (`model.preprocess`), with command-line overrides recorded in its `sources`.
  `InferenceSettings` is the former name of that contract (now `Preprocess` itself).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..models.preprocess import (  # noqa: F401
    OFFICIAL_SAMPLING_RATES,
    Preprocess,
    default_sampling_rate,
    preprocess_of,
)
from .distributed import pick_device
from .runtime import autocast

InferenceSettings = Preprocess  # the former name: clip settings are the contract itself


@dataclass
class ClipPrediction:
    """One clip of a long-video timeline: its time range (seconds) and top labels."""

    start: float
    end: float
    label: str
    prob: float
    topk: list[tuple[str, float]]


@dataclass
class Prediction:
    """Top-k labels of one video (probabilities averaged over its views or clips)."""

    path: str
    topk: list[tuple[str, float]]  # (class name, probability), best first
    probs: Tensor = field(repr=False)  # (C,) mean probability per class
    views: str  # "KxS", or "long" for the whole-video cover
    num_clips: int  # model inputs classified (views, or clips x crops)
    duration: float  # seconds
    fps: float
    clips: list[ClipPrediction] | None = None  # the timeline (long mode)
    clip_probs: Tensor | None = field(default=None, repr=False)  # (clips, C), long mode

    @property
    def label(self) -> str:
        return self.topk[0][0]

    @property
    def prob(self) -> float:
        return self.topk[0][1]

    def segments(self) -> list[ClipPrediction]:
        """The timeline with consecutive clips of the same top label merged (mean prob)."""
        out: list[ClipPrediction] = []
        runs: list[int] = []
        for c in self.clips or []:
            if out and out[-1].label == c.label:
                n = runs[-1]
                last = out[-1]
                out[-1] = replace(last, end=c.end, prob=(last.prob * n + c.prob) / (n + 1))
                runs[-1] = n + 1
            else:
                out.append(replace(c, topk=[]))
                runs.append(1)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: path, top-k as [{"label", "prob"}], views, duration, fps, clips."""
        d: dict[str, Any] = {
            "path": self.path,
            "label": self.label,
            "prob": self.prob,
            "topk": [{"label": n, "prob": p} for n, p in self.topk],
            "views": self.views,
            "num_clips": self.num_clips,
            "duration": self.duration,
            "fps": self.fps,
        }
        if self.clips is not None:
            d["clips"] = [
                {
                    "start": c.start,
                    "end": c.end,
                    "label": c.label,
                    "prob": c.prob,
                    "topk": [{"label": n, "prob": p} for n, p in c.topk],
                }
                for c in self.clips
            ]
        return d


# ---------------------------------------------------------------------------- labels
def resolve_labels(model: nn.Module, labels: str | Path | Sequence[str] | None = None) -> list[str]:
    """Class names for the model's head, in this order of preference: `labels` (a file, as
    `load_label_names` reads, or a list), the names stored in the checkpoint config, the
    bundled Kinetics-400 list for a 400-way head, else "class_<i>"."""
    from ..data import load_label_names

    num_classes = int(model.config.num_classes)
    if labels is not None:
        if isinstance(labels, (str, Path)):
            names = load_label_names(labels, num_classes)
        else:
            names = list(labels)
        if names is None or len(names) != num_classes:
            got = "none" if names is None else len(names)
            raise ValueError(f"labels {labels}: {got} names for a {num_classes}-way model")
        return list(names)
    stored = getattr(model.config, "labels", None)
    if stored and len(stored) == num_classes:
        return list(stored)
    contract = getattr(getattr(model, "preprocess", None), "class_names", None)
    if contract and len(contract) == num_classes:  # a model given its contract in memory
        return list(contract)
    bundled = load_label_names(None, num_classes) if num_classes == 400 else None
    if bundled:
        return list(bundled)
    return [f"class_{i}" for i in range(num_classes)]


# ---------------------------------------------------------------------------- checkpoints
def load_for_inference(
    checkpoint: str | Path,
    *,
    num_frames: int | None = None,
    img_size: int | None = None,
    sampling_rate: int | None = None,
    sampler: str | None = None,
    protocol: str | None = None,
    views: str | tuple[int, int] | None = None,
    device: str | torch.device = "cpu",
    allow_pickle: bool = False,
    source: str = "command line",
) -> tuple[nn.Module, Preprocess]:
    """Load any checkpoint `from_pretrained` accepts (ours, official .pyth, Hugging Face
    directory or Hub id, safetensors) in eval mode, with its preprocessing contract.

    The contract is what the checkpoint stores (`model.preprocess`, see
    `models.weights.read_preprocess`); the non-None arguments override it and are recorded
    as coming from `source`. `num_frames` / `img_size` also rebuild the model for that
    geometry (the embeddings are resampled).
    `allow_pickle=True` reads torch files that only full unpickling reads (runs code from the
    file: only for files you trust).
    """
    from ..models.weights import from_pretrained

    overrides: dict[str, Any] = {}
    if num_frames is not None:
        overrides["num_frames"] = int(num_frames)
    if img_size is not None:
        overrides["img_size"] = int(img_size)
    model = from_pretrained(checkpoint, allow_pickle=allow_pickle, **overrides)
    model.to(device).eval()
    pre = preprocess_of(model).with_overrides(
        source=source, num_frames=num_frames, img_size=img_size, sampling_rate=sampling_rate,
        sampler=sampler, test_protocol=protocol, views=views,
    )  # fmt: skip
    return model, pre


# ---------------------------------------------------------------------------- prediction
def _settings_for(model: nn.Module, settings: Preprocess | None) -> Preprocess:
    return settings if settings is not None else preprocess_of(model)


def _topk(probs: Tensor, names: Sequence[str], k: int) -> list[tuple[str, float]]:
    vals, idx = probs.topk(min(k, probs.numel()))
    return [(names[i], float(v)) for v, i in zip(vals.tolist(), idx.tolist())]


def _parse_views(views: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(views, str):
        from .config import parse_views

        return parse_views(views, "views")
    k, s = views
    if k < 1 or s not in (1, 3):
        raise ValueError(f"views={views!r}: expected K >= 1 temporal clips x S = 1 or 3 crops")
    return int(k), int(s)


@torch.no_grad()
def predict(
    model: nn.Module,
    video_path: str | Path,
    *,
    topk: int = 5,
    views: str | tuple[int, int] | None = None,
    long: bool = False,
    settings: Preprocess | None = None,
    protocol: str | None = None,
    num_frames: int | None = None,
    img_size: int | None = None,
    sampling_rate: int | None = None,
    labels: str | Path | Sequence[str] | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    amp: str = "off",
    progress: bool = False,
    on_clip: Callable[[ClipPrediction], None] | None = None,
    upright: bool = True,
) -> Prediction:
    """Classify one video file with `model` and return its top-k labels.

    Standard mode: `views` "KxS" = K temporal clips over the video x S spatial crops (1 centre,
    or 3; default: the contract's test_views), placed and cropped by `protocol` (default: the
    contract's test_protocol); "official" ranks by the summed logits of the views (probs: the
    softmax of their mean logit), "centred" averages the view probabilities. `long=True`: consecutive clips
    cover the whole video (S crops each, S from `views`), decoded as a stream and classified
    `batch_size` inputs at a time; the label is the mean over clips and `Prediction.clips` is
    the timeline (`progress`: a progress bar over the clips on stderr; `on_clip` is called with
    each ClipPrediction as soon as it is classified, in order, so a timeline can be written as
    it goes). Clips are cut as
    `settings` say (a `Preprocess`, see `load_for_inference`), else as `model.preprocess`
    says (what `from_pretrained` read from the checkpoint); `num_frames`, `img_size`,
    `sampling_rate`, `protocol` override it. Inputs go to `device` (default: the device the
    model's parameters are on; the model itself is not moved).

    Raises `VideoDecodeError` (a RuntimeError naming the file) for a missing or unreadable video,
    ValueError for a model without a classification head (`models.require_head`).
    """
    from ..data import VideoReader
    from ..models.timesformer import require_head

    require_head(model)  # top-k of nothing: refused before any video is opened
    st = _settings_for(model, settings).with_overrides(
        source="argument", num_frames=num_frames, img_size=img_size,
        sampling_rate=sampling_rate, test_protocol=protocol,
    )  # fmt: skip
    if views is None:
        views = "1x1" if long else st.test_views
    K, S = _parse_views(views)
    names = resolve_labels(model, labels)
    dev = (
        pick_device(device, what="device")
        if device is not None
        else next(model.parameters()).device
    )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if topk < 1:
        raise ValueError(f"topk must be >= 1; got {topk}")
    if long and K != 1:
        raise ValueError(f"views={views!r} with long=True: K must be 1 (the clips cover the video)")
    path = Path(video_path)
    from ..data.video import check_video_file

    check_video_file(path)
    was_training = model.training
    model.eval()
    try:
        with VideoReader(path, upright=upright) as reader:  # upright: display rotation applied
            fps = float(reader.fps)
            duration = float(reader.duration)
            total = int(reader.num_frames)
            job = _Job(model, reader, st, names, topk, batch_size, dev, amp, str(video_path),
                       fps, duration, total)  # fmt: skip
            if long:
                return _predict_long(job, S, progress, on_clip)
            return _predict_views(job, K, S)
    finally:
        model.train(was_training)


def _transform(st: Preprocess, num_crops: int) -> Any:
    from ..data import contract_transform

    return contract_transform(st, num_crops)


def _run(model: nn.Module, x: Tensor, dev: torch.device, amp: str) -> Tensor:
    """Logits (N, C) float32 on the CPU for inputs (N, 3, T, S, S)."""
    with autocast(dev, amp):
        logits = model(x.to(dev))  # (N, C)
    return logits.float().cpu()


@dataclass
class _Job:
    """One video being predicted: the model, its open reader and how to run it."""

    model: nn.Module
    reader: Any
    st: Preprocess
    names: list[str]
    topk: int
    batch_size: int
    dev: torch.device
    amp: str
    path: str
    fps: float
    duration: float
    total: int  # frames in the video

    def run(self, x: Tensor) -> Tensor:
        """Probabilities (N, C) on the CPU for inputs (N, 3, T, S, S)."""
        return _run(self.model, x, self.dev, self.amp).softmax(dim=1)

    def logits(self, x: Tensor) -> Tensor:
        """Logits (N, C) on the CPU for inputs (N, 3, T, S, S)."""
        return _run(self.model, x, self.dev, self.amp)

    def prediction(self, probs: Tensor, views: str, num_clips: int, **kw: Any) -> Prediction:
        """The video's Prediction from its mean probabilities (C,)."""
        return Prediction(path=self.path, topk=_topk(probs, self.names, self.topk), probs=probs,
                          views=views, num_clips=num_clips, duration=self.duration, fps=self.fps,
                          **kw)  # fmt: skip


def _predict_views(job: _Job, K: int, S: int) -> Prediction:
    """K temporal clips x S crops, combined as the contract's protocol says."""
    from ..data import contract_views

    st = job.st
    views = contract_views(st, job.total, job.fps, num_clips=K, num_crops=S)
    transform = _transform(st, S)
    by_clip: dict[int, tuple[int, ...]] = {}
    for v in views:
        by_clip.setdefault(v.clip, v.indices)
    logits: list[Tensor] = []
    pending: list[Tensor] = []
    for clip in sorted(by_clip):
        frames = job.reader.get_frames(list(by_clip[clip]))  # (T, H, W, 3) uint8
        crops = transform(frames)  # (S, 3, T, s, s)
        pending.extend(crops.unbind(0))
        while len(pending) >= job.batch_size:
            logits.append(job.logits(torch.stack(pending[: job.batch_size])))
            pending = pending[job.batch_size :]
    if pending:
        logits.append(job.logits(torch.stack(pending)))
    z = torch.cat(logits)  # (K*S, C), views in clip-major order
    if st.aggregation == "sum_logits":  # official: summed logits rank; probs of their mean
        probs = z.mean(0).softmax(0)  # (C,)
    else:
        probs = z.softmax(1).mean(0)  # (C,) mean of the view probabilities
    return job.prediction(probs, f"{K}x{S}", z.shape[0])


def _predict_long(
    job: _Job, S: int, progress: bool = False, on_clip: Callable[..., None] | None = None
) -> Prediction:
    """Consecutive clips over the whole video (S crops each), decoded as a stream."""
    from ..data import clip_span, cover_clips

    st, fps, duration = job.st, job.fps, job.duration
    clips = cover_clips(job.total, st.num_frames, st.sampling_rate, fps, target_fps=st.target_fps)
    span = max(clip_span(st.num_frames, st.sampling_rate, fps, st.target_fps), 1.0)  # frames
    transform = _transform(st, S)
    clip_probs: list[Tensor | None] = [None] * len(clips)  # (C,) per clip, mean over crops
    pending: list[tuple[int, Tensor]] = []  # (clip position, crops (S, 3, T, s, s))
    # clip j covers frames [j * span, (j + 1) * span); its times are those frames' timestamps
    # (right for variable frame rates too); the last one ends with the video
    bounds = [min(job.reader.time_of(j * span), duration) for j in range(len(clips))]
    bounds.append(duration)

    def clip_at(j: int, row: Tensor) -> ClipPrediction:
        top = _topk(row, job.names, job.topk)
        return ClipPrediction(start=bounds[j], end=bounds[j + 1], label=top[0][0],
                              prob=top[0][1], topk=top)  # fmt: skip

    def flush() -> None:
        x = torch.cat([c for _, c in pending])  # (n*S, 3, T, s, s)
        p = job.run(x).view(len(pending), S, -1).mean(1)  # (n, C)
        for (j, _), row in zip(pending, p):
            clip_probs[j] = row
            if on_clip is not None:
                on_clip(clip_at(j, row))
        pending.clear()

    stream: Iterator[tuple[int, Tensor]] = job.reader.iter_clips(clips)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(clips), desc=Path(job.path).name, unit="clip", dynamic_ncols=True)
    try:
        for j, frames in stream:  # frames (T, H, W, 3) uint8, decoded once, in order
            pending.append((j, transform(frames)))
            if len(pending) * S >= job.batch_size:
                n = len(pending)
                flush()
                if bar is not None:
                    bar.update(n)
        if pending:
            n = len(pending)
            flush()
            if bar is not None:
                bar.update(n)
    finally:
        if bar is not None:
            bar.close()
    missing = [j for j, p in enumerate(clip_probs) if p is None]
    if missing:
        from ..data import VideoDecodeError

        raise VideoDecodeError(
            job.path, f"decoding stopped before clip {missing[0]} of {len(clips)}"
        )
    P = torch.stack(clip_probs)  # (J, C)
    mean = P.mean(0)  # (C,) the video label: mean over clips
    timeline = [clip_at(j, row) for j, row in enumerate(P)]
    return job.prediction(mean, f"long x{S}", len(clips) * S, clips=timeline, clip_probs=P)


def format_time(seconds: float) -> str:
    """Seconds as M:SS.s (or H:MM:SS.s past an hour)."""
    if not math.isfinite(seconds):
        return "?"
    h, rem = divmod(max(seconds, 0.0), 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h else f"{int(m)}:{s:04.1f}"


def settings_dict(st: Preprocess) -> dict[str, Any]:
    """JSON-ready view of the settings (the contract's values, `img_size`, `source`)."""
    d = {k: v for k, v in st.to_dict().items() if k != "sources"}
    d["img_size"], d["source"] = st.crop_size, st.source
    return d
