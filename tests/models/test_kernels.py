"""Attention kernels per shape (models/kernels.py) and the bf16-weights inference path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from timesformer.models import TimeSformer, TimeSformerConfig, kernels
from timesformer.models.config import ATTENTION_TYPES


def _model(att: str) -> TimeSformer:
    torch.manual_seed(0)
    cfg = TimeSformerConfig(num_frames=4, img_size=32, patch_size=8, embed_dim=48, depth=2,
                            num_heads=3, num_classes=5, attention_type=att)  # fmt: skip
    return TimeSformer(cfg).eval()


@pytest.mark.parametrize("shape", [(6, 3, 8, 16), (2, 3, 17, 16), (1, 2, 65, 8)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_explicit_attention_matches_sdpa(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    q, k, v = (torch.randn(shape).to(dtype) for _ in range(3))
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    got = kernels.explicit_attention(q, k, v)
    assert got.shape == ref.shape and got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    assert (got.float() - ref).abs().max().item() < tol


@pytest.mark.parametrize("att", ATTENTION_TYPES)
def test_every_kernel_gives_the_sdpa_logits_for_every_scheme(att: str) -> None:
    model = _model(att)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        ref = model(x)
        for kernel in ("explicit", "joined", "auto"):
            model.set_inference_options(attention_kernel=kernel)
            assert (model(x) - ref).abs().max().item() < 1e-5, kernel
        model.set_inference_options(attention_kernel="sdpa")
    # "auto" measured each shape once and remembered the winner
    names = {"sdpa", "explicit", "joined2", "joined4", "joined8"}
    assert kernels.choices() and set(kernels.choices().values()) <= names


def _qkv_views(G: int, L: int, h: int, d: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """q, k, v (G, h, L, d) as the model makes them: views of one (G, L, 3, h, d) qkv output."""
    qkv = torch.randn(G, L, 3, h, d).to(dtype)
    return tuple(qkv.permute(2, 0, 3, 1, 4).unbind(0))


@pytest.mark.parametrize("G", [1, 3, 8, 10])
@pytest.mark.parametrize("groups", [2, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_joined_attention_is_attention_within_each_group(
    G: int, groups: int, dtype: torch.dtype
) -> None:
    """Joining k groups into one masked sequence changes nothing: every token attends only to
    its own group's L tokens (leftover groups, G % k, run plainly)."""
    q, k, v = _qkv_views(G, 8, 3, 16, dtype)
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float())  # (G, h, L, d)
    got = kernels.joined_attention(q, k, v, groups)
    assert got.shape == ref.shape and got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    assert (got.float() - ref).abs().max().item() < tol


def test_joined_attention_joins_model_layouts_and_falls_back_on_others(monkeypatch) -> None:
    joins = []
    real = kernels._join
    monkeypatch.setattr(kernels, "_join", lambda t, g: joins.append(g) or real(t, g))
    q, k, v = _qkv_views(8, 8, 2, 16, torch.float32)
    kernels.joined_attention(q, k, v, 4)
    assert joins == [4, 4, 4]  # the qkv layout is joinable: no copies, one SDPA call
    joins.clear()
    qc = torch.randn(8, 2, 8, 16)  # (G, h, L, d) contiguous: head-major, not joinable
    got = kernels.joined_attention(qc, qc, qc, 4)
    assert joins == []
    assert torch.allclose(got, F.scaled_dot_product_attention(qc, qc, qc), atol=1e-6)


def test_joined_attention_trains() -> None:
    """Gradients through the joined kernel equal SDPA's (it may be forced for training)."""
    qkv = torch.randn(6, 8, 3, 2, 16, requires_grad=True)
    grads = []
    for kind in ("sdpa", "joined4"):
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        (kernels._run(kind, q, k, v) ** 2).sum().backward()
        grads.append(qkv.grad.clone())
        qkv.grad = None
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_joined_rule_aims_at_a_short_joined_sequence() -> None:
    assert kernels.joined_groups(8, torch.bfloat16) == 4
    assert kernels.joined_groups(8, torch.float32) == 2
    assert kernels.joined_groups(197, torch.bfloat16) == 1


