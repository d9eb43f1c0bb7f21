"""Inference linears on oneDNN-packed weights: same results as F.linear, caches that follow
every change of the weights, and the plain path wherever packing does not apply."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _checkpoint_helpers import _ours, _video  # conftest puts this folder on sys.path
from torch import nn

from timesformer.models import packed

pytestmark = pytest.mark.skipif(not packed.available(), reason="no oneDNN ops in this torch")


def _linear(dtype: torch.dtype) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(48, 80).to(dtype)


@pytest.mark.parametrize("gelu", [None, "none", "tanh"])
def test_matches_f_linear_in_fp32_and_bf16(gelu: str | None) -> None:
    for dtype, atol in ((torch.float32, 1e-5), (torch.bfloat16, 0.05)):
        lin = _linear(dtype)
        x = torch.randn(3, 7, 48).to(dtype)  # (.., in): leading dims are kept
        with torch.no_grad():
            got = packed.module_linear(lin, x, gelu=gelu)
            ref = lin(x) if gelu is None else F.gelu(lin(x).float(), approximate=gelu)
        assert got.shape == (3, 7, 80) and got.dtype == dtype
        assert torch.allclose(got.float(), ref.float(), atol=atol, rtol=0.02), (dtype, gelu)
        assert lin._packed_cache is not None  # it really ran packed


def test_bf16_without_gelu_is_bit_identical() -> None:
    lin = _linear(torch.bfloat16)
    x = torch.randn(64, 48).bfloat16()
    with torch.no_grad():
        assert torch.equal(packed.module_linear(lin, x), lin(x))


def test_autocast_runs_in_bf16_from_fp32_weights() -> None:
    lin = _linear(torch.float32)
    x = torch.randn(16, 48)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got, ref = packed.module_linear(lin, x), lin(x)
    assert got.dtype == ref.dtype == torch.bfloat16
    assert torch.allclose(got.float(), ref.float(), atol=0.05, rtol=0.02)
    with torch.no_grad():  # then fp32 again: a new packed weight, not the bf16 one
        assert packed.module_linear(lin, x).dtype == torch.float32


def test_with_autograd_it_is_plain_f_linear() -> None:
    lin = _linear(torch.float32)
    x = torch.randn(4, 48, requires_grad=True)
    y = packed.module_linear(lin, x)
    y.sum().backward()  # gradients flow: the plain op ran
    assert x.grad is not None and getattr(lin, "_packed_cache", None) is None


def test_cache_follows_in_place_changes_and_fused_optimizer_steps() -> None:
    lin = _linear(torch.float32)
    x = torch.randn(8, 48)
    with torch.no_grad():
        packed.module_linear(lin, x)
        lin.weight.mul_(2.0)  # bumps the version
        assert torch.allclose(packed.module_linear(lin, x), lin(x), atol=1e-5)
    opt = torch.optim.AdamW(lin.parameters(), lr=0.1, fused=True)  # does not bump versions
    lin(x).pow(2).mean().backward()
    opt.step()
    with torch.no_grad():
        assert torch.allclose(packed.module_linear(lin, x), lin(x), atol=1e-5)


def test_model_fast_path_packed_equals_unpacked_and_reference() -> None:
    model = _ours(attention_type="divided_space_time").eval()
    x = _video()
    with torch.no_grad():
        fast = model(x)
        assert any(getattr(m, "_packed_cache", None) is not None for m in model.modules())
        model.set_inference_options(packed_linears=False)
        assert all(getattr(m, "_packed_cache", None) is None for m in model.modules())
        plain = model(x)
        assert all(getattr(m, "_packed_cache", None) is None for m in model.modules())
        model.set_inference_options(fast=False)
        ref = model(x)
    assert torch.allclose(fast, plain, atol=1e-5) and torch.allclose(fast, ref, atol=1e-5)


def test_casts_and_mode_switches_drop_the_packed_weights() -> None:
    model = _ours(attention_type="divided_space_time").eval()
    x = _video()
    with torch.no_grad():
        model(x)
    model.to(torch.bfloat16).float()  # same dtype as cached, other (rounded) weights
    assert all(getattr(m, "_packed_cache", None) is None for m in model.blocks.modules())
    with torch.no_grad():
        fast = model(x)
        model.set_inference_options(fast=False)
        ref = model(x)
        model.set_inference_options(fast=True)
    assert torch.allclose(fast, ref, atol=1e-5)
    with torch.no_grad():
        model(x)
    model.train()
    assert all(getattr(m, "_packed_cache", None) is None for m in model.blocks.modules())


@pytest.mark.parametrize("amp", [False, True])
def test_runs_under_inference_mode(amp: bool) -> None:
    # inference tensors keep no version counter: the caches' keys must not ask for one
    model = _ours(attention_type="divided_space_time").eval()
    x = _video()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        ref = model(x)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        out = model(x)
        again = model(x)  # the caches built under inference mode are reused
    assert torch.equal(out, ref) and torch.equal(again, ref)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        assert torch.equal(model(x), ref)  # and still serve outside it
    with torch.inference_mode():
        built_inside = _ours(attention_type="divided_space_time").eval()  # inference params
        assert torch.isfinite(built_inside(x)).all()
