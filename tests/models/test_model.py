"""The TimeSformer network: every preset x scheme x position embedding, costs, attention outputs."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import timesformer
from timesformer.models import (
    PRESETS,
    TimeSformer,
    TimeSformerConfig,
    count_flops,
    create_model,
    resample_pos_embed,
    resample_time_embed,
)
from timesformer.models.attention import Attention, attend_partition, partition
from timesformer.models.config import ATTENTION_TYPES, POS_EMBED_TYPES


def _small(name: str, **kw) -> TimeSformer:
    """A preset's width and heads with a tiny geometry, so that every preset runs on a CPU."""
    args = dict(depth=2, num_frames=2, img_size=32, num_classes=5)
    args.update(kw)
    return create_model(name, **args)


CASES = list(itertools.product(PRESETS, ATTENTION_TYPES, POS_EMBED_TYPES))


@pytest.mark.parametrize("name,attention,pos", CASES)
def test_every_preset_scheme_and_embedding(name: str, attention: str, pos: str) -> None:
    torch.manual_seed(0)
    model = _small(
        name,
        attention_type=attention,
        pos_embed=pos,
        zero_init_temporal_fc=False,
        drop_path_rate=0.0,
    )
    x = torch.randn(2, 3, 2, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    logits.square().sum().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, f"{n} got no gradient"
        assert torch.isfinite(p.grad).all(), n
        assert p.grad.abs().sum() > 0, f"{n} got an all-zero gradient"


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_grad_checkpointing_same_outputs_and_grads(attention: str) -> None:
    model = _small("timesformer_tiny", attention_type=attention, drop_path_rate=0.0)
    x = torch.randn(2, 3, 2, 32, 32)
    out1 = model(x)
    out1.sum().backward()
    g1 = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    out2 = model(x)
    out2.sum().backward()
    torch.testing.assert_close(out1, out2)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, g1[n], msg=n)


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_variable_frames_and_resolution(attention: str) -> None:
    model = _small("timesformer_tiny", attention_type=attention, num_frames=4).eval()
    for T, H, W in [(4, 32, 32), (3, 48, 64), (7, 16, 48), (1, 32, 32)]:
        out = model(torch.randn(1, 3, T, H, W))
        assert out.shape == (1, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_attention_weights_path_matches_sdpa(attention: str) -> None:
    model = _small("timesformer_tiny", attention_type=attention, num_frames=3, img_size=48).eval()
    x = torch.randn(2, 3, 3, 48, 32)  # non-square, odd grid (3 x 2) and odd frame count
    with torch.no_grad():
        ref = model(x)
        out, att = model(x, return_attention=True)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert len(att) == model.config.depth
    T, N = 3, 3 * 2
    for steps in att:
        covered = {}
        for s in steps:
            B, G, h, L, L2 = s.weights.shape
            assert (B, h, L) == (2, 3, L2) and s.index.shape == (G, L)
            torch.testing.assert_close(s.weights.sum(-1), torch.ones(B, G, h, L))
            patches = s.index[s.index > 0]
            covered.setdefault(s.name, []).append(patches)
        for name, pieces in covered.items():
            allp = torch.cat(pieces).sort().values
            # every patch takes part exactly once in every step
            assert torch.equal(allp, torch.arange(1, 1 + T * N)), (attention, name)


def test_partitions_follow_the_paper() -> None:
    T, gh, gw = 4, 6, 4
    g = torch.arange(T * gh * gw).view(T, gh, gw)
    t_of = lambda i: i // (gh * gw)  # noqa: E731
    h_of = lambda i: (i % (gh * gw)) // gw  # noqa: E731
    w_of = lambda i: i % gw  # noqa: E731
    (time,) = partition("time", T, gh, gw, torch.device("cpu"))
    assert time.shape == (gh * gw, T)
    for grp in time.tolist():
        assert len({(h_of(i), w_of(i)) for i in grp}) == 1 and sorted(map(t_of, grp)) == [
            0,
            1,
            2,
            3,
        ]
    (space,) = partition("space", T, gh, gw, torch.device("cpu"))
    assert all(len({t_of(i) for i in grp}) == 1 for grp in space.tolist())
    (width,) = partition("width", T, gh, gw, torch.device("cpu"))
    assert all(len({(t_of(i), h_of(i)) for i in grp}) == 1 for grp in width.tolist())
    (height,) = partition("height", T, gh, gw, torch.device("cpu"))
    assert all(len({(t_of(i), w_of(i)) for i in grp}) == 1 for grp in height.tolist())
    # local: F x H/2 x W/2 windows
    (local,) = partition("local", T, gh, gw, torch.device("cpu"))
    assert local.shape == (4, T * gh * gw // 4)
    for grp in local.tolist():
        assert len({(h_of(i) // 3, w_of(i) // 2) for i in grp}) == 1
        assert {t_of(i) for i in grp} == set(range(T))
    # global: stride 2 in time, height and width
    (glob,) = partition("global", T, gh, gw, torch.device("cpu"))
    assert glob.shape == (8, T * gh * gw // 8)
    for grp in glob.tolist():
        assert len({(t_of(i) % 2, h_of(i) % 2, w_of(i) % 2) for i in grp}) == 1
    assert g.numel() == T * gh * gw


@pytest.mark.parametrize("kind", ["local", "global", "time", "height"])
def test_partitioned_attention_equals_masked_full_attention(kind: str) -> None:
    """Gathering groups and attending within them == full attention with a group mask."""
    torch.manual_seed(1)
    T, gh, gw, D = 3, 3, 5, 16
    P = T * gh * gw
    attn = Attention(D, 2).eval()
    x = torch.randn(2, P, D)
    cls = torch.randn(2, 1, D)
    parts = partition(kind, T, gh, gw, torch.device("cpu"))
    with torch.no_grad():
        cls_out, out = attend_partition(attn, x, parts, cls, kind, False, None)
        # reference: per group, full sequence [cls, group] attention with a mask
        seq = torch.cat([cls, x], dim=1)  # (B, 1+P, D)
        qkv = attn.qkv(seq).view(2, 1 + P, 3, 2, D // 2).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        group_of = torch.full((P,), -1)
        n_groups = 0
        for idx in parts:
            for grp in idx:
                group_of[grp] = n_groups
                n_groups += 1
        assert (group_of >= 0).all()
        same = group_of[:, None] == group_of[None, :]
        mask = torch.ones(1 + P, 1 + P, dtype=torch.bool)
        mask[1:, 1:] = same
        ref = attn.proj(
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            .transpose(1, 2)
            .reshape(2, 1 + P, D)
        )
        # the class token attends to each group separately; its output is the groups' mean
        cls_ref = []
        for gi in range(n_groups):
            m = torch.zeros(1 + P, dtype=torch.bool)
            m[0] = True
            m[1:] = group_of == gi
            o = F.scaled_dot_product_attention(q[:, :, :1], k, v, attn_mask=m[None, None, None])
            cls_ref.append(attn.proj(o.transpose(1, 2).reshape(2, 1, D)))
        cls_ref = torch.stack(cls_ref).mean(0)
    torch.testing.assert_close(out, ref[:, 1:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cls_out, cls_ref, atol=1e-5, rtol=1e-5)


def test_space_only_frames_are_independent_until_the_average() -> None:
    """In space-only attention no patch sees another frame: frame features add up linearly."""
    model = _small("timesformer_tiny", attention_type="space_only", num_frames=2, num_classes=0)
    model.eval()
    a, b = torch.randn(1, 3, 1, 32, 32), torch.randn(1, 3, 1, 32, 32)
    with torch.no_grad():
        # pre-norm class tokens: average of the per-frame runs equals the 2-frame run
        def cls_pre_norm(x: torch.Tensor) -> torch.Tensor:
            seq, geom = model._tokens(x)
            for blk in model.blocks:
                seq = blk(seq, geom)
            return seq.view(1, x.shape[2], *seq.shape[1:]).mean(1)[:, 0]

        both = cls_pre_norm(torch.cat([a, b], dim=2))
        sep = (cls_pre_norm(a) + cls_pre_norm(b)) / 2
    torch.testing.assert_close(both, sep, atol=1e-5, rtol=1e-5)


def test_divided_needs_time_to_mix_frames() -> None:
    """Divided attention mixes frames (a change in frame 1 reaches frame 0's tokens); space-only
    does not."""
    for attention, mixes in [("divided_space_time", True), ("space_only", False)]:
        model = _small("timesformer_tiny", attention_type=attention, zero_init_temporal_fc=False)
        model.eval()
        x = torch.randn(1, 3, 2, 32, 32)
        y = x.clone()
        y[:, :, 1] += 1.0
        with torch.no_grad():
            sa, ga = model._tokens(x)
            sb, _ = model._tokens(y)
            for blk in model.blocks:
                sa, sb = blk(sa, ga), blk(sb, ga)
        N = 4
        if attention == "space_only":
            frame0_a, frame0_b = sa[0, 1:], sb[0, 1:]
        else:
            frame0_a, frame0_b = sa[0, 1 : 1 + N], sb[0, 1 : 1 + N]
        changed = not torch.allclose(frame0_a, frame0_b, atol=1e-6)
        assert changed == mixes, attention


TABLE1 = {  # paper Table 1, ViT-B with a 400-way head
    "space_only": 85.9e6,
    "joint_space_time": 85.9e6,
    "divided_space_time": 121.4e6,
    "sparse_local_global": 121.4e6,
    "axial": 156.8e6,
}


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_parameter_counts_match_table_1(attention: str) -> None:
    with torch.device("meta"):
        model = create_model("timesformer_base", attention_type=attention)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - TABLE1[attention]) / TABLE1[attention] <= 0.003, n


@pytest.mark.parametrize(
    "name,gmacs",
    [("timesformer_base", 196.0), ("timesformer_hr", 1703.0), ("timesformer_l", 2380.0)],
)
def test_costs_match_the_paper(name: str, gmacs: float) -> None:
    # paper: 0.59 / 5.11 / 7.14 TFLOPs for 3 views (one FLOP = one multiply-add)
    with torch.device("meta"):
        model = create_model(name)
    cost = count_flops(model)
    assert abs(cost["gmacs"] - gmacs) / gmacs <= 0.03, cost


def test_count_flops_against_hand_computation() -> None:
    cfg = TimeSformerConfig(
        img_size=32, patch_size=16, num_frames=2, embed_dim=8, depth=1, num_heads=2, num_classes=3
    )
    model = TimeSformer(cfg)
    T, N, D, P, C = 2, 4, 8, 16, 3
    patch = T * N * D * 3 * P * P
    temporal = T * N * 3 * D * D + 2 * N * T * T * D + T * N * D * D + T * N * D * D  # +fc
    spatial = T * (1 + N) * 3 * D * D + 2 * T * (1 + N) ** 2 * D + T * (1 + N) * D * D
    mlp = (1 + T * N) * 2 * D * 4 * D
    head = D * C
    assert count_flops(model)["macs"] == patch + temporal + spatial + mlp + head


def test_embedding_resampling() -> None:
    pos = torch.randn(1, 1 + 4 * 4, 8)
    assert resample_pos_embed(pos, (4, 4), (4, 4)) is pos
    up = resample_pos_embed(pos, (4, 4), (6, 8))
    assert up.shape == (1, 1 + 48, 8)
    torch.testing.assert_close(up[:, 0], pos[:, 0])
    # official nearest on the 2-D grid: an integer upscale repeats each cell
    near = resample_pos_embed(pos, (4, 4), (8, 8), mode="nearest")
    grid = pos[:, 1:].view(4, 4, 8)
    torch.testing.assert_close(near[0, 1:].view(8, 8, 8)[::2, ::2], grid)
    torch.testing.assert_close(near[0, 1:].view(8, 8, 8)[1::2, 1::2], grid)
    t = torch.randn(1, 4, 8)
    assert resample_time_embed(t, 4) is t
    t8 = resample_time_embed(t, 8, mode="nearest")
    torch.testing.assert_close(t8[:, ::2], t)
    assert resample_time_embed(t, 6).shape == (1, 6, 8)


def test_model_api_and_housekeeping() -> None:
    model = _small("timesformer_tiny")
    x = torch.randn(2, 3, 2, 32, 32)
    assert model.forward_features(x).shape == (2, 192)
    assert model.forward_head(model.forward_features(x)).shape == (2, 5)
    assert model.no_weight_decay() == {"pos_embed", "cls_token", "time_embed"}
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.config.num_classes == 7
    model.reset_classifier(0)
    assert model(x).shape == (2, 192)
    assert set(timesformer.list_models()) == {
        "timesformer_base",
        "timesformer_hr",
        "timesformer_l",
        "timesformer_small",
        "timesformer_tiny",
    }
    # drop path and dropout are random in training, deterministic in eval
    m = _small("timesformer_tiny", drop_path_rate=0.5).train()
    assert not torch.allclose(m(x), m(x))
    m.eval()
    torch.testing.assert_close(m(x), m(x))


def test_official_init_zeroes_temporal_fc_in_every_block() -> None:
    model = _small("timesformer_tiny", depth=3)
    for blk in model.blocks:  # the first block too, as the official loop does
        assert blk.temporal_fc.weight.abs().sum() == 0 and blk.temporal_fc.bias.abs().sum() == 0
    assert blk.attn.qkv.weight.abs().sum() > 0  # the other linears are not zeroed
    assert model.time_embed.abs().sum() == 0


def test_drop_path_draws_per_row_of_the_temporal_step_and_per_frame_of_the_spatial_step() -> None:
    """With drop path on, the kept/dropped pattern varies within one sample across the spatial
    positions of the temporal step and across the frames of the spatial step."""
    torch.manual_seed(0)
    blk = _small("timesformer_tiny", depth=1, drop_path_rate=0.0).blocks[0]
    blk.drop_path.p = 0.5
    blk.train()
    seen: list[torch.Tensor] = []
    blk.drop_path.register_forward_hook(lambda m, i, o: seen.append((o == 0).all(-1)))
    T, gh, gw = 4, 2, 2
    x = torch.randn(1, 1 + T * gh * gw, blk.norm1.normalized_shape[0])
    blk(x, (T, gh, gw))
    temporal, spatial, mlp = seen  # (B*N, T), (B*T, 1+N), (B, L)
    assert temporal.shape[0] == gh * gw and spatial.shape[0] == T
    # one draw per row: a row is dropped as a whole, rows differ within the sample
    assert all(bool(r.all()) or not bool(r.any()) for r in temporal)
    assert all(bool(r.all()) or not bool(r.any()) for r in spatial)
    rows = [bool(r.all()) for r in temporal] + [bool(r.all()) for r in spatial]
    found_mixed = len(set(rows[: gh * gw])) == 2 or len(set(rows[gh * gw :])) == 2
    for _ in range(20):  # P(no mixed pattern in 20 tries) is negligible
        if found_mixed:
            break
        seen.clear()
        blk(x, (T, gh, gw))
        t, s, _ = seen
        found_mixed = len({bool(r.all()) for r in t}) == 2 and len({bool(r.all()) for r in s}) == 2
    assert found_mixed


def test_bad_configuration_and_input_errors() -> None:
    with pytest.raises(ValueError, match="divided_space_time"):
        create_model("timesformer_tiny", attention_type="divided")
    with pytest.raises(ValueError, match="pos_embed"):
        create_model("timesformer_tiny", pos_embed="spacetime")
    with pytest.raises(ValueError, match="timesformer_tiny"):
        create_model("timesformer_tin")
    with pytest.raises(TypeError, match="num_frames"):
        create_model("timesformer_tiny", num_frame=4)
    with pytest.raises(ValueError, match="divisible"):
        create_model("timesformer_tiny", img_size=30)
    model = _small("timesformer_tiny")
    with pytest.raises(ValueError, match="divisible by the patch size"):
        model(torch.randn(1, 3, 2, 30, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        model(torch.randn(1, 2, 32, 32))


def test_config_round_trip() -> None:
    cfg = PRESETS["timesformer_hr"].replace(
        num_classes=3, labels=["a", "b", "c"], img_size=(32, 48)
    )
    again = TimeSformerConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.grid_size == (2, 3)
    with pytest.raises(ValueError, match="embed_dim"):
        TimeSformerConfig.from_dict({**cfg.to_dict(), "embed_dimm": 3})
