"""Hugging Face `transformers` Timesformer (TimesformerForVideoClassification), both directions.

Key maps between its names (`timesformer.encoder.layer.{i}.<name>`, `classifier.*`) and ours
(`blocks.{i}.<name>`, `head.*`), and the config.json fields, read and written. The config.json
readers shared with Hugging Face ViT (`common_config`) live here too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ..config import TimeSformerConfig, _pair
from .common import EXPORTABLE_ATTENTION_TYPES, check_exportable, few, fill_embeddings

ATTENTION_TYPES = EXPORTABLE_ATTENTION_TYPES
TARGET = "Hugging Face Timesformer"

# Hugging Face Timesformer names (inside `encoder.layer.{i}.`) -> ours (inside `blocks.{i}.`).
LAYER = {
    "layernorm_before": "norm1",
    "attention.attention.qkv": "attn.qkv",
    "attention.output.dense": "attn.proj",
    "temporal_layernorm": "temporal_norm1",
    "temporal_attention.attention.qkv": "temporal_attn.qkv",
    "temporal_attention.output.dense": "temporal_attn.proj",
    "temporal_dense": "temporal_fc",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
# Hugging Face names outside the layers (below `timesformer.`; ViT shares them) -> ours.
TOP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.time_embeddings": "time_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
_OURS_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)\.(weight|bias)$")


def is_hf_timesformer(keys: list[str]) -> bool:
    """Whether state dict keys are Hugging Face Timesformer names."""
    return any(k.startswith("timesformer.") for k in keys) or any(
        ".attention.attention.qkv." in k for k in keys
    )


def to_native(hf_state: Mapping[str, Tensor], source: str) -> dict[str, Tensor]:
    """Hugging Face Timesformer keys -> ours; any key it does not know is an error."""
    state, unknown = {}, []
    for k, v in hf_state.items():
        name = k[len("timesformer.") :] if k.startswith("timesformer.") else k
        if name in TOP:
            state[TOP[name]] = v
        elif k.startswith("classifier."):
            state["head." + k[len("classifier.") :]] = v
        elif (mt := LAYER_RE.match(name)) and mt.group(2) in LAYER:
            state[f"blocks.{mt.group(1)}.{LAYER[mt.group(2)]}.{mt.group(3)}"] = v
        else:
            unknown.append(k)
    if unknown:
        raise ValueError(
            f"{source}: unexpected keys for a Hugging Face Timesformer: {few(unknown)}"
        )
    return state


def from_native(state: dict[str, Tensor], cfg: TimeSformerConfig) -> dict[str, Tensor]:
    """Our state dict -> Hugging Face `TimesformerForVideoClassification` key names.

    A missing time_embed / pos_embed is written as zeros (same function).
    """
    check_exportable(cfg, TARGET)
    state = fill_embeddings(state, cfg)
    top = {v: k for k, v in TOP.items()}
    layer = {v: k for k, v in LAYER.items()}
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k in top:
            out["timesformer." + top[k]] = v
        elif k.startswith("head."):
            out["classifier." + k[len("head.") :]] = v
        else:
            mt = _OURS_BLOCK_RE.match(k)
            if not mt or mt.group(2) not in layer:
                raise ValueError(f"no Hugging Face name for parameter {k!r}")
            i, name, p = mt.groups()
            out[f"timesformer.encoder.layer.{i}.{layer[name]}.{p}"] = v
    return out


def read_config(
    conf: Mapping[str, Any], state: Mapping[str, Tensor], source: str
) -> dict[str, Any]:
    """TimeSformerConfig fields from a Timesformer config.json (`state`: our keys, for the head)."""
    attention = conf.get("attention_type", "divided_space_time")
    if attention not in ATTENTION_TYPES:
        raise ValueError(f"{source}: unknown Hugging Face attention_type {attention!r}")
    c = common_config(conf, source, eps=1e-6)
    num_classes = int(state["head.weight"].shape[0]) if "head.weight" in state else 0
    dpr = conf.get("timesformer_drop_path_rate", conf.get("drop_path_rate", 0.0))
    c.update(
        num_frames=_num(conf, "num_frames", 8, int, source),
        attention_type=attention,
        pos_embed="space_time",
        num_classes=num_classes,
        drop_rate=_num(conf, "hidden_dropout_prob", 0.0, float, source),
        attn_drop_rate=_num(conf, "attention_probs_dropout_prob", 0.0, float, source),
        drop_path_rate=_as_num(dpr, "drop_path_rate", float, source),
        labels=_labels(conf, num_classes),
    )
    _check_embeddings(c, state, source)
    return c


def _check_embeddings(c: Mapping[str, Any], state: Mapping[str, Tensor], source: str) -> None:
    """config.json's num_frames / image_size must be what the weights were trained at (as
    transformers requires); otherwise the folder is inconsistent, not a model to resample."""
    te = state.get("time_embed")
    if te is not None and te.ndim == 3 and te.shape[1] != c["num_frames"]:
        raise ValueError(
            f"{source}: config.json says num_frames={c['num_frames']} but the weights' time "
            f"embedding has {te.shape[1]} frames; the folder is inconsistent (to resample a "
            "consistent model, load it and pass num_frames=)"
        )
    pe = state.get("pos_embed")
    img = c["img_size"]
    h, w = (img, img) if isinstance(img, int) else img
    n = (h // c["patch_size"]) * (w // c["patch_size"])
    if pe is not None and pe.ndim == 3 and pe.shape[1] != n + 1:
        raise ValueError(
            f"{source}: config.json says image_size={img} ({n} patches) but the weights' "
            f"position embedding has {pe.shape[1] - 1}; the folder is inconsistent"
        )


def _num(conf: Mapping[str, Any], key: str, default: Any, kind: type, source: str) -> Any:
    """config.json's `key` as an int or float (`kind`), or one error naming the key."""
    return _as_num(conf.get(key, default), key, kind, source)


