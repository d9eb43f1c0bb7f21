"""ImageNet ViT image weights: timm and Hugging Face ViT, and the paper's video initialisation.

Both are read into timm's ViT key names (ours for the image part: `patch_embed`, `blocks.{i}.
attn.qkv`, ...), then `image_state_to_video` builds the video model's weights from them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..config import EXTRA_STEPS, TimeSformerConfig
from ..timesformer import resample_pos_embed
from .common import few, strip
from .hf import LAYER_RE, TOP, common_config
from .native import image_shapes

TIMM_IGNORED = ("head.", "pre_logits.")  # the image classifier: the video model has its own

# Hugging Face ViT (inside `encoder.layer.{i}.`) -> timm ViT (inside `blocks.{i}.`); q/k/v apart.
_HF_VIT_LAYER = {
    "layernorm_before": "norm1",
    "attention.output.dense": "attn.proj",
    "attention.o_proj": "attn.proj",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_HF_VIT_QKV = {
    "attention.attention.query": "q",
    "attention.attention.key": "k",
    "attention.attention.value": "v",
    "attention.q_proj": "q",
    "attention.k_proj": "k",
    "attention.v_proj": "v",
}
_HF_VIT_IGNORED = ("pooler.", "classifier.", "embeddings.mask_token")
_VIT_LAYER_RE = re.compile(r"^layers\.(\d+)\.(.+)\.(weight|bias)$")


def is_hf_vit(keys: list[str]) -> bool:
    """Whether state dict keys are Hugging Face ViT names (q, k, v apart)."""
    return any(".attention.attention.query." in k or ".attention.q_proj." in k for k in keys)


def timm_config(state: Mapping[str, Tensor], source: str) -> tuple[dict[str, Any], set[str]]:
    """(config fields, guessed fields) of a timm ViT state dict, from its shapes."""
    return image_shapes(state, source), {"num_heads", "layer_norm_eps"}


def hf_vit_to_timm(hf_state: Mapping[str, Tensor], source: str) -> dict[str, Tensor]:
    """Hugging Face ViTModel / ViTForImageClassification -> timm ViT names (qkv fused).

    Reads the saved layout (`encoder.layer.{i}.attention.attention.query`) and the in-memory
    layout of transformers 5 (`layers.{i}.attention.q_proj`).
    """
    hf_state = strip(dict(hf_state), ("vit.",))
    state: dict[str, Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, Tensor]] = {}
    unknown = []
    for k, v in hf_state.items():
        if k.startswith(_HF_VIT_IGNORED):
            continue
        if k in TOP and k != "embeddings.time_embeddings":
            state[TOP[k]] = v
            continue
        mt = LAYER_RE.match(k) or _VIT_LAYER_RE.match(k)
        name = mt.group(2) if mt else ""
        if name in _HF_VIT_LAYER:
            state[f"blocks.{mt.group(1)}.{_HF_VIT_LAYER[name]}.{mt.group(3)}"] = v
        elif name in _HF_VIT_QKV:
            qkv.setdefault((int(mt.group(1)), mt.group(3)), {})[_HF_VIT_QKV[name]] = v
        else:
            unknown.append(k)
    if unknown:
        raise ValueError(f"{source}: unexpected keys for a Hugging Face ViT: {few(unknown)}")
    for (i, p), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"{source}: layer {i} lacks one of the query/key/value {p}s")
        state[f"blocks.{i}.attn.qkv.{p}"] = torch.cat([parts["q"], parts["k"], parts["v"]], 0)
    return state


def hf_vit_config(conf: Mapping[str, Any], source: str) -> dict[str, Any]:
    """TimeSformerConfig fields (image part) from a Hugging Face ViT config.json."""
    return common_config(conf, source, eps=1e-12)


def image_state_to_video(
    state: Mapping[str, Tensor], config: TimeSformerConfig, image_grid: tuple[int, int]
) -> dict[str, Tensor]:
    """The paper's ImageNet initialisation: a timm-layout ViT state dict -> TimeSformer weights.

    The classifier is dropped (the model keeps its own fresh head); every extra attention step
    (`temporal_*`, `local_*`, `width_*`: `config.EXTRA_STEPS`) starts as a copy of the block's
    `norm1`/`attn`, with its output linear at zero; `time_embed` starts at zero; `pos_embed` is
    resampled from `image_grid` to the config's grid. So a divided model fed a video of one
    repeated image computes exactly the ViT's class-token features of that image.
    """
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k.startswith(TIMM_IGNORED):
            continue
        if k == "pos_embed":  # (1, 1 + gh*gw, D)
            if config.pos_embed == "none":
                continue
            if v.shape[1] != image_grid[0] * image_grid[1] + 1:
                raise ValueError(
                    f"pos_embed has {v.shape[1]} slots, expected 1 + {image_grid[0]}x"
                    f"{image_grid[1]} for the image grid"
                )
            v = resample_pos_embed(v, image_grid, config.grid_size, config.embed_resample)
        out[k] = v
    D = config.embed_dim
    if config.pos_embed == "space_time" and config.attention_type != "space_only":
        out["time_embed"] = torch.zeros(1, config.num_frames, D)  # (1, T, D)
    for i in range(config.depth):
        b = f"blocks.{i}."
        for norm, attn, fc in EXTRA_STEPS[config.attention_type]:
            for p in ("weight", "bias"):
                if b + "norm1." + p in state:
                    out[b + f"{norm}.{p}"] = state[b + "norm1." + p].clone()
            for sub in ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias"):
                if b + "attn." + sub in state:
                    out[b + f"{attn}.{sub}"] = state[b + "attn." + sub].clone()
            out[b + f"{fc}.weight"] = torch.zeros(D, D)
            out[b + f"{fc}.bias"] = torch.zeros(D)
    return out
