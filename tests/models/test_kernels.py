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
        for kernel in ("explicit", "auto"):
            model.set_inference_options(attention_kernel=kernel)
            assert (model(x) - ref).abs().max().item() < 1e-5, kernel
        model.set_inference_options(attention_kernel="sdpa")
    # "auto" measured each shape once and remembered the winner
    assert kernels.choices() and set(kernels.choices().values()) <= {"sdpa", "explicit"}


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
    with pytest.raises(ValueError, match="attention kernel 'fast' is not one of sdpa, explicit"):
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
