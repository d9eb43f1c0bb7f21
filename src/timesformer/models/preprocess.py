"""The preprocessing contract: how a model's input clips were cut and normalised.

A trained model is only half of what predicts well: the other half is the frames it expects
(how many, how far apart, at what frame rate), their size and crop, their channel order and
normalisation, how test views are taken, and the class names. `Preprocess` holds all of it, the
model carries it (`model.preprocess`), every checkpoint writer stores it and every reader
restores it, so a model gives the same answer after it leaves the training run.

Formats: our .pt (a plain dict under "preprocess"), our .safetensors (JSON in the metadata),
Hugging Face (`preprocessor_config.json`: the real mean/std and sizes, plus our fields under
"timesformer_preprocess"), the official .pyth (`cfg` with DATA.* and TEST.* as the official
code writes them).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Official sampling rates of the released models (frames -> rate, PAPER.md); other frame
# counts keep the same span of about 256 frames at 30 fps.
OFFICIAL_SAMPLING_RATES = {8: 32, 16: 16, 96: 4}
SAMPLERS = ("rate", "segments")
CHANNEL_ORDERS = ("rgb", "bgr")
TEST_PROTOCOLS = ("official", "centred")
HF_KEY = "timesformer_preprocess"


def default_sampling_rate(num_frames: int) -> int:
    """Sampling rate for a model trained with unknown settings: the official one for 8, 16 and
    96 frames (32, 16, 4), else one that spans about 256 frames (8.5 s at 30 fps)."""
    return OFFICIAL_SAMPLING_RATES.get(num_frames, max(1, round(256 / max(num_frames, 1))))


@dataclass(frozen=True)
class Preprocess:
    """Everything needed to turn a video file into the model's input, as the model was trained.

    num_frames, sampling_rate: frames per clip and the gap between them, counted at
    `target_fps` (None: at the video's own rate). sampler: "rate" (Kinetics) or "segments" (one
    frame per equal segment, SSv2). short_side: the test-time resize of the short side before
    the `crop_size` crop (the training jitter's lower end, 256 officially). test_views: (K, S)
    temporal clips x spatial crops. test_protocol: "official" or "centred" (docs/inference.md).
    `sources` says where each field came from ("checkpoint train_config", "official cfg",
    "default", ...); it is informative only and not part of equality.
    """

    num_frames: int = 8
    sampling_rate: int = 32
    target_fps: float | None = 30.0
    sampler: str = "rate"
    short_side: int = 256
    crop_size: int = 224
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    channel_order: str = "rgb"
    test_views: tuple[int, int] = (1, 3)
    test_protocol: str = "official"
    class_names: tuple[str, ...] | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for k, v in _normalise(
            {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        ).items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "sources", dict(self.sources))
        self.validate()

    # ------------------------------------------------------------------ construction
    def validate(self) -> None:
        """Raise ValueError naming the field and the accepted values."""
        if self.num_frames < 1 or self.sampling_rate < 1:
            raise ValueError(
                f"preprocess: num_frames={self.num_frames} and sampling_rate="
                f"{self.sampling_rate} must be >= 1"
            )
        if self.sampler not in SAMPLERS:
            raise ValueError(f"preprocess: sampler={self.sampler!r}, expected one of {SAMPLERS}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(
                f"preprocess: channel_order={self.channel_order!r}, expected one of "
                f"{CHANNEL_ORDERS}"
            )
        if self.test_protocol not in TEST_PROTOCOLS:
            raise ValueError(
                f"preprocess: test_protocol={self.test_protocol!r}, expected one of "
                f"{TEST_PROTOCOLS}"
            )
        if len(self.mean) != 3:
            raise ValueError(f"preprocess: mean={self.mean}, expected 3 values")
        if len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"preprocess: std={self.std}, expected 3 values > 0")
        if self.crop_size < 1 or self.short_side < self.crop_size:
            raise ValueError(
                f"preprocess: short_side={self.short_side} must be >= crop_size={self.crop_size}"
            )
        if len(self.test_views) != 2 or min(self.test_views) < 1:
            raise ValueError(f"preprocess: test_views={self.test_views}, expected (K, S) >= 1")

    @classmethod
    def for_geometry(cls, num_frames: int, img_size: int, **kw: Any) -> Preprocess:
        """Defaults for a model of this geometry whose training settings are unknown."""
        short = max(img_size, round(img_size * 256 / 224))
        base: dict[str, Any] = {
            "num_frames": num_frames,
            "sampling_rate": default_sampling_rate(num_frames),
            "crop_size": img_size,
            "short_side": short,
        }
        base.update({k: v for k, v in kw.items() if v is not None})
        fields_ = {f.name for f in dataclasses.fields(cls)}
        srcs = {k: "default" for k in fields_ if k != "sources"}
        srcs.update({k: "given" for k, v in kw.items() if v is not None and k != "sources"})
        base["sources"] = srcs
        return cls(**base)

    def replace(self, source: str = "override", **kw: Any) -> Preprocess:
        """A copy with the non-None `kw` applied, recording `source` for each changed field."""
        kw = {k: v for k, v in kw.items() if v is not None}
        if not kw:
            return self
        unknown = set(kw) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"Preprocess has no field(s) {sorted(unknown)}")
        srcs = dict(self.sources)
        srcs.update({k: source for k in kw})
        return dataclasses.replace(self, **_normalise(kw), sources=srcs)

    @classmethod
    def from_train_config(
        cls,
        train_config: Any,
        num_frames: int,
        img_size: int,
        class_names: Sequence[str] | None = None,
        source: str = "checkpoint train_config",
    ) -> Preprocess:
        """The contract of a training run from its RunConfig (a dict, YAML text or object with
        `to_dict`): the `data` section's rate, fps, sampler, jitter, crop, stats, views and
        protocol. Geometry the section leaves open follows the model (`num_frames`, `img_size`).
        """
        tc = train_config
        if isinstance(tc, str):
            import yaml

            try:
                tc = yaml.safe_load(tc)
            except yaml.YAMLError:
                tc = None
        if hasattr(tc, "to_dict"):
            tc = tc.to_dict()
        data = tc.get("data") if isinstance(tc, Mapping) else None
        base = cls.for_geometry(num_frames, img_size, class_names=class_names)
        if not isinstance(data, Mapping):
            return base
        kw: dict[str, Any] = {}
        for key in ("sampling_rate", "sampler", "mean", "std", "channel_order", "test_protocol"):
            if data.get(key) is not None:
                kw[key] = data[key]
        if "target_fps" in data:
            kw["target_fps"] = data["target_fps"]
        kw["num_frames"] = data.get("num_frames") or num_frames
        kw["crop_size"] = data.get("crop_size") or img_size
        jitter = data.get("train_jitter")
        if isinstance(jitter, Sequence) and jitter:
            kw["short_side"] = max(int(jitter[0]), int(kw["crop_size"]))
        if data.get("test_views"):
            kw["test_views"] = data["test_views"]
        out = base.replace(source=source, **kw)
        if "target_fps" in kw and kw["target_fps"] is None:  # replace() skips None values
            out = dataclasses.replace(
                out, target_fps=None, sources={**out.sources, "target_fps": source}
            )
        return out

    # ------------------------------------------------------------------ views used by engines
    @property
    def img_size(self) -> int:
        """The crop size (the model's input side), under the name the engine uses."""
        return self.crop_size

    @property
    def source(self) -> str:
        """Where the sampling rate came from (the field most often lost on the way)."""
        return self.sources.get("sampling_rate", "default")

    @property
    def aggregation(self) -> str:
        """How test views combine: summed logits (official) or mean softmax (centred)."""
        return "sum_logits" if self.test_protocol == "official" else "mean_softmax"

    def with_overrides(self, source: str = "override", **kw: Any) -> Preprocess:
        """`replace` that also takes `img_size` (the crop size) and `views` ("KxS")."""
        if kw.get("img_size") is not None:
            size = int(kw.pop("img_size"))
            kw["crop_size"] = size
            # the short side keeps its ratio to the crop (256/224 for the usual contract, 1 for
            # a model trained on short side == crop), so the crop sees the same field of view
            ratio = self.short_side / self.crop_size if self.crop_size else 256 / 224
            kw.setdefault("short_side", max(size, round(size * ratio)))
        else:
            kw.pop("img_size", None)
        if kw.get("views") is not None:
            kw["test_views"] = kw.pop("views")
        else:
            kw.pop("views", None)
        return self.replace(source=source, **kw)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists); `sources` included."""
        d = dataclasses.asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["test_views"] = list(self.test_views)
        d["class_names"] = None if self.class_names is None else list(self.class_names)
        d["sources"] = dict(self.sources)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str | None = None) -> Preprocess:
        """Inverse of `to_dict`; unknown keys are ignored, missing ones take defaults.

        `source` (e.g. "checkpoint") is recorded for every field the dict held.
        """
        names = {f.name for f in dataclasses.fields(cls)} - {"sources"}
        kw = {k: d[k] for k in names if k in d and d[k] is not None or k == "target_fps" and k in d}
        srcs = dict(d.get("sources") or {})
        if source is not None:
            srcs.update({k: source for k in kw})
        return cls(**_normalise(kw), sources=srcs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str | None = None) -> Preprocess:
        return cls.from_dict(json.loads(text), source=source)

    # Hugging Face: preprocessor_config.json as VideoMAEImageProcessor reads it, plus our fields.
    def to_hf_preprocessor(self) -> dict[str, Any]:
        """The preprocessor_config.json of a Hugging Face export (real mean/std and sizes)."""
        return {
            "image_processor_type": "VideoMAEImageProcessor",
            "do_resize": True,
            "size": {"shortest_edge": self.short_side},
            "do_center_crop": True,
            "crop_size": {"height": self.crop_size, "width": self.crop_size},
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": list(self.mean),
            "image_std": list(self.std),
            "resample": 2,
            HF_KEY: {k: v for k, v in self.to_dict().items() if k not in ("sources",)},
        }

    @classmethod
    def from_hf_preprocessor(
        cls, d: Mapping[str, Any], num_frames: int, img_size: int
    ) -> Preprocess:
        """Read a Hugging Face preprocessor_config.json (ours carries every field)."""
        if isinstance(d.get(HF_KEY), Mapping):
            return cls.from_dict(d[HF_KEY], source="preprocessor_config.json")
        kw: dict[str, Any] = {}
        for key, name in (("image_mean", "mean"), ("image_std", "std")):
            if d.get(key) is not None:
                kw[name] = _hf_triple(d[key], key, positive=name == "std")
        if d.get("size") is not None:
            kw["short_side"] = _hf_side(d["size"], "size", ("shortest_edge", "height", "width"))
        if d.get("crop_size") is not None:
            kw["crop_size"] = _hf_side(d["crop_size"], "crop_size", ("height", "width"))
        base = cls.for_geometry(num_frames, img_size)
        kw["short_side"] = max(kw.get("short_side", base.short_side), kw.get("crop_size", img_size))
        return base.replace(source="preprocessor_config.json", **kw)

    # Official: the yacs cfg of a .pyth (DATA.*, TEST.*, TRAIN.DATASET).
    def to_official_cfg(self) -> dict[str, Any]:
        """The DATA/TEST part of an official cfg, as the official code writes it."""
        return {
            "DATA": {
                "NUM_FRAMES": self.num_frames,
                "SAMPLING_RATE": self.sampling_rate,
                "TARGET_FPS": self.target_fps if self.target_fps is not None else 30,
                "TRAIN_JITTER_SCALES": [self.short_side, round(self.short_side * 320 / 256)],
                "TRAIN_CROP_SIZE": self.crop_size,
                "TEST_CROP_SIZE": self.crop_size,
                "MEAN": list(self.mean),
                "STD": list(self.std),
                "INPUT_CHANNEL_NUM": [3],
                "REVERSE_INPUT_CHANNEL": self.channel_order == "bgr",
            },
            "TEST": {
                "NUM_ENSEMBLE_VIEWS": self.test_views[0],
                "NUM_SPATIAL_CROPS": self.test_views[1],
                "DATASET": "ssv2" if self.sampler == "segments" else "kinetics",
            },
            "TIMESFORMER_PREPROCESS": {k: v for k, v in self.to_dict().items() if k != "sources"},
        }

    @classmethod
    def from_official_cfg(
        cls, cfg: Mapping[str, Any], num_frames: int, img_size: int
    ) -> Preprocess:
        """Read an official cfg. SSv2 models were trained on BGR frames with segment sampling."""
        ours = cfg.get("TIMESFORMER_PREPROCESS")
        if isinstance(ours, Mapping):
            return cls.from_dict(ours, source="official cfg")
        data = cfg.get("DATA") or {}
        test = cfg.get("TEST") or {}
        train = cfg.get("TRAIN") or {}
        kw: dict[str, Any] = {}
        if data.get("NUM_FRAMES"):
            kw["num_frames"] = int(data["NUM_FRAMES"])
        if data.get("SAMPLING_RATE"):
            kw["sampling_rate"] = int(data["SAMPLING_RATE"])
        if data.get("TARGET_FPS"):
            kw["target_fps"] = float(data["TARGET_FPS"])
        for key in ("MEAN", "STD"):
            if data.get(key):
                kw[key.lower()] = data[key]
        jitter = data.get("TRAIN_JITTER_SCALES")
        if isinstance(jitter, Sequence) and jitter:
            kw["short_side"] = int(jitter[0])
        if data.get("TEST_CROP_SIZE"):
            kw["crop_size"] = int(data["TEST_CROP_SIZE"])
        k, s = test.get("NUM_ENSEMBLE_VIEWS"), test.get("NUM_SPATIAL_CROPS")
        if k and s:
            kw["test_views"] = (int(k), int(s))
        dataset = str(test.get("DATASET") or train.get("DATASET") or "").lower()
        if dataset == "ssv2":
            kw["sampler"] = "segments"
            kw["channel_order"] = "bgr"
        if data.get("REVERSE_INPUT_CHANNEL") is not None:
            kw["channel_order"] = "bgr" if data["REVERSE_INPUT_CHANNEL"] else "rgb"
        base = cls.for_geometry(kw.get("num_frames", num_frames), img_size)
        if "short_side" in kw:
            kw["short_side"] = max(kw["short_side"], kw.get("crop_size", base.crop_size))
        return base.replace(source="official cfg", **kw)

    # ------------------------------------------------------------------ display
    def report(self) -> dict[str, Any]:
        """{"values": to_dict() without sources, "sources": field -> where it came from}."""
        values = {k: v for k, v in self.to_dict().items() if k != "sources"}
        return {"values": values, "sources": {k: self.sources.get(k, "default") for k in values}}

    def log_line(self) -> str:
        """One line for stderr: the clip settings and, in brackets, where each came from."""
        keys = ("num_frames", "sampling_rate", "target_fps", "sampler", "crop_size",
                "short_side", "mean", "std", "channel_order", "test_views", "test_protocol")  # fmt: skip
        d = self.to_dict()
        return "preprocess: " + ", ".join(
            f"{k}={_short(d[k])} ({self.sources.get(k, 'default')})" for k in keys
        )

    def describe(self) -> list[str]:
        """One line per field: value and where it came from (for `--json` and logs)."""
        out = []
        for k, v in self.to_dict().items():
            if k in ("sources", "class_names"):
                continue
            out.append(f"{k}={v} ({self.sources.get(k, 'default')})")
        return out


def preprocess_of(model: Any) -> Preprocess:
    """The contract a model carries (`model.preprocess`), else defaults for its geometry with
    its config's class names; always matching the model's frames and crop size."""
    cfg = model.config
    size = cfg.img_size if isinstance(cfg.img_size, int) else min(cfg.img_size)
    labels = tuple(cfg.labels) if getattr(cfg, "labels", None) else None
    pre = getattr(model, "preprocess", None)
    if not isinstance(pre, Preprocess):
        pre = Preprocess.for_geometry(cfg.num_frames, size)
    return fit_model(pre, cfg.num_frames, size, labels)


def fit_model(
    pre: Preprocess, num_frames: int, img_size: int, labels: Sequence[str] | None = None
) -> Preprocess:
    """`pre` with the model's frames and crop (source "model config" where they differ) and
    the model's class names when the contract has none."""
    kw: dict[str, Any] = {}
    if pre.num_frames != num_frames:
        kw["num_frames"] = num_frames
    if pre.crop_size != img_size:
        kw["img_size"] = img_size
    if pre.class_names is None and labels:
        kw["class_names"] = labels
    return pre.with_overrides(source="model config", **kw) if kw else pre


def _short(v: Any) -> str:
    if isinstance(v, list):
        return "x".join(str(x) for x in v) if len(v) == 2 else "/".join(f"{x:g}" for x in v)
    return str(v)


def _normalise(kw: dict[str, Any]) -> dict[str, Any]:
    """Tuples for sequence fields, plain numbers, so equality and hashing behave."""
    out = dict(kw)
    for key in ("mean", "std"):
        if key in out:
            out[key] = tuple(float(v) for v in out[key])
    if "test_views" in out:
        tv = out["test_views"]
        if isinstance(tv, str):  # "KxS"
            k, _, s = tv.lower().partition("x")
            tv = (int(k), int(s))
        out["test_views"] = tuple(int(v) for v in tv)
    if out.get("class_names") is not None:
        out["class_names"] = tuple(str(n) for n in out["class_names"])
    for key in ("num_frames", "sampling_rate", "short_side", "crop_size"):
        if key in out:
            out[key] = int(out[key])
    if out.get("target_fps") is not None:
        out["target_fps"] = float(out["target_fps"])
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _hf_triple(v: Any, key: str, positive: bool) -> list[float]:
    """preprocessor_config.json's image_mean / image_std: 3 numbers (or one for all three)."""
    vals = [v] * 3 if _finite(v) else v
    if not isinstance(vals, (list, tuple)) or len(vals) != 3 or not all(map(_finite, vals)):
        raise ValueError(f"{key}={v!r}: expected 3 numbers (one per RGB channel)")
    if positive and min(vals) <= 0:
        raise ValueError(f"{key}={v!r}: expected 3 positive numbers")
    return [float(x) for x in vals]


def _hf_side(v: Any, key: str, names: tuple[str, ...]) -> int:
    """preprocessor_config.json's size / crop_size in pixels: an int, or the smallest of the
    named entries of a dict ({"shortest_edge": 224}, {"height": 224, "width": 224})."""
    sides = [v] if not isinstance(v, Mapping) else [v[n] for n in names if v.get(n) is not None]
    if not sides or not all(_finite(x) and x >= 1 and float(x).is_integer() for x in sides):
        want = " or ".join(f'{{"{n}": N}}' for n in names[:2])
        raise ValueError(f"{key}={v!r}: expected a positive number of pixels N or {want}")
    return int(min(sides))
