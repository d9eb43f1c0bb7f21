"""The official facebookresearch/TimeSformer layout: strict loading, geometry, export.

Every equivalence test compares against an independent implementation (transformers' own
Timesformer / ViT models) on small random models, so a wrong key map, a transposed qkv or a
wrong token order shows up as different logits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from _checkpoint_helpers import (  # conftest puts this folder on sys.path
    TOL,
    _hf_logits,
    _logits,
    _ours,
    _video,
)

from timesformer.models.weights import (
    detect_format,
    from_pretrained,
    read_checkpoint,
    save_official,
    to_official_state_dict,
)

transformers = pytest.importorskip("transformers")


def _official_keys(depth: int, divided: bool) -> set[str]:
    """The official key list as PAPER.md spells it (with the "model." prefix)."""
    keys = {"model.cls_token", "model.pos_embed", "model.time_embed"}
    keys |= {
        f"model.{m}.{p}" for m in ("patch_embed.proj", "norm", "head") for p in ("weight", "bias")
    }
    mods = ["norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"]
    if divided:
        mods += ["temporal_norm1", "temporal_attn.qkv", "temporal_attn.proj", "temporal_fc"]
    for i in range(depth):
        keys |= {f"model.blocks.{i}.{m}.{p}" for m in mods for p in ("weight", "bias")}
    return keys


def _hf_to_official(hf) -> dict[str, torch.Tensor]:
    """Written out by hand, independently of the library's key map."""
    sd = hf.state_dict()
    out = {
        "model.cls_token": sd["timesformer.embeddings.cls_token"],
        "model.pos_embed": sd["timesformer.embeddings.position_embeddings"],
        "model.patch_embed.proj.weight": sd["timesformer.embeddings.patch_embeddings.projection.weight"],
        "model.patch_embed.proj.bias": sd["timesformer.embeddings.patch_embeddings.projection.bias"],
        "model.norm.weight": sd["timesformer.layernorm.weight"],
        "model.norm.bias": sd["timesformer.layernorm.bias"],
        "model.head.weight": sd["classifier.weight"],
        "model.head.bias": sd["classifier.bias"],
    }  # fmt: skip
    if "timesformer.embeddings.time_embeddings" in sd:
        out["model.time_embed"] = sd["timesformer.embeddings.time_embeddings"]
    pairs = {
        "layernorm_before": "norm1", "attention.attention.qkv": "attn.qkv",
        "attention.output.dense": "attn.proj", "layernorm_after": "norm2",
        "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
        "temporal_layernorm": "temporal_norm1", "temporal_attention.attention.qkv": "temporal_attn.qkv",
        "temporal_attention.output.dense": "temporal_attn.proj", "temporal_dense": "temporal_fc",
    }  # fmt: skip
    for i in range(hf.config.num_hidden_layers):
        for hf_name, name in pairs.items():
            for p in ("weight", "bias"):
                k = f"timesformer.encoder.layer.{i}.{hf_name}.{p}"
                if k in sd:
                    out[f"model.blocks.{i}.{name}.{p}"] = sd[k]
    return out


def _official_cfg(attention_type: str, frames: int = 4, size: int = 32, classes: int = 5) -> str:
    return yaml.safe_dump(
        {
            "DATA": {"NUM_FRAMES": frames, "TRAIN_CROP_SIZE": size, "TEST_CROP_SIZE": size},
            "MODEL": {"NUM_CLASSES": classes, "MODEL_NAME": "vit_base_patch16_224"},
            "TIMESFORMER": {"ATTENTION_TYPE": attention_type},
        }
    )


def _write_pyth(path: Path, model_state: dict, cfg: str) -> Path:
    torch.save({"epoch": 15, "model_state": model_state, "optimizer_state": {}, "cfg": cfg}, path)
    return path


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time"])
def test_official_layout_loads_strictly_with_hf_logits(hf_dirs, tmp_path, attention_type) -> None:
    hf = hf_dirs[attention_type][0]
    state = _hf_to_official(hf)
    assert set(state) == _official_keys(2, attention_type == "divided_space_time")
    path = _write_pyth(tmp_path / "k.pyth", state, _official_cfg(attention_type))
    assert detect_format(path) == "official"
    model = from_pretrained(path, num_heads=2)  # heads are not visible in shapes (default D/64)
    assert model.config.attention_type == attention_type
    x = _video()
    diff = (_logits(model, x) - _hf_logits(hf, x)).abs().max().item()
    assert diff <= TOL, diff
    # the attention type of a divided file is read from its keys, even without a cfg
    if attention_type == "divided_space_time":
        path2 = _write_pyth(tmp_path / "nocfg.pyth", state, "")
        assert from_pretrained(path2, num_heads=2).config.attention_type == attention_type


