"""TimeSformer configuration dataclass and the preset registry."""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

ATTENTION_TYPES = (
    "divided_space_time",
    "space_only",
    "joint_space_time",
    "sparse_local_global",
    "axial",
)
POS_EMBED_TYPES = ("space_time", "space", "none")
EMBED_RESAMPLE_MODES = ("bicubic", "nearest")


def _suggest(value: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"img_size must be an int or (height, width); got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


@dataclass
class TimeSformerConfig:
    """Architecture of a TimeSformer; stored in every checkpoint so that it rebuilds exactly.

    `img_size` and `num_frames` are the geometry the embeddings were trained for; the model
    accepts other frame counts and sizes (divisible by the patch size) by resampling them.
    """

    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    in_chans: int = 3
    num_frames: int = 8
    num_classes: int = 400
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    attention_type: str = "divided_space_time"
    pos_embed: str = "space_time"
    layer_norm_eps: float = 1e-6
    # "bicubic" (2-D grid; linear in time) or "nearest" (the official code's resize).
    embed_resample: str = "bicubic"
    # The official init zeroes temporal_fc of every block but the first, so that an
    # ImageNet-initialised model starts as the image model.
    zero_init_temporal_fc: bool = True
    labels: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.img_size, list):
            self.img_size = tuple(self.img_size)
        if self.attention_type not in ATTENTION_TYPES:
            raise ValueError(
                f"attention_type={self.attention_type!r} is not one of {', '.join(ATTENTION_TYPES)}."
                + _suggest(self.attention_type, ATTENTION_TYPES)
            )
        if self.pos_embed not in POS_EMBED_TYPES:
            raise ValueError(
                f"pos_embed={self.pos_embed!r} is not one of {', '.join(POS_EMBED_TYPES)}."
                + _suggest(self.pos_embed, POS_EMBED_TYPES)
            )
        if self.embed_resample not in EMBED_RESAMPLE_MODES:
            raise ValueError(
                f"embed_resample={self.embed_resample!r} is not one of "
                f"{', '.join(EMBED_RESAMPLE_MODES)}."
            )
        for name in ("patch_size", "num_frames", "in_chans", "embed_dim", "depth", "num_heads",
                     "num_classes"):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ValueError(f"{name} must be an integer; got {v!r}")
            if v < (0 if name == "num_classes" else 1):
                what = ">= 0 (0 = no head)" if name == "num_classes" else ">= 1"
                raise ValueError(f"{name} must be {what}; got {v}")
        for name in (
            "mlp_ratio",
            "drop_rate",
            "attn_drop_rate",
            "drop_path_rate",
            "layer_norm_eps",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number; got {v!r}")
        if not self.mlp_ratio > 0 or not self.layer_norm_eps > 0:
            raise ValueError(
                f"mlp_ratio and layer_norm_eps must be > 0; got {self.mlp_ratio}, "
                f"{self.layer_norm_eps}"
            )
        for name in ("drop_rate", "attn_drop_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        h, w = _pair(self.img_size)
        if h < 1 or w < 1:
            raise ValueError(f"img_size must be >= 1; got {self.img_size}")
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"img_size={self.img_size} must be divisible by patch_size={self.patch_size}"
            )
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim={self.embed_dim} must be divisible by num_heads={self.num_heads}"
            )
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1); got {self.drop_path_rate}")
        if self.labels is not None and len(self.labels) != self.num_classes:
            raise ValueError(f"{len(self.labels)} labels given for num_classes={self.num_classes}")

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid (rows, columns) of the configured image size."""
        h, w = _pair(self.img_size)
        return h // self.patch_size, w // self.patch_size

    @property
    def num_patches(self) -> int:
        gh, gw = self.grid_size
        return gh * gw

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(d["img_size"], tuple):
            d["img_size"] = list(d["img_size"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimeSformerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            hints = "".join(_suggest(k, sorted(known)) for k in unknown)
            raise ValueError(f"unknown TimeSformerConfig keys: {unknown}.{hints}")
        return cls(**d)

    def replace(self, **overrides: Any) -> TimeSformerConfig:
        """A copy with `overrides` applied (validated); unknown keys are an error."""
        known = {f.name for f in fields(self)}
        for k in overrides:
            if k not in known:
                raise TypeError(f"unknown model option {k!r}." + _suggest(k, sorted(known)))
        if "num_classes" in overrides and "labels" not in overrides:
            if overrides["num_classes"] != self.num_classes:
                overrides["labels"] = None
        return replace(self, **overrides)


_VIT_B = dict(embed_dim=768, depth=12, num_heads=12)

PRESETS: dict[str, TimeSformerConfig] = {
    # ViT-B/16, 8 x 224 (sampling rate 32 in the paper).
    "timesformer_base": TimeSformerConfig(num_frames=8, img_size=224, **_VIT_B),
    # TimeSformer-HR: 16 x 448.
    "timesformer_hr": TimeSformerConfig(num_frames=16, img_size=448, **_VIT_B),
    # TimeSformer-L: 96 x 224.
    "timesformer_l": TimeSformerConfig(num_frames=96, img_size=224, **_VIT_B),
    # CPU-sized: ViT-S/16 and ViT-Ti/16 geometry.
    "timesformer_small": TimeSformerConfig(
        num_frames=8, img_size=224, embed_dim=384, depth=12, num_heads=6
    ),
    "timesformer_tiny": TimeSformerConfig(
        num_frames=8, img_size=224, embed_dim=192, depth=12, num_heads=3
    ),
}


def list_models() -> list[str]:
    """Names of the registered presets."""
    return list(PRESETS)


def get_config(name: str, **overrides: Any) -> TimeSformerConfig:
    """The preset `name` with `overrides` applied."""
    if name not in PRESETS:
        raise ValueError(
            f"unknown model {name!r}; available: {', '.join(PRESETS)}."
            + _suggest(name, list(PRESETS))
        )
    return PRESETS[name].replace(**overrides)


# The one table of extra attention steps per scheme, in the order a Block runs them before its
# final step (attn over the scheme's own partition): (norm, attention, output linear) module
# names. Read by the Block, the checkpoint key maps and explain.
EXTRA_STEPS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "divided_space_time": (("temporal_norm1", "temporal_attn", "temporal_fc"),),
    "axial": (
        ("temporal_norm1", "temporal_attn", "temporal_fc"),
        ("width_norm", "width_attn", "width_fc"),
    ),
    "sparse_local_global": (("local_norm", "local_attn", "local_fc"),),
    "space_only": (),
    "joint_space_time": (),
}
