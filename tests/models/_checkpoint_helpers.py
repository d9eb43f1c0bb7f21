"""Shared by the checkpoint-format tests: small random HF and TimeSformer models, videos."""

from __future__ import annotations

import torch

from timesformer.models import TimeSformer, TimeSformerConfig

TOL = 1e-4
SMALL = dict(
    image_size=32, patch_size=8, num_frames=4, hidden_size=64, num_hidden_layers=2,
    num_attention_heads=2, intermediate_size=128,
)  # fmt: skip
OURS_SMALL = dict(
    img_size=32, patch_size=8, num_frames=4, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0,
    num_classes=5, drop_path_rate=0.0,
)  # fmt: skip


def _perturb(module: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere (also where inits put zeros: time embeddings, temporal_fc)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def _hf_model(attention_type: str, seed: int = 0, **kw):
    import transformers

    cfg = transformers.TimesformerConfig(
        **{**SMALL, **kw}, attention_type=attention_type, num_labels=5
    )
    model = transformers.TimesformerForVideoClassification(cfg).eval()
    _perturb(model, seed)
    return model


def _ours(seed: int = 0, **kw) -> TimeSformer:
    model = TimeSformer(TimeSformerConfig(**{**OURS_SMALL, **kw})).eval()
    _perturb(model, seed)
    return model


def _video(b: int = 2, t: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    """Our layout (B, C, T, H, W)."""
    return torch.randn(b, 3, t, size, size, generator=torch.Generator().manual_seed(seed))


def _hf_logits(hf, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf(pixel_values=video.transpose(1, 2)).logits  # HF layout (B, T, C, H, W)


def _logits(model: TimeSformer, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(video)


def _assert_fresh_head(head: torch.nn.Linear) -> None:
    """A newly initialised head: trunc-normal(0.02) weights, zero bias (not stale memory)."""
    assert torch.isfinite(head.weight).all() and torch.count_nonzero(head.bias) == 0
    assert 0.01 < head.weight.std().item() < 0.03 and head.weight.abs().max().item() < 0.15