def test_inference_kernel_setting_does_not_reach_training() -> None:
    model = _model("divided_space_time")
    model.set_inference_options(attention_kernel="explicit")
    model.set_training_options(attention_kernel="sdpa")
    calls = []
    orig = kernels.explicit_attention
    kernels.explicit_attention = lambda *a: calls.append(1) or orig(*a)
    try:
        model(torch.randn(1, 3, 4, 32, 32)).sum().backward()  # eval mode, but autograd on
        assert calls == []  # training kernel "sdpa" held
        with torch.no_grad():
            model(torch.randn(1, 3, 4, 32, 32))
        assert calls  # inference: the explicit kernel ran
    finally:
        kernels.explicit_attention = orig


def test_unknown_kernel_is_one_clear_error() -> None:
    with pytest.raises(
        ValueError, match="attention kernel 'fast' is not one of sdpa, explicit, joined, auto"
    ):
        _model("divided_space_time").set_inference_options(attention_kernel="fast")


@pytest.mark.parametrize("att", ["divided_space_time", "joint_space_time", "space_only"])
def test_bf16_weights_match_autocast(att: str) -> None:
    model = _model(att)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            amp = model(x).float()
        model.to(torch.bfloat16)  # weights cast once; the fused temporal linear is rebuilt
        cast = model(x.to(torch.bfloat16))
    assert cast.dtype == torch.bfloat16
    scale = ref.abs().max().item()
    assert (cast.float() - amp).abs().max().item() < 0.05 * scale
    assert (cast.float() - ref).abs().max().item() < 0.05 * scale


def test_auto_is_the_default_and_the_environment_can_fix_it(monkeypatch) -> None:
    model = _model("divided_space_time")
    assert {m.kernel for m in model.modules() if hasattr(m, "attend")} == {"auto"}
    monkeypatch.setattr(kernels, "_CHOICE", {})
    monkeypatch.setenv(kernels.ENV_KERNEL, "explicit")
    with torch.no_grad():
        model(torch.randn(1, 3, 4, 32, 32))
    assert set(kernels.choices().values()) == {"explicit"}
    monkeypatch.setattr(kernels, "_CHOICE", {})
    monkeypatch.setenv(kernels.ENV_KERNEL, "flash")
    with pytest.raises(ValueError, match="TIMESFORMER_ATTENTION_KERNEL"):
        with torch.no_grad():
            model(torch.randn(1, 3, 4, 32, 32))


def test_auto_does_not_time_kernels_off_the_cpu() -> None:
    q = torch.empty(4, 2, 8, 16, device="meta")
    assert kernels.choose(q, q, q) == "sdpa"


def test_graphs_keep_the_fixed_rule_and_exports_the_standard_op(monkeypatch) -> None:
    """Inside torch.compile "auto" follows the fixed per-length rule (no timing in a graph; an
    8-token bf16 sequence takes the explicit path, in inference and in training); exports
    (torch.export, ONNX) keep SDPA, the op every runtime knows."""
    traced: list[int] = []
    real = kernels.explicit_attention

    def counting(*a, **kw):
        traced.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(kernels, "explicit_attention", counting)
    q, k, v = (torch.randn(4, 2, 8, 16, dtype=torch.bfloat16) for _ in range(3))

    def f(q, k, v):
        return kernels.attend(q, k, v, "auto", train_kernel="auto")

    torch._dynamo.reset()
    try:
        with torch.no_grad():
            out = torch.compile(f, backend="eager")(q, k, v)
        assert traced, "compiled inference did not take the explicit path"
        ref = F.scaled_dot_product_attention(q, k, v)
        assert torch.allclose(out.float(), ref.float(), atol=2e-2)
        traced.clear()
        qg = q.clone().requires_grad_()
        torch.compile(f, backend="eager")(qg, k, v).float().sum().backward()
        assert traced and qg.grad is not None

        class M(torch.nn.Module):
            def forward(self, q, k, v):
                return f(q, k, v)

        traced.clear()
        with torch.no_grad():
            torch.export.export(M(), (q, k, v))
        assert not traced, "an export took the explicit path"
    finally:
        torch._dynamo.reset()
