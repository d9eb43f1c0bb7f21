"""The Block's eval fast path (models/inference.py): when it runs, and that it is the same function."""

from __future__ import annotations

import pytest
import torch

from timesformer.models import TimeSformer, TimeSformerConfig, inference
from timesformer.models.config import ATTENTION_TYPES

SMALL = dict(img_size=32, patch_size=8, num_frames=3, embed_dim=48, depth=2, num_heads=3,
             num_classes=4, zero_init_temporal_fc=False)  # fmt: skip


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_fast_path_equals_reference_for_every_scheme_and_chunk(attention: str) -> None:
    model = TimeSformer(TimeSformerConfig(**SMALL, attention_type=attention)).eval()
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        model.set_inference_options(fast=False)
        ref = model(x)
        for chunk in (None, 1, 7, 4096):
            model.set_inference_options(fast=True, chunk_tokens=chunk)
            torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=0)


def test_fast_path_runs_only_in_eval_without_autograd(monkeypatch) -> None:
    calls = []
    real = inference.block_forward
    monkeypatch.setattr(inference, "block_forward", lambda *a: calls.append(1) or real(*a))
    model = TimeSformer(TimeSformerConfig(**SMALL))
    x = torch.randn(1, 3, 3, 32, 32)
    model.eval()(x)  # autograd on: reference path
    with torch.no_grad():
        model.train()(x)  # training: reference path
        model.eval()(x, return_attention=True)  # weights asked for: reference path
        assert not calls
        model(x)
    assert len(calls) == SMALL["depth"]


def test_fused_temporal_weights_follow_weight_changes() -> None:
    """The cached temporal_fc @ temporal_attn.proj is rebuilt after in-place and loaded updates."""
    model = TimeSformer(TimeSformerConfig(**SMALL)).eval()
    x = torch.randn(1, 3, 3, 32, 32)

    def check() -> None:
        with torch.no_grad():
            model.set_inference_options(fast=False)
            ref = model(x)
            model.set_inference_options(fast=True)
            torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=0)

    check()
    with torch.no_grad():
        model.blocks[0].temporal_fc.weight.mul_(-2.0)  # in place, as an optimizer step does
    check()
    other = TimeSformer(TimeSformerConfig(**SMALL))
    model.load_state_dict(other.state_dict())
    check()


def test_inference_options_are_checked() -> None:
    model = TimeSformer(TimeSformerConfig(**SMALL))
    with pytest.raises(ValueError, match="chunk_tokens must be >= 1 or None; got 0"):
        model.set_inference_options(chunk_tokens=0)
    model.set_inference_options(fast=False, chunk_tokens=None)
    assert all(not b.fast_inference and b.inference_chunk_tokens is None for b in model.blocks)
