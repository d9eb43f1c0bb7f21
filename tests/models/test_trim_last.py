"""The last block computes the class token alone when only it is read (pool="cls"): the same
logits, features and gradients as computing every token, for every attention scheme, in eval
(the fast path, chunked or not) and in training (with and without checkpointing)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from timesformer.models import count_flops, create_model

SCHEMES = ["divided_space_time", "space_only", "joint_space_time", "sparse_local_global", "axial"]


def _model(attention_type: str, **kw: object) -> nn.Module:
    torch.manual_seed(0)
    m = create_model(
        "timesformer_tiny",
        attention_type=attention_type,
        depth=2,
        num_frames=4,
        img_size=64,
        num_classes=5,
        **kw,
    )
    with torch.no_grad():  # zero-initialised extra-step outputs would hide a wrong temporal step
        for blk in m.blocks:
            for _, _, fc in blk.extra_steps():
                fc.weight.normal_(0, 0.05)
    return m


def _video() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, 4, 64, 64)  # (B, C, T, H, W)


def _last_block_rows(m: nn.Module, x: torch.Tensor) -> int:
    """How many token rows the last block returned (hooked)."""
    seen: list[int] = []
    h = m.blocks[-1].register_forward_hook(lambda mod, a, out: seen.append(out.shape[1]))
    try:
        m(x)
    finally:
        h.remove()
    return seen[0]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("chunk", [None, 64])
def test_eval_logits_and_features_match(scheme: str, chunk: int | None) -> None:
    m = _model(scheme).eval()
    m.set_inference_options(chunk_tokens=chunk)
    x = _video()
    for amp, atol in ((False, 1e-5), (True, 2e-2)):
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=amp):
            m.trim_last_block = True
            got, feats = m(x), m.forward_features(x)
            assert _last_block_rows(m, x) == 1  # it really ran trimmed
            m.trim_last_block = False
            ref, ref_feats = m(x), m.forward_features(x)
            assert _last_block_rows(m, x) > 1
        assert got.shape == ref.shape == (2, 5)
        torch.testing.assert_close(got.float(), ref.float(), atol=atol, rtol=0.02)
        torch.testing.assert_close(feats.float(), ref_feats.float(), atol=atol, rtol=0.02)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_training_outputs_and_gradients_match(scheme: str, checkpointing: bool) -> None:
    m = _model(scheme, drop_path_rate=0.3).train()  # drop path draws per row: same draws
    m.set_grad_checkpointing(checkpointing)
    x = _video()
    results = []
    for trim in (True, False):
        m.trim_last_block = trim
        m.zero_grad(set_to_none=True)
        torch.manual_seed(2)
        out = m(x)
        (out * torch.arange(5.0)).sum().backward()
        grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
        results.append((out.detach(), grads))
    (a, ga), (b, gb) = results
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert ga.keys() == gb.keys() and ga  # the same parameters get gradients
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], atol=1e-5, rtol=1e-4, msg=n)


def test_other_reads_keep_every_token() -> None:
    m = _model("divided_space_time").eval()
    x = _video()
    with torch.no_grad():
        mean_feats = m.forward_features(x, pool="mean")  # needs every patch token
        m.trim_last_block = False
        ref = m.forward_features(x, pool="mean")
        m.trim_last_block = True
        _, att = m(x, return_attention=True)  # attention maps need every query of every block
    torch.testing.assert_close(mean_feats, ref)
    spatial = att[-1][-1].weights  # (B, T, heads, 1+N, 1+N)
    assert spatial.shape[-2] == spatial.shape[-1] == 1 + 16


def test_flop_count_is_the_model_as_defined() -> None:
    m = _model("divided_space_time")
    m.trim_last_block = False
    full = count_flops(m)
    m.trim_last_block = True
    assert count_flops(m) == full
