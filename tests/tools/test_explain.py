"""Attention maps: rollout arithmetic by hand, agreement with dense matrices, shapes and
normalisation for every scheme, gradient plumbing, and the files written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from timesformer import AttentionStep, TimeSformer, TimeSformerConfig
from timesformer.tools.explain import (
    _build_steps,
    class_relevance,
    explain,
    rollout_matrix,
    step_matrix,
    upsample_maps,
)
from timesformer.tools.explain_figures import denormalize, save_explanation

SCHEMES = [
    "divided_space_time",
    "joint_space_time",
    "space_only",
    "sparse_local_global",
    "axial",
]

# ---------------------------------------------------------------------------------------------
# A hand-sized divided block: T = 2 frames of N = 2 patches (grid 1 x 2), sequence of 5 tokens:
# 0 = class, 1 = (t0, n0), 2 = (t0, n1), 3 = (t1, n0), 4 = (t1, n1).

W_TIME = [[[0.8, 0.2], [0.4, 0.6]], [[1.0, 0.0], [0.5, 0.5]]]  # groups: n0 over (1, 3), n1 (2, 4)
W_SPACE = [
    [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]],  # frame 0: tokens (0, 1, 2)
    [[0.3, 0.1, 0.6], [0.2, 0.4, 0.4], [0.0, 0.5, 0.5]],  # frame 1: tokens (0, 3, 4)
]
# The same steps written as dense 5 x 5 matrices by hand.
A_TIME = np.array(
    [
        [1.0, 0.0, 0.0, 0.0, 0.0],  # the class token does not take part: identity row
        [0.0, 0.8, 0.0, 0.2, 0.0],
        [0.0, 0.0, 1.0, 0.0, 0.0],
        [0.0, 0.4, 0.0, 0.6, 0.0],
        [0.0, 0.0, 0.5, 0.0, 0.5],
    ]
)
A_SPACE = np.array(
    [
        [0.4, 0.15, 0.1, 0.05, 0.3],  # class token: mean of its rows in the two frames
        [0.1, 0.6, 0.3, 0.0, 0.0],
        [0.2, 0.2, 0.6, 0.0, 0.0],
        [0.2, 0.0, 0.0, 0.4, 0.4],
        [0.0, 0.0, 0.0, 0.5, 0.5],
    ]
)


def hand_block(heads: int = 1) -> list[AttentionStep]:
    """One divided block's steps as the model reports them (weights repeated over heads)."""
    wt = torch.tensor(W_TIME).view(1, 2, 1, 2, 2).expand(1, 2, heads, 2, 2)
    ws = torch.tensor(W_SPACE).view(1, 2, 1, 3, 3).expand(1, 2, heads, 3, 3)
    return [
        AttentionStep("temporal", wt, torch.tensor([[1, 3], [2, 4]])),
        AttentionStep("spatial", ws, torch.tensor([[0, 1, 2], [0, 3, 4]]), cls_shared=True),
    ]


def mixed(A: np.ndarray) -> np.ndarray:
    M = 0.5 * A + 0.5 * np.eye(len(A))
    return M / M.sum(1, keepdims=True)


def test_step_matrices_match_hand_written() -> None:
    steps = _build_steps([hand_block(heads=3)], space_only=False, num_frames=2)[0]
    np.testing.assert_allclose(step_matrix(steps[0], 5)[0].numpy(), A_TIME, atol=1e-6)
    np.testing.assert_allclose(step_matrix(steps[1], 5)[0].numpy(), A_SPACE, atol=1e-6)


def test_rollout_by_hand_one_block() -> None:
    # class row of (0.5 A_s + 0.5 I)(0.5 A_t + 0.5 I), worked out on paper:
    # [0.7, 0.0725, 0.0875, 0.0275, 0.1125]; the patches renormalised over their 0.3.
    expected = np.array([0.0725, 0.0875, 0.0275, 0.1125]) / 0.3
    rel = class_relevance([hand_block()], (2, 1, 2), "rollout")
    assert rel.shape == (1, 2, 1, 2)
    np.testing.assert_allclose(rel.flatten().numpy(), expected, atol=1e-6)
    # patch (t0, n0) gets mass from (t1, n0) only through the temporal step: without it the
    # class row would be the spatial step's [0.15, 0.1, 0.05, 0.3] / 0.6
    assert abs(float(rel[0, 0, 0, 0]) - 0.15 / 0.6) > 0.005
    M = rollout_matrix([hand_block()], 5)[0].numpy()
    np.testing.assert_allclose(M, mixed(A_SPACE) @ mixed(A_TIME), atol=1e-6)
    np.testing.assert_allclose(M[0], [0.7, 0.0725, 0.0875, 0.0275, 0.1125], atol=1e-6)


