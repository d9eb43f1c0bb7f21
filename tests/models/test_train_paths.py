"""Training-path speed work: the fixed attention-kernel rule, packed fp32 linears with autograd,
and temporal_fc folded into the temporal projection. Each must give the reference gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from timesformer.models import TimeSformer, TimeSformerConfig, kernels, packed


def _model(att: str = "divided_space_time", **kw) -> TimeSformer:
    torch.manual_seed(0)
    geom = dict(num_frames=4, img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)
    cfg = TimeSformerConfig(num_classes=5, attention_type=att, **{**geom, **kw})
    model = TimeSformer(cfg).eval()  # eval: no drop path, so runs are comparable; autograd on
    with torch.no_grad():  # the official zero init would hide temporal_fc's gradient path
        for blk in model.blocks:
            for _, _, fc in blk.extra_steps():
                fc.weight.normal_(0, 0.05)
                fc.bias.normal_(0, 0.05)
    return model


def _grads(model: TimeSformer, x: torch.Tensor, amp: bool = False) -> tuple:
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        out = model(x)
    out.float().square().sum().backward()
    return out.detach().float(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _reference(model: TimeSformer) -> None:
    model.set_training_options(attention_kernel="sdpa", packed_linears=False)
    for blk in model.blocks:
        blk.fold_temporal_out = False


def _fast(model: TimeSformer) -> None:
    model.set_training_options()
    for blk in model.blocks:
        blk.fold_temporal_out = True


def _rel(a: dict, b: dict) -> float:
    return max(((a[n] - b[n]).abs().max() / (a[n].abs().max() + 1e-12)).item() for n in a)


@pytest.mark.parametrize("att", ["divided_space_time", "joint_space_time", "axial"])
def test_fast_training_path_gives_the_reference_gradients(att: str) -> None:
    model = _model(att)
    x = torch.randn(2, 3, 4, 32, 32)
    _reference(model)
    out0, g0 = _grads(model, x)
    _fast(model)
    out1, g1 = _grads(model, x)
    assert (out0 - out1).abs().max().item() < 1e-5
    assert _rel(g0, g1) < 1e-4
    # bf16 autocast: same within bf16 rounding
    _reference(model)
    out2, g2 = _grads(model, x, amp=True)
    _fast(model)
    out3, g3 = _grads(model, x, amp=True)
    assert (out2 - out3).abs().max().item() < 0.02 * out2.abs().max().item()
    assert _rel(g2, g3) < 0.1


def test_training_rule_runs_explicit_for_short_cpu_sequences_only(monkeypatch) -> None:
    monkeypatch.setattr(kernels, "CPU_HAS_AMX", False)  # the rule without AMX, on any machine
    assert kernels.training_kernel(8, torch.float32, "cpu") == "explicit"
    assert kernels.training_kernel(197, torch.float32, "cpu") == "sdpa"
    assert kernels.training_kernel(197, torch.bfloat16, "cpu") == "explicit"
    assert kernels.training_kernel(1569, torch.bfloat16, "cpu") == "sdpa"  # joint: no (L, L)
    assert kernels.training_kernel(8, torch.float32, "cuda") == "sdpa"
    model = _model(img_size=96)  # frames of 1 + 12 x 12 = 145 tokens: SDPA in fp32
    seen: list[int] = []
    orig = kernels.explicit_attention
    kernels.explicit_attention = lambda q, *a: seen.append(q.shape[-2]) or orig(q, *a)
    try:
        model(torch.randn(1, 3, 4, 96, 96)).sum().backward()
        assert seen == [4, 4]  # the two blocks' 4-frame temporal steps only
        seen.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(torch.randn(1, 3, 4, 96, 96)).float().sum().backward()
        assert seen == [4, 145, 4, 145]  # bf16: the frames too
    finally:
        kernels.explicit_attention = orig


def test_training_rule_keeps_sdpa_for_fp32_on_amx_cpus(monkeypatch) -> None:
    monkeypatch.setattr(kernels, "CPU_HAS_AMX", True)
    assert kernels.training_kernel(8, torch.float32, "cpu") == "sdpa"
    assert kernels.training_kernel(197, torch.float32, "cpu") == "sdpa"
    assert kernels.training_kernel(8, torch.bfloat16, "cpu") == "explicit"
    assert kernels.training_kernel(197, torch.bfloat16, "cpu") == "explicit"
    monkeypatch.setenv(kernels.ENV_KERNEL, "explicit")  # the environment still fixes it
    assert kernels.training_kernel(8, torch.float32, "cpu") == "explicit"


def test_training_rule_holds_across_calls_and_the_environment_fixes_it(monkeypatch) -> None:
    monkeypatch.setenv(kernels.ENV_KERNEL, "sdpa")
    assert kernels.training_kernel(8, torch.float32, "cpu") == "sdpa"
    monkeypatch.setenv(kernels.ENV_KERNEL, "explicit")
    assert kernels.training_kernel(4000, torch.float32, "cpu") == "explicit"


def test_explicit_attention_dropout_drops_weights() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 8, 16, requires_grad=True) for _ in range(3))
    full = kernels.explicit_attention(q, k, v)
    dropped = kernels.explicit_attention(q, k, v, dropout_p=0.5)
    assert not torch.allclose(full, dropped)
    dropped.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_grad", [True, False])
def test_packed_training_linear_matches_f_linear(bias: bool, x_grad: bool) -> None:
    if not packed.available():
        pytest.skip("this torch has no oneDNN packed-linear ops")
    torch.manual_seed(0)
    lin = packed.Linear(24, 40, bias=bias)
    x = torch.randn(3, 7, 24, requires_grad=x_grad)
    assert packed.train_applies(x, lin.weight)
    y = lin(x)
    g = torch.randn_like(y)
    y.backward(g)
    got = [lin.weight.grad.clone()] + ([lin.bias.grad.clone()] if bias else [])
    got_x = x.grad.clone() if x_grad else None
    lin.zero_grad()
    x.grad = None
    ref = F.linear(x, lin.weight, lin.bias)
    ref.backward(g)
    assert (y - ref).abs().max().item() < 1e-5
    want = [lin.weight.grad] + ([lin.bias.grad] if bias else [])
    for a, b in zip(got, want):
        assert (a - b).abs().max().item() < 1e-4
    if x_grad:
        assert (got_x - x.grad).abs().max().item() < 1e-5


def test_packed_training_linear_stays_off_where_it_does_not_apply() -> None:
    lin = packed.Linear(8, 8)
    x = torch.randn(2, 8, requires_grad=True)
    with torch.no_grad():
        assert not packed.train_applies(x, lin.weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not packed.train_applies(x, lin.weight)
    assert not packed.train_applies(x.double(), lin.weight.double())
    assert not packed.train_applies(torch.randn(2, 8), lin.weight.detach())  # nothing to train


def test_fold_is_off_with_projection_dropout_and_for_explained_runs() -> None:
    model = _model(drop_rate=0.1).train()
    assert not any(blk._fold_temporal_out() for blk in model.blocks)
    model.eval()
    assert all(blk._fold_temporal_out() for blk in model.blocks)  # dropout off in eval
    calls: list[int] = []
    orig = model.blocks[0]._temporal_out_folded
    model.blocks[0]._temporal_out_folded = lambda a: calls.append(1) or orig(a)
    x = torch.randn(1, 3, 4, 32, 32)
    model(x).sum().backward()
    assert calls == [1]
    calls.clear()
    model(x, return_attention=True)  # attention weights asked: the unfolded path
    assert calls == []
