"""What the format filters share: the accepted-formats text, key helpers, export checks.

Everything here is pure: state dicts and configs in, state dicts, configs or errors out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..config import EXTRA_STEPS, TimeSformerConfig, _pair

ACCEPTED_FORMATS = (
    "ours (torch.save dict with format='timesformer', or .safetensors with timesformer "
    "metadata); official facebookresearch/TimeSformer .pyth ({'model_state': {'model.*'}}); "
    "Hugging Face Timesformer directory (config.json + model.safetensors or pytorch_model.bin); "
    "ImageNet ViT weights (timm vit_* state dict as .pth/.safetensors, or a Hugging Face "
    "ViTModel directory)"
)

# The schemes that the official code and Hugging Face's Timesformer both implement.
EXPORTABLE_ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")

# Module names of every extra attention step of any scheme (temporal_norm1, local_attn, ...).
EXTRA_STEP_MODULES = frozenset(n for steps in EXTRA_STEPS.values() for s in steps for n in s)


def few(items: list[str], n: int = 12) -> str:
    """The first `n` items, comma-separated, and how many more there are."""
    more = f", ... and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def tensors(obj: Mapping[str, Any], source: str) -> dict[str, Tensor]:
    """`obj` as a state dict, or one error naming the entries that are not tensors."""
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad or not obj:
        raise ValueError(
            f"{source}: unknown checkpoint format (entries that are not tensors: "
            f"{few([str(k) for k in bad]) or 'empty dict'}). Accepted formats: {ACCEPTED_FORMATS}"
        )
    return dict(obj)


def strip(state: dict[str, Tensor], prefixes: tuple[str, ...]) -> dict[str, Tensor]:
    """Remove a prefix that every key carries (DDP 'module.', compile '_orig_mod.', ...)."""
    for p in prefixes:
        if state and all(k.startswith(p) for k in state):
            state = {k[len(p) :]: v for k, v in state.items()}
    return state


def block_keys(state: Mapping[str, Tensor]) -> list[str]:
    """Keys of the per-block parameters (`blocks.{i}.<module>.<...>`)."""
    return [k for k in state if k.startswith("blocks.") and k.count(".") >= 3]


def check_exportable(cfg: TimeSformerConfig, target: str) -> None:
    """Refuse what the official code and Hugging Face cannot hold: other schemes, non-square
    frames. `target` names the destination in the message."""
    if cfg.attention_type not in EXPORTABLE_ATTENTION_TYPES:
        raise ValueError(
            f"{target} has no attention_type={cfg.attention_type!r}; it "
            f"supports {', '.join(EXPORTABLE_ATTENTION_TYPES)}. Save it in our format instead."
        )
    h, w = _pair(cfg.img_size)
    if h != w:
        raise ValueError(f"{target} needs square frames; img_size={h}x{w}")


def fill_embeddings(state: dict[str, Tensor], cfg: TimeSformerConfig) -> dict[str, Tensor]:
    """Add the embeddings the exported layouts always hold, as zeros where the model has none
    (pos_embed "space" / "none"): the same function. Changes and returns `state`."""
    D = cfg.embed_dim
    if "pos_embed" not in state:
        state["pos_embed"] = torch.zeros(1, cfg.num_patches + 1, D)  # (1, 1+N, D)
    if cfg.attention_type != "space_only" and "time_embed" not in state:
        state["time_embed"] = torch.zeros(1, cfg.num_frames, D)  # (1, T, D)
    return state