def test_official_space_only_drops_unused_time_embed(hf_dirs, tmp_path) -> None:
    hf = hf_dirs["space_only"][0]
    state = _hf_to_official(hf)
    state["model.time_embed"] = torch.randn(1, 4, 64)  # unused; some releases keep it
    path = _write_pyth(tmp_path / "s.pyth", state, _official_cfg("space_only"))
    model = from_pretrained(path, num_heads=2)
    assert model.config.attention_type == "space_only" and model.time_embed is None
    ref = from_pretrained(hf_dirs["space_only"][1])
    x = _video()
    assert (_logits(model, x) - _logits(ref, x)).abs().max().item() <= TOL


def test_official_hr_shapes_give_hr_geometry(tmp_path) -> None:
    """An HR-style file (pos_embed 1 + 28*28, 16 frames) is read as 16 x 448 from its shapes."""
    model = _ours(img_size=448, patch_size=16, num_frames=16, embed_dim=64, num_heads=1)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    assert state["model.pos_embed"].shape == (1, 785, 64)
    path = _write_pyth(tmp_path / "hr.pyth", state, "")
    ck = read_checkpoint(path)
    assert ck.config["img_size"] == 448 and ck.config["num_frames"] == 16
    assert ck.config["num_heads"] == 1  # 64 per head


@pytest.mark.parametrize("mode", ["bicubic", "nearest"])
def test_geometry_override_resamples_embeddings(hf_dirs, tmp_path, mode) -> None:
    """num_frames / img_size at load: the stored embeddings are resampled once, which equals
    resampling them at run time from the original model."""
    hf = hf_dirs["divided_space_time"][0]
    path = _write_pyth(
        tmp_path / "d.pyth", _hf_to_official(hf), _official_cfg("divided_space_time")
    )
    base = from_pretrained(path, num_heads=2, embed_resample=mode)
    moved = from_pretrained(path, num_heads=2, embed_resample=mode, num_frames=6, img_size=48)
    assert moved.config.num_frames == 6 and moved.config.img_size == 48
    assert moved.pos_embed.shape == (1, 1 + 36, 64) and moved.time_embed.shape == (1, 6, 64)
    x = _video(t=6, size=48)
    out = _logits(moved, x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    assert (out - _logits(base, x)).abs().max().item() <= TOL


def test_nearest_mode_reproduces_official_resize(hf_dirs) -> None:
    """transformers copies the official run-time resize (2-D nearest in space, nearest in
    time); its joint model runs at other geometries, so compare there."""
    hf, st, _ = hf_dirs["joint_space_time"]
    x = _video(t=6, size=48)
    ref = _hf_logits(hf, x)
    nearest = from_pretrained(st, embed_resample="nearest")
    assert (_logits(nearest, x) - ref).abs().max().item() <= TOL
    at_load = from_pretrained(st, embed_resample="nearest", num_frames=6, img_size=48)
    assert (_logits(at_load, x) - ref).abs().max().item() <= TOL
    bicubic = from_pretrained(st)  # the default resamples differently: must not match
    assert (_logits(bicubic, x) - ref).abs().max().item() > 1e-3


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time", "space_only"])
def test_official_export_round_trip(tmp_path, attention_type) -> None:
    model = _ours(attention_type=attention_type, pos_embed="space")
    obj = to_official_state_dict(model)
    keys = set(obj["model_state"])
    assert all(k.startswith("model.") for k in keys)
    if attention_type != "space_only":  # the official model always has both embeddings
        assert set(keys) == _official_keys(2, attention_type == "divided_space_time")
    assert yaml.safe_load(obj["cfg"])["TIMESFORMER"]["ATTENTION_TYPE"] == attention_type
    path = save_official(model, tmp_path / "m.pyth")
    x = _video()
    assert torch.allclose(_logits(from_pretrained(path), x), _logits(model, x), atol=1e-6)
    # without our config, the official cfg and the shapes alone suffice
    obj.pop("timesformer_config")
    torch.save(obj, tmp_path / "plain.pyth")
    plain = from_pretrained(tmp_path / "plain.pyth", num_heads=2)
    assert plain.config.attention_type == attention_type
    assert (_logits(plain, x) - _logits(model, x)).abs().max().item() <= 1e-6
