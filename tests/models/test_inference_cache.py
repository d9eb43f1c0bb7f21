"""The eval fast path's fused temporal weight follows dtype, autocast and module casts."""

from __future__ import annotations

import pytest
import torch
from _checkpoint_helpers import _ours, _video  # conftest puts this folder on sys.path


def _both(model, x):
    """(fast path, reference path) logits of `model` on `x`, without autograd."""
    with torch.no_grad():
        model.set_inference_options(fast=True)
        fast = model(x)
        model.set_inference_options(fast=False)
        ref = model(x)
        model.set_inference_options(fast=True)
    return fast.float(), ref.float()


def _bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_fused_cache_follows_fp32_bf16_autocast_and_module_casts() -> None:
    model = _ours(attention_type="divided_space_time").eval()  # temporal_fc perturbed: not zero
    x = _video()

    fast, ref = _both(model, x)  # 1. fp32
    assert torch.allclose(fast, ref, atol=1e-5), (fast - ref).abs().max()
    fp32_ref = ref

    with _bf16_autocast():  # 2. bf16 autocast: the fused weight is formed for bf16
        fast, ref = _both(model, x)
    assert torch.allclose(fast, ref, atol=0.1, rtol=0.05), (fast - ref).abs().max()
    assert not torch.equal(fast, fp32_ref)  # it really ran in bf16

    fast, ref = _both(model, x)  # 3. fp32 again: no dtype mismatch, the fp32 answer
    assert torch.allclose(fast, fp32_ref, atol=1e-5), (fast - fp32_ref).abs().max()

    model.to(torch.bfloat16)  # 4. bf16 weights and inputs
    fast, ref = _both(model, x.to(torch.bfloat16))
    assert torch.allclose(fast, ref, atol=0.1, rtol=0.05), (fast - ref).abs().max()

    model.float()  # 5. back to fp32 (weights rounded through bf16): fast == reference
    fast, ref = _both(model, x)
    assert torch.allclose(fast, ref, atol=1e-5), (fast - ref).abs().max()
    assert not torch.allclose(ref, fp32_ref, atol=1e-7)  # the round trip changed the weights


def test_an_autocast_call_first_does_not_leak_bf16_into_fp32() -> None:
    model = _ours(attention_type="divided_space_time").eval()
    x = _video()
    with _bf16_autocast():
        fast, ref = _both(model, x)
    assert torch.allclose(fast, ref, atol=0.1, rtol=0.05), (fast - ref).abs().max()
    fast, ref = _both(model, x)  # was: RuntimeError ... Float and BFloat16
    assert fast.dtype == torch.float32 and torch.allclose(fast, ref, atol=1e-5)


def test_fused_weight_is_recomputed_when_a_weight_changes_in_place() -> None:
    model = _ours(attention_type="divided_space_time").eval()
    x = _video()
    _both(model, x)
    with torch.no_grad():
        model.blocks[0].temporal_fc.weight.mul_(2.0)
    fast, ref = _both(model, x)
    assert torch.allclose(fast, ref, atol=1e-5), (fast - ref).abs().max()


def test_a_cast_round_trip_without_a_call_between_drops_the_cache() -> None:
    model = _ours(attention_type="divided_space_time").eval()
    x = _video()
    _both(model, x)
    model.to(torch.bfloat16).float()  # same dtype as the cached entry, other (rounded) weights
    assert all(b._fused_cache is None for b in model.blocks)
    fast, ref = _both(model, x)
    assert torch.allclose(fast, ref, atol=1e-5), (fast - ref).abs().max()


def _step(model, optimizer, x) -> None:
    """One training step on `x` (loss: the logits' squared norm)."""
    optimizer.zero_grad()
    model(x).pow(2).mean().backward()
    optimizer.step()


@pytest.mark.parametrize("kind", ["adamw_fused", "sgd_fused", "adamw_foreach"])
def test_an_optimizer_step_in_eval_mode_refreshes_the_fused_weight(kind: str) -> None:
    # fused optimizers write weights without bumping their version counters
    model = _ours(attention_type="divided_space_time").eval()
    x = _video()
    _both(model, x)  # fills the cache
    params = list(model.parameters())
    optimizer = {
        "adamw_fused": lambda: torch.optim.AdamW(params, lr=0.05, fused=True),
        "sgd_fused": lambda: torch.optim.SGD(params, lr=0.5, fused=True),
        "adamw_foreach": lambda: torch.optim.AdamW(params, lr=0.05, foreach=True),
    }[kind]()
    before = model.blocks[0].temporal_fc.weight.detach().clone()
    _step(model, optimizer, x)
    assert not torch.equal(before, model.blocks[0].temporal_fc.weight)  # the step moved it
    fast, ref = _both(model, x)
    assert torch.allclose(fast, ref, atol=1e-5), (fast - ref).abs().max()


def test_validation_between_fused_training_epochs_sees_the_new_weights() -> None:
    # the training loop's pattern: train() -> steps -> eval() -> no_grad forward, repeated
    model = _ours(attention_type="divided_space_time")
    x = _video()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    for _ in range(3):
        model.train()
        _step(model, optimizer, x)
        model.eval()
        fast, ref = _both(model, x)
        assert torch.allclose(fast, ref, atol=1e-5), (fast - ref).abs().max()


def test_mode_switch_drops_the_cache() -> None:
    model = _ours(attention_type="divided_space_time").eval()
    with torch.no_grad():
        model(_video())
    assert all(b._fused_cache is not None for b in model.blocks)
    model.train()
    assert all(b._fused_cache is None for b in model.blocks)
