"""The official facebookresearch/TimeSformer layout (.pyth), both directions.

A .pyth holds {"model_state": {"model.<our key>": tensor}, "cfg": <yaml>, "epoch", ...}: the
official module names are ours (we kept them), so the filter is the "model." prefix plus the
architecture, read from the tensor shapes and the YAML cfg (HR, L and SSv2 releases included).
Files we export also carry "timesformer_config" (our full config), which we read back exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from torch import Tensor

from ..config import TimeSformerConfig, _pair
from .common import (
    ACCEPTED_FORMATS,
    EXPORTABLE_ATTENTION_TYPES,
    check_exportable,
    fill_embeddings,
    strip,
    tensors,
)
from .native import infer_video_config

ATTENTION_TYPES = EXPORTABLE_ATTENTION_TYPES
TARGET = "the official TimeSformer code"


def to_native(model_state: Mapping[str, Any], source: str) -> dict[str, Tensor]:
    """`model_state` ("model."-prefixed, maybe also DDP's "module.") -> our key names."""
    state = strip(tensors(model_state, source), ("module.",))
    if not all(k.startswith("model.") for k in state):
        raise ValueError(
            f"{source}: 'model_state' keys lack the official 'model.' prefix (e.g. "
            f"{next(iter(state), '')!r}). Accepted formats: {ACCEPTED_FORMATS}"
        )
    return strip(state, ("model.",))


def read_config(
    state: dict[str, Tensor], extra: Mapping[str, Any], source: str
) -> tuple[dict[str, Any], set[str], tuple[str, ...]]:
    """(config fields, guessed fields, possible attention types) of an official state dict in
    our key names; `extra`: the file's other entries (cfg, timesformer_config, ...).

    Drops from `state` the embeddings the model does not use (zeros our exporter wrote, or the
    unused time_embed of older official space-only files).
    """
    ours = extra.get("timesformer_config")
    if isinstance(ours, Mapping):  # written by to_official_state_dict: exact config
        conf = TimeSformerConfig.from_dict(dict(ours)).to_dict()
        # the exporter fills embeddings the model lacks with zeros: drop them again
        if conf["pos_embed"] != "space_time" or conf["attention_type"] == "space_only":
            state.pop("time_embed", None)
        if conf["pos_embed"] == "none":
            state.pop("pos_embed", None)
        return conf, set(), (conf["attention_type"],)
    hint = cfg_hint(extra.get("cfg"))
    conf, assumed, choices = infer_video_config(state, hint, source, official=True)
    if conf["attention_type"] == "space_only":
        state.pop("time_embed", None)  # older official space-only files carry an unused one
    return conf, assumed, choices


def cfg_hint(cfg: Any) -> dict[str, Any]:
    """num_frames / img_size / attention_type from the official cfg (YAML text or dict)."""
    if isinstance(cfg, str):
        try:
            cfg = yaml.safe_load(cfg)
        except yaml.YAMLError:
            return {}
    if not isinstance(cfg, Mapping):
        return {}
    hint: dict[str, Any] = {}
    data = cfg.get("DATA") or {}
    tsf = cfg.get("TIMESFORMER") or {}
    if isinstance(data, Mapping):
        if isinstance(data.get("NUM_FRAMES"), int):
            hint["num_frames"] = data["NUM_FRAMES"]
        if isinstance(data.get("TRAIN_CROP_SIZE"), int):
            hint["img_size"] = data["TRAIN_CROP_SIZE"]
    if isinstance(tsf, Mapping) and tsf.get("ATTENTION_TYPE") in ATTENTION_TYPES:
        hint["attention_type"] = tsf["ATTENTION_TYPE"]
    return hint


def from_native(state: dict[str, Tensor], cfg: TimeSformerConfig, epoch: int = 0) -> dict[str, Any]:
    """Our state dict and config -> the official checkpoint dict.

    Returns {"epoch", "model_state" ("model."-prefixed keys), "cfg" (YAML with the official
    DATA/MODEL/TIMESFORMER keys), "timesformer_config" (our full config, which the official
    code ignores)}. A missing time_embed / pos_embed is written as zeros (same function).
    """
    check_exportable(cfg, TARGET)
    h, _ = _pair(cfg.img_size)
    state = fill_embeddings(state, cfg)
    official_cfg = {
        "DATA": {"NUM_FRAMES": cfg.num_frames, "TRAIN_CROP_SIZE": h, "TEST_CROP_SIZE": h},
        "MODEL": {
            "ARCH": "vit",
            "MODEL_NAME": "vit_base_patch16_224",
            "NUM_CLASSES": cfg.num_classes,
        },
        "TIMESFORMER": {"ATTENTION_TYPE": cfg.attention_type, "PRETRAINED_MODEL": ""},
    }
    return {
        "epoch": epoch,
        "model_state": {f"model.{k}": v for k, v in state.items()},
        "cfg": yaml.safe_dump(official_cfg),
        "timesformer_config": cfg.to_dict(),
    }