def test_rollout_two_blocks_multiplies_in_order() -> None:
    M = mixed(A_SPACE) @ mixed(A_TIME) @ mixed(A_SPACE) @ mixed(A_TIME)
    expected = M[0, 1:] / M[0, 1:].sum()
    rel = class_relevance([hand_block(), hand_block()], (2, 1, 2), "rollout")
    np.testing.assert_allclose(rel.flatten().numpy(), expected, atol=1e-6)
    # the other order gives another answer: the order is really used
    wrong = mixed(A_TIME) @ mixed(A_SPACE) @ mixed(A_TIME) @ mixed(A_SPACE)
    assert np.abs(wrong[0, 1:] / wrong[0, 1:].sum() - expected).max() > 0.01


def test_cls_method_reads_last_spatial_step() -> None:
    rel = class_relevance([hand_block(), hand_block()], (2, 1, 2), "cls")
    np.testing.assert_allclose(rel.flatten().numpy(), np.array([0.15, 0.1, 0.05, 0.3]) / 0.6)


def test_space_only_is_per_frame_rollout_averaged() -> None:
    ws = torch.tensor(W_SPACE).view(1, 2, 1, 3, 3)
    step = AttentionStep("space", ws, torch.tensor([[0, 1, 2], [0, 3, 4]]), cls_shared=True)
    rel = class_relevance([[step]], (2, 1, 2), "rollout", space_only=True)
    # frame 0: class row of 0.5 W0 + 0.5 I = [0.75, 0.15, 0.1]; frame 1: [0.65, 0.05, 0.3];
    # the model averages the frames' class tokens: patches [0.075, 0.05, 0.025, 0.15] / 0.3
    np.testing.assert_allclose(rel.flatten().numpy(), [0.25, 1 / 6, 1 / 12, 0.5], atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Real (tiny) models


def tiny(attention_type: str, **kw) -> TimeSformer:
    cfg = TimeSformerConfig(
        img_size=(24, 16),
        patch_size=8,
        num_frames=3,
        num_classes=4,
        embed_dim=16,
        depth=2,
        num_heads=2,
        drop_path_rate=0.0,
        attention_type=attention_type,
        labels=["a", "b", "c", "d"],
    )
    return TimeSformer(cfg.replace(**kw)).eval()


def random_attention(model: TimeSformer, x: torch.Tensor) -> list:
    # sharper than the near-uniform attention of a fresh model, so the maps differ visibly
    with torch.no_grad():
        for blk in model.blocks:
            for _, attn, _ in [*blk.extra_steps(), (None, blk.attn, None)]:
                attn.qkv.weight.normal_(0, 0.5)
        _, att = model(x, return_attention=True)
    return att


@pytest.mark.parametrize("attention_type", [s for s in SCHEMES if s != "space_only"])
def test_fast_rollout_equals_dense_product(attention_type: str) -> None:
    model = tiny(attention_type)
    x = torch.randn(1, 3, 3, 24, 16)
    att = random_attention(model, x)
    M = rollout_matrix(att, 1 + 3 * 6)[0]
    dense = M[0, 1:] / M[0, 1:].sum()
    rel = class_relevance(att, (3, 3, 2), "rollout")
    np.testing.assert_allclose(rel.flatten().numpy(), dense.numpy(), atol=1e-6)
    assert float(dense.max() / dense.min()) > 1.2  # not trivially uniform


@pytest.mark.parametrize("attention_type", SCHEMES)
@pytest.mark.parametrize("method", ["rollout", "cls", "grad_rollout"])
def test_shapes_and_normalisation(attention_type: str, method: str) -> None:
    model = tiny(attention_type)
    video = torch.randn(3, 3, 24, 16)
    e = explain(model, video, method=method)
    assert e.maps.shape == (3, 24, 16) and e.maps.dtype == np.float32
    assert e.patch_maps.shape == (3, 3, 2)
    assert (e.maps >= 0).all() and np.isfinite(e.maps).all()
    assert e.maps.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(e.maps.sum((1, 2)), e.frame_relevance, atol=1e-6)
    np.testing.assert_allclose(e.patch_maps.sum((1, 2)), e.frame_relevance, atol=1e-6)
    assert e.frame_relevance.sum() == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        probs = model(video[None]).softmax(-1)[0]
    assert e.predicted == int(probs.argmax())
    assert e.probability == pytest.approx(float(probs.max()), abs=1e-5)
    assert e.label(e.predicted) == "abcd"[e.predicted]


def test_other_geometry_and_bilinear_upsampling() -> None:
    model = tiny("divided_space_time")
    video = torch.randn(1, 3, 5, 32, 24)  # more frames and a larger frame than configured
    e = explain(model, video, upsample="bilinear")
    assert e.maps.shape == (5, 32, 24) and e.patch_maps.shape == (5, 4, 3)
    np.testing.assert_allclose(e.maps.sum((1, 2)), e.frame_relevance, atol=1e-6)
    assert (e.maps >= 0).all()


def test_nearest_upsampling_spreads_each_patch_evenly() -> None:
    patch = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]]]])  # (1, 1, 2, 2)
    up = upsample_maps(patch, (4, 6), "nearest")[0, 0]
    np.testing.assert_allclose(up[:2, :3].numpy(), np.full((2, 3), 0.1 / 6), atol=1e-7)
    np.testing.assert_allclose(up[2:, 3:].numpy(), np.full((2, 3), 0.4 / 6), atol=1e-7)


