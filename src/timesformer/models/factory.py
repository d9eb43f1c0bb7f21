"""create_model and count_flops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import _pair, get_config
from .timesformer import TimeSformer


def create_model(
    name: str,
    pretrained: str | Path | None = None,
    *,
    reset_head: bool = False,
    allow_pickle: bool = False,
    **overrides: Any,
) -> TimeSformer:
    """Build the preset `name` (see `list_models()`), optionally loading weights.

    `pretrained` takes any checkpoint that `from_pretrained` accepts (official .pyth, Hugging
    Face directory, ImageNet ViT, ours); overrides such as num_classes, num_frames, img_size,
    attention_type, pos_embed, drop_path_rate, depth, embed_dim, num_heads apply on top.
    `reset_head=True` keeps a freshly initialised head when the checkpoint's head has another
    number of classes (fine-tuning); otherwise a head mismatch is an error.
    `allow_pickle=True` lets `pretrained` be a torch file that only full unpickling reads: that
    runs code from the file, so only for files you trust.
    """
    cfg = get_config(name, **overrides)
    if pretrained is not None:
        from .weights import load_into

        model = TimeSformer(cfg)
        load_into(model, pretrained, reset_head=reset_head, allow_pickle=allow_pickle)
        return model
    return TimeSformer(cfg)


def count_flops(
    model: nn.Module,
    num_frames: int | None = None,
    img_size: int | tuple[int, int] | None = None,
    batch_size: int = 1,
) -> dict[str, float]:
    """Parameters and multiply-accumulates of one forward pass of `batch_size` clips.

    Counted by tracing the model on the meta device (no memory, no compute): matmuls,
    convolutions and attention (QK^T and AV); norms and activations are not counted, as in the
    paper's figures. Returns {"params", "macs", "gmacs", "num_frames", "img_size"}.
    """
    cfg = model.config
    T = num_frames or cfg.num_frames
    H, W = _pair(img_size if img_size is not None else cfg.img_size)
    if _is_meta(model):
        meta = model
    else:
        with torch.device("meta"):
            meta = TimeSformer(cfg)
    meta.eval()
    x = torch.empty(batch_size, cfg.in_chans, T, H, W, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(x)
    macs = counter.get_total_flops() / 2
    params = sum(p.numel() for p in model.parameters())
    return {
        "params": params,
        "macs": macs,
        "gmacs": macs / 1e9,
        "num_frames": T,
        "img_size": (H, W),
    }


def _is_meta(model: nn.Module) -> bool:
    p = next(model.parameters(), None)
    return p is not None and p.device.type == "meta"


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel / torch.compile wrappers."""
    for _ in range(8):
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner
    return model
