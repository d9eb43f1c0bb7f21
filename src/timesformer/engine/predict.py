"""Inference on video files: top-k labels from a few test views, or over a whole long video.

- `predict(model, path, ...)` -> `Prediction`: K temporal x S spatial views (default 1x3, the
  official test protocol), per-view probabilities averaged into the video's top-k.
- `predict(..., long=True)`: consecutive non-overlapping clips cover the whole video (the
  paper's long-video protocol); clips are decoded as a stream (`VideoReader.iter_clips`) and
  classified in batches as they arrive, so memory stays bounded on an hour-long file. The video
  label is the mean of the clip probabilities; `Prediction.clips` is the per-clip timeline.
- `load_for_inference(checkpoint)` -> (model, `InferenceSettings`): any checkpoint format that
  `from_pretrained` reads, plus the clip geometry it was trained with (frames, size, sampling
  rate, normalisation) when the checkpoint records it.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..models.weights import Checkpoint
from .runtime import autocast

# Official sampling rates of the released models (frames -> rate, PAPER.md); other frame
# counts keep the same span of about 256 frames at 30 fps.
OFFICIAL_SAMPLING_RATES = {8: 32, 16: 16, 96: 4}


def default_sampling_rate(num_frames: int) -> int:
    """Sampling rate for a model trained with unknown settings: the official one for 8, 16 and
    96 frames (32, 16, 4), else one that spans about 256 frames (8.5 s at 30 fps)."""
    return OFFICIAL_SAMPLING_RATES.get(num_frames, max(1, round(256 / max(num_frames, 1))))


@dataclass
class InferenceSettings:
    """How clips are cut and normalised for a model (what it was trained with)."""

    num_frames: int = 8
    img_size: int = 224
    sampling_rate: int = 32
    target_fps: float | None = 30.0  # None: count frames at the video's own rate
    sampler: str = "rate"  # "rate" or "segments" (SSv2)
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    channel_order: str = "rgb"
    source: str = "default"  # where the sampling settings came from

    def with_overrides(self, **kw: Any) -> InferenceSettings:
        """A copy with the non-None `kw` applied."""
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


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
    bundled = load_label_names(None, num_classes) if num_classes == 400 else None
    if bundled:
        return list(bundled)
    return [f"class_{i}" for i in range(num_classes)]


# ---------------------------------------------------------------------------- checkpoints
def checkpoint_settings(
    checkpoint: str | Path | Checkpoint, allow_pickle: bool = False
) -> dict[str, Any]:
    """Clip settings recorded in a checkpoint, if any: {"sampling_rate", "target_fps",
    "sampler", "mean", "std", "channel_order", "source"}.

    `checkpoint` is a path or a `Checkpoint` already read (`models.weights.read_checkpoint`),
    so nothing is read twice. Ours: its `train_config` (a RunConfig dict or YAML text).
    Official .pyth: its `cfg` YAML (DATA.SAMPLING_RATE, MEAN, STD; TRAIN.DATASET ssv2 ->
    segments). Hugging Face directory: the preprocessor_config.json beside its config.json.
    Missing pieces are simply absent. Recorded settings that cannot be read are a warning
    (RuntimeWarning naming the reason) and the defaults apply: visible, never silent.
    """
    from ..models.weights import read_checkpoint

    ck = (
        checkpoint
        if isinstance(checkpoint, Checkpoint)
        else read_checkpoint(checkpoint, allow_pickle=allow_pickle)
    )
    try:
        if ck.format == "ours":
            return _our_settings(ck.extra.get("train_config"))
        if ck.format == "official" and "cfg" in ck.extra:
            return _official_settings(ck.extra["cfg"])
        folder = Path(ck.source)
        if ck.format in ("hf", "hf_vit") and folder.is_dir():
            return _hf_settings(folder)
    except Exception as e:  # noqa: BLE001 - any unreadable record: warn, use the defaults
        _settings_warning(ck.source, f"{type(e).__name__}: {e}")
    return {}


def _settings_warning(source: Any, reason: str) -> None:
    warnings.warn(
        f"{source}: the recorded clip settings cannot be read ({reason.splitlines()[0]}); "
        "using the defaults (override with --sampling-rate / --sampler)",
        RuntimeWarning,
        stacklevel=3,
    )


def _our_settings(train_config: Any) -> dict[str, Any]:
    if train_config is None:
        return {}
    if isinstance(train_config, str):
        import yaml

        try:
            train_config = yaml.safe_load(train_config)
        except yaml.YAMLError as e:
            _settings_warning("train_config", f"not valid YAML: {e}")
            return {}
    if hasattr(train_config, "to_dict"):
        train_config = train_config.to_dict()
    if not isinstance(train_config, dict):
        return {}
    data = train_config.get("data") or {}
    out: dict[str, Any] = {"source": "checkpoint train_config"}
    for key in ("sampling_rate", "sampler", "channel_order", "num_frames", "crop_size"):
        if data.get(key) is not None:
            out[key] = data[key]
    if "target_fps" in data:
        out["target_fps"] = data["target_fps"]
    for key in ("mean", "std"):
        if data.get(key) is not None:
            out[key] = tuple(float(v) for v in data[key])
    return out


def _official_settings(cfg: Any) -> dict[str, Any]:
    import yaml

    if isinstance(cfg, str):
        try:
            cfg = yaml.safe_load(cfg)
        except yaml.YAMLError as e:
            _settings_warning("official cfg", f"not valid YAML: {e}")
            return {}
    if not isinstance(cfg, dict):
        try:  # a yacs CfgNode is a dict subclass; anything else we cannot read
            cfg = dict(cfg)
        except (TypeError, ValueError) as e:
            _settings_warning("official cfg", f"not a mapping: {e}")
            return {}
    data = cfg.get("DATA") or {}
    out: dict[str, Any] = {"source": "official cfg"}
    if data.get("SAMPLING_RATE"):
        out["sampling_rate"] = int(data["SAMPLING_RATE"])
    for key in ("MEAN", "STD"):
        if data.get(key):
            out[key.lower()] = tuple(float(v) for v in data[key])
    dataset = str((cfg.get("TEST") or {}).get("DATASET") or (cfg.get("TRAIN") or {}).get("DATASET"))
    if dataset.lower() == "ssv2":
        out["sampler"] = "segments"
    return out


def _hf_settings(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        try:
            d = json.loads(pre.read_text())
        except json.JSONDecodeError as e:
            _settings_warning(pre, f"not valid JSON: {e}")
            return out
        for src, key in (("image_mean", "mean"), ("image_std", "std")):
            v = d.get(src)
            if isinstance(v, (list, tuple)) and len(v) == 3:
                out[key] = tuple(float(x) for x in v)
        if out:
            out["source"] = "preprocessor_config.json"
    return out


def load_for_inference(
    checkpoint: str | Path,
    *,
    num_frames: int | None = None,
    img_size: int | None = None,
    sampling_rate: int | None = None,
    device: str | torch.device = "cpu",
    allow_pickle: bool = False,
) -> tuple[nn.Module, InferenceSettings]:
    """Load any checkpoint `from_pretrained` accepts (ours, official .pyth, Hugging Face
    directory, safetensors) in eval mode, with the settings to cut clips for it.

    Geometry comes from the checkpoint config; `num_frames` / `img_size` override it (the
    embeddings are resampled). The sampling rate is `sampling_rate`, else the one recorded in
    the checkpoint (our train_config, the official cfg), else `default_sampling_rate`.
    `allow_pickle=True` reads torch files that only full unpickling reads (runs code from the
    file: only for files you trust).
    """
    from ..models.weights import from_pretrained, read_checkpoint

    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found")
    overrides: dict[str, Any] = {}
    if num_frames is not None:
        overrides["num_frames"] = int(num_frames)
    if img_size is not None:
        overrides["img_size"] = int(img_size)
    # read once: the weights and the recorded settings
    ck = read_checkpoint(path, allow_pickle=allow_pickle)
    hints = checkpoint_settings(ck)
    model = from_pretrained(ck, **overrides)
    model.to(device).eval()
    cfg = model.config
    h, w = (cfg.img_size, cfg.img_size) if isinstance(cfg.img_size, int) else cfg.img_size
    settings = InferenceSettings(num_frames=cfg.num_frames, img_size=min(h, w))
    for key in ("sampler", "mean", "std", "channel_order", "target_fps", "source"):
        if key in hints:
            settings = replace(settings, **{key: hints[key]})
    if sampling_rate is not None:
        settings = replace(settings, sampling_rate=int(sampling_rate), source="command line")
    elif "sampling_rate" in hints:
        settings = replace(settings, sampling_rate=int(hints["sampling_rate"]))
    else:
        settings = replace(
            settings, sampling_rate=default_sampling_rate(settings.num_frames), source="default"
        )
    return model, settings


# ---------------------------------------------------------------------------- prediction
def _settings_for(model: nn.Module, settings: InferenceSettings | None) -> InferenceSettings:
    if settings is not None:
        return settings
    cfg = model.config
    size = cfg.img_size if isinstance(cfg.img_size, int) else min(cfg.img_size)
    return InferenceSettings(
        num_frames=cfg.num_frames,
        img_size=size,
        sampling_rate=default_sampling_rate(cfg.num_frames),
    )


def _topk(probs: Tensor, names: Sequence[str], k: int) -> list[tuple[str, float]]:
    vals, idx = probs.topk(min(k, probs.numel()))
    return [(names[i], float(v)) for v, i in zip(vals.tolist(), idx.tolist())]


def _parse_views(views: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(views, str):
        from .config import parse_views

        return parse_views(views, "views")
    k, s = views
    if k < 1 or s < 1:
        raise ValueError(f"views={views!r}: both view counts must be >= 1")
    return int(k), int(s)


@torch.no_grad()
def predict(
    model: nn.Module,
    video_path: str | Path,
    *,
    topk: int = 5,
    views: str | tuple[int, int] = "1x3",
    long: bool = False,
    settings: InferenceSettings | None = None,
    num_frames: int | None = None,
    img_size: int | None = None,
    sampling_rate: int | None = None,
    labels: str | Path | Sequence[str] | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    amp: str = "off",
    progress: bool = False,
    on_clip: Callable[[ClipPrediction], None] | None = None,
) -> Prediction:
    """Classify one video file with `model` and return its top-k labels.

    Standard mode: `views` "KxS" = K temporal clips evenly over the video x S spatial crops
    (1 centre, or 3), probabilities averaged over the views. `long=True`: consecutive clips
    cover the whole video (S crops each, S from `views`), decoded as a stream and classified
    `batch_size` inputs at a time; the label is the mean over clips and `Prediction.clips` is
    the timeline (`progress`: a progress bar over the clips on stderr; `on_clip` is called with
    each ClipPrediction as soon as it is classified, in order, so a timeline can be written as
    it goes). Clip geometry comes
    from `settings` (see `load_for_inference`), else from the model config; `num_frames`,
    `img_size`, `sampling_rate` override it. Inputs go to `device` (default: the device the
    model's parameters are on; the model itself is not moved).

    Raises `VideoDecodeError` (a RuntimeError naming the file) for a missing or unreadable video.
    """
    from ..data import VideoDecodeError, VideoReader

    st = _settings_for(model, settings).with_overrides(
        num_frames=num_frames, img_size=img_size, sampling_rate=sampling_rate
    )
    K, S = _parse_views(views)
    names = resolve_labels(model, labels)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    path = Path(video_path)
    if not path.is_file():
        raise VideoDecodeError(path, "no such file")
    was_training = model.training
    model.eval()
    try:
        with VideoReader(path) as reader:
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


def _transform(st: InferenceSettings, num_crops: int) -> Any:
    from ..data import TestTransform

    return TestTransform(
        crop_size=st.img_size,
        num_crops=num_crops,
        mean=st.mean,
        std=st.std,
        channel_order=st.channel_order,
    )


def _run(model: nn.Module, x: Tensor, dev: torch.device, amp: str) -> Tensor:
    """Probabilities (N, C) float32 on the CPU for inputs (N, 3, T, S, S)."""
    with autocast(dev, amp):
        logits = model(x.to(dev))  # (N, C)
    return logits.float().softmax(dim=1).cpu()


@dataclass
class _Job:
    """One video being predicted: the model, its open reader and how to run it."""

    model: nn.Module
    reader: Any
    st: InferenceSettings
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
        return _run(self.model, x, self.dev, self.amp)

    def prediction(self, probs: Tensor, views: str, num_clips: int, **kw: Any) -> Prediction:
        """The video's Prediction from its mean probabilities (C,)."""
        return Prediction(path=self.path, topk=_topk(probs, self.names, self.topk), probs=probs,
                          views=views, num_clips=num_clips, duration=self.duration, fps=self.fps,
                          **kw)  # fmt: skip


def _predict_views(job: _Job, K: int, S: int) -> Prediction:
    """K temporal clips x S crops, probabilities averaged over the views."""
    from ..data import test_views

    st = job.st
    views = test_views(  # target_fps None: the sampler counts the video's own frames
        job.total, st.num_frames, st.sampling_rate, job.fps,
        num_clips=K, num_crops=S, sampler=st.sampler, target_fps=st.target_fps,
    )  # fmt: skip
    transform = _transform(st, S)
    by_clip: dict[int, tuple[int, ...]] = {}
    for v in views:
        by_clip.setdefault(v.clip, v.indices)
    probs: list[Tensor] = []
    pending: list[Tensor] = []
    for clip in sorted(by_clip):
        frames = job.reader.get_frames(list(by_clip[clip]))  # (T, H, W, 3) uint8
        crops = transform(frames)  # (S, 3, T, s, s)
        pending.extend(crops.unbind(0))
        while len(pending) >= job.batch_size:
            probs.append(job.run(torch.stack(pending[: job.batch_size])))
            pending = pending[job.batch_size :]
    if pending:
        probs.append(job.run(torch.stack(pending)))
    p = torch.cat(probs)  # (K*S, C), views in clip-major order
    n = p.shape[0]
    mean = p.mean(0)  # (C,) mean of the view probabilities
    return job.prediction(mean, f"{K}x{S}", n)


def _predict_long(
    job: _Job, S: int, progress: bool = False, on_clip: Callable[..., None] | None = None
) -> Prediction:
    """Consecutive clips over the whole video (S crops each), decoded as a stream."""
    from ..data import clip_span, cover_clips

    st, fps, duration = job.st, job.fps, job.duration
    clips = cover_clips(job.total, st.num_frames, st.sampling_rate, fps, target_fps=st.target_fps)
    span = clip_span(st.num_frames, st.sampling_rate, fps, st.target_fps)  # frames per clip
    transform = _transform(st, S)
    clip_probs: list[Tensor | None] = [None] * len(clips)  # (C,) per clip, mean over crops
    pending: list[tuple[int, Tensor]] = []  # (clip position, crops (S, 3, T, s, s))
    # clip j covers frames [j * span, (j + 1) * span); the last one ends with the video
    bounds = [min(j * span / fps, duration) for j in range(len(clips))] + [duration]

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


def settings_dict(st: InferenceSettings) -> dict[str, Any]:
    """JSON-ready view of the settings."""
    d = asdict(st)
    d["mean"], d["std"] = list(st.mean), list(st.std)
    return d