def _as_num(value: Any, key: str, kind: type, source: str) -> Any:
    """`value` (config.json's `key`) as an int or float (`kind`), or one error naming it."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and kind is int and float(value).is_integer():
        return int(value)
    if ok and kind is float and math.isfinite(value):
        return float(value)
    what = "an integer" if kind is int else "a finite number"
    raise ValueError(f"{source}: config.json has {key}={value!r}; expected {what}")


def common_config(conf: Mapping[str, Any], source: str, eps: float) -> dict[str, Any]:
    """TimeSformerConfig fields shared by HF Timesformer and ViT config.json files."""
    if conf.get("hidden_act", "gelu") != "gelu":
        raise ValueError(
            f"{source}: hidden_act={conf['hidden_act']!r} is not supported (exact GELU only)"
        )
    patch = conf.get("patch_size", 16)
    if isinstance(patch, (list, tuple)):
        if patch[0] != patch[1]:
            raise ValueError(f"{source}: non-square patch_size {patch} is not supported")
        patch = patch[0]
    img = conf.get("image_size", 224)
    hidden = _num(conf, "hidden_size", 768, int, source)
    return {
        "img_size": tuple(_as_num(i, "image_size", int, source) for i in img)
        if isinstance(img, (list, tuple))
        else _num(conf, "image_size", 224, int, source),
        "patch_size": _as_num(patch, "patch_size", int, source),
        "in_chans": _num(conf, "num_channels", 3, int, source),
        "embed_dim": hidden,
        "depth": _num(conf, "num_hidden_layers", 12, int, source),
        "num_heads": _num(conf, "num_attention_heads", 12, int, source),
        "mlp_ratio": _num(conf, "intermediate_size", 4 * hidden, int, source) / hidden,
        "qkv_bias": bool(conf.get("qkv_bias", True)),
        "layer_norm_eps": _num(conf, "layer_norm_eps", eps, float, source),
    }


def _labels(conf: Mapping[str, Any], num_classes: int) -> list[str] | None:
    """Class names from id2label, unless they are the LABEL_i placeholders."""
    id2label = conf.get("id2label") or {}
    try:
        labels = [
            str(id2label[str(i)] if str(i) in id2label else id2label[i]) for i in range(num_classes)
        ]
    except KeyError:
        return None
    if all(name == f"LABEL_{i}" for i, name in enumerate(labels)):
        return None
    return labels


def hf_config_dict(config: TimeSformerConfig) -> dict[str, Any]:
    """config.json contents for `transformers.TimesformerForVideoClassification`."""
    check_exportable(config, TARGET)
    labels = config.labels or [f"LABEL_{i}" for i in range(config.num_classes)]
    dpr = config.drop_path_rate
    d: dict[str, Any] = {
        "architectures": ["TimesformerForVideoClassification"],
        "model_type": "timesformer",
        "image_size": _pair(config.img_size)[0],
        "patch_size": config.patch_size,
        "num_channels": config.in_chans,
        "num_frames": config.num_frames,
        "hidden_size": config.embed_dim,
        "num_hidden_layers": config.depth,
        "num_attention_heads": config.num_heads,
        "intermediate_size": int(config.embed_dim * config.mlp_ratio),
        "hidden_act": "gelu",
        "hidden_dropout_prob": config.drop_rate,
        "attention_probs_dropout_prob": config.attn_drop_rate,
        "initializer_range": 0.02,
        "layer_norm_eps": config.layer_norm_eps,
        "qkv_bias": config.qkv_bias,
        "attention_type": config.attention_type,
        # transformers types this field as int: a fractional rate goes in our own key.
        "drop_path_rate": int(dpr) if float(dpr).is_integer() else 0,
        "id2label": {str(i): name for i, name in enumerate(labels)},
        "label2id": {name: i for i, name in enumerate(labels)},
    }
    if not float(dpr).is_integer():
        d["timesformer_drop_path_rate"] = dpr
    return d