def test_target_class_and_errors() -> None:
    model = tiny("joint_space_time")
    video = torch.randn(3, 3, 24, 16)
    e = explain(model, video, target="c")
    assert e.target == 2 and e.target_probability == pytest.approx(float(e.probabilities[2]))
    assert explain(model, video, target="3").target == 3
    model.train()
    assert explain(model, video).maps.shape == (3, 24, 16)
    assert model.training  # the caller's mode is restored
    model.eval()
    with pytest.raises(ValueError, match="'z'"):
        explain(model, video, target="z")
    with pytest.raises(ValueError, match="out of range"):
        explain(model, video, target=9)
    with pytest.raises(ValueError, match="method"):
        explain(model, video, method="saliency")
    with pytest.raises(ValueError, match="one video"):
        explain(model, torch.randn(2, 3, 3, 24, 16))


def test_grad_rollout_uses_the_target_gradient() -> None:
    """One joint block: the map is the class row of I + mean_h (dlogit/dA * A)^+, with the
    gradient taken independently here through a hook on the attention module."""
    model = tiny("joint_space_time", depth=1)
    video = torch.randn(1, 3, 3, 24, 16)
    random_attention(model, video)
    captured = []

    def keep(_mod, _inp, out):
        out[1].retain_grad()
        captured.append(out[1])

    handle = model.blocks[0].attn.register_forward_hook(keep)
    maps = {}
    for target in (0, 3):
        captured.clear()
        x = video.clone().requires_grad_(True)
        logits, _ = model(x, return_attention=True)
        logits[0, target].backward()
        A = captured[0]  # (1, heads, S, S)
        Abar = (A.grad * A).clamp(min=0).mean(1)[0]  # (S, S)
        row = Abar[0, 1:].detach()  # e_0 (I + Abar), over the patches
        expected = row / row.sum()
        model.zero_grad()
        maps[target] = explain(model, video, target=target, method="grad_rollout").patch_maps
        np.testing.assert_allclose(maps[target].flatten(), expected.numpy(), atol=1e-5)
    handle.remove()
    assert np.abs(maps[0] - maps[3]).max() > 1e-3  # class-specific


def test_frozen_model_still_gets_gradients() -> None:
    model = tiny("divided_space_time").requires_grad_(False)
    e = explain(model, torch.randn(3, 3, 24, 16), method="grad_rollout")
    assert e.maps.sum() == pytest.approx(1.0, abs=1e-5)
    assert float(e.maps.max()) > 1.5 / e.maps.size  # not the uniform fallback


def test_runs_under_inference_mode_and_names_wrong_input() -> None:
    model = tiny("divided_space_time")
    video = torch.randn(3, 3, 24, 16)
    ref = {m: explain(model, video, method=m).maps for m in ("rollout", "grad_rollout")}
    with torch.inference_mode():
        clip = video.clone()  # an inference tensor, as a user's clip read there would be
        for m, maps in ref.items():
            np.testing.assert_allclose(explain(model, clip, method=m).maps, maps, atol=1e-6)
        built_inside = tiny("divided_space_time")
    with pytest.raises(ValueError, match="inference_mode"):
        explain(built_inside, video, method="grad_rollout")
    with pytest.raises(ValueError, match="clip tensor"):
        explain(model, "clip.mp4")  # type: ignore[arg-type]


def test_files_written_and_readable(tmp_path) -> None:
    model = tiny("divided_space_time")
    video = torch.randn(1, 3, 3, 24, 16)
    e = explain(model, video)
    frames = denormalize(video)
    assert frames.shape == (3, 24, 16, 3) and frames.dtype == np.uint8
    paths = save_explanation(e, frames, tmp_path / "out", extra={"video": "v.mp4"})
    maps = np.load(paths["maps"])
    assert maps.dtype == np.float32 and maps.shape == (3, 24, 16)
    np.testing.assert_array_equal(maps, e.maps)
    summary = json.loads(paths["summary"].read_text())
    assert summary["predicted"]["index"] == e.predicted
    assert summary["predicted"]["label"] == "abcd"[e.predicted]
    assert summary["predicted"]["probability"] == pytest.approx(e.probability)
    assert summary["frame_relevance"] == pytest.approx(e.frame_relevance.tolist(), abs=1e-5)
    assert summary["video"] == "v.mp4" and summary["method"] == "rollout"
    with Image.open(paths["grid"]) as im:
        assert im.format == "PNG" and im.size[0] > 100
    with Image.open(paths["plot"]) as im:
        assert im.format == "PNG"
    with Image.open(paths["gif"]) as im:
        assert im.format == "GIF" and im.n_frames == 3
    with pytest.raises(ValueError, match="differ"):
        save_explanation(e, frames[:, :8], tmp_path / "bad")
