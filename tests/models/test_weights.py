"""Checkpoint formats: Hugging Face, official, ImageNet ViT and ours, loaded and exported.

Every equivalence test compares against an independent implementation (transformers' own
Timesformer / ViT models) on small random models, so a wrong key map, a transposed qkv or a
wrong token order shows up as different logits.
"""

from __future__ import annotations

import datetime
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from timesformer.models import TimeSformer, TimeSformerConfig, create_model
from timesformer.models.weights import (
    detect_format,
    from_pretrained,
    load_into,
    read_checkpoint,
    save_checkpoint,
    save_hf,
    save_official,
    save_safetensors,
    to_official_state_dict,
)

transformers = pytest.importorskip("transformers")

TOL = 1e-4
SMALL = dict(
    image_size=32, patch_size=8, num_frames=4, hidden_size=64, num_hidden_layers=2,
    num_attention_heads=2, intermediate_size=128,
)  # fmt: skip
OURS_SMALL = dict(
    img_size=32, patch_size=8, num_frames=4, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0,
    num_classes=5, drop_path_rate=0.0,
)  # fmt: skip


def _perturb(module: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere (also where inits put zeros: time embeddings, temporal_fc)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def _hf_model(attention_type: str, seed: int = 0, **kw):
    cfg = transformers.TimesformerConfig(
        **{**SMALL, **kw}, attention_type=attention_type, num_labels=5
    )
    model = transformers.TimesformerForVideoClassification(cfg).eval()
    _perturb(model, seed)
    return model


def _ours(seed: int = 0, **kw) -> TimeSformer:
    model = TimeSformer(TimeSformerConfig(**{**OURS_SMALL, **kw})).eval()
    _perturb(model, seed)
    return model


def _video(b: int = 2, t: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    """Our layout (B, C, T, H, W)."""
    return torch.randn(b, 3, t, size, size, generator=torch.Generator().manual_seed(seed))


def _hf_logits(hf, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf(pixel_values=video.transpose(1, 2)).logits  # HF layout (B, T, C, H, W)


def _logits(model: TimeSformer, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(video)


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory) -> dict[str, tuple[object, Path, Path]]:
    """attention type -> (HF model, safetensors directory, pytorch_model.bin directory)."""
    out = {}
    for i, at in enumerate(("divided_space_time", "joint_space_time", "space_only")):
        hf = _hf_model(at, seed=i)
        st = tmp_path_factory.mktemp(f"hf_{at}_st")
        pt = tmp_path_factory.mktemp(f"hf_{at}_bin")
        hf.save_pretrained(st)
        # transformers 5 writes safetensors only: the legacy layout is config.json plus a
        # torch.save'd state dict, which transformers itself still reads (checked below)
        hf.config.save_pretrained(pt)
        torch.save(hf.state_dict(), pt / "pytorch_model.bin")
        out[at] = (hf, st, pt)
    return out


# ---------------------------------------------------------------------------- Hugging Face


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time"])
@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_hf_checkpoint_gives_same_logits(hf_dirs, attention_type: str, weights: str) -> None:
    hf, st, pt = hf_dirs[attention_type]
    path = st if weights == "safetensors" else pt
    model = from_pretrained(path)
    assert detect_format(path) == "hf"
    assert model.config.attention_type == attention_type
    assert (model.config.embed_dim, model.config.depth, model.config.num_heads) == (64, 2, 2)
    assert (model.config.num_frames, model.config.patch_size, model.config.num_classes) == (4, 8, 5)
    x = _video()
    diff = (_logits(model, x) - _hf_logits(hf, x)).abs().max().item()
    assert diff <= TOL, diff
    if weights == "bin":
        assert not (path / "model.safetensors").exists()
        again = transformers.TimesformerForVideoClassification.from_pretrained(path).eval()
        assert torch.equal(_hf_logits(again, x), _hf_logits(hf, x))


def test_hf_space_only_matches_frame_averaged_hidden_states(hf_dirs) -> None:
    """HF returns one row of logits per frame; the official model averages the frames first."""
    hf, st, _ = hf_dirs["space_only"]
    model = from_pretrained(st)
    assert model.config.attention_type == "space_only" and model.time_embed is None
    x = _video()
    B, T = x.shape[0], x.shape[2]
    with torch.no_grad():
        out = hf.timesformer(pixel_values=x.transpose(1, 2), output_hidden_states=True)
        pre = out.hidden_states[-1]  # (B*T, 1+N, D), before the final norm
        pre = pre.view(B, T, *pre.shape[1:]).mean(1)
        ref = hf.classifier(hf.timesformer.layernorm(pre)[:, 0])
        assert hf(pixel_values=x.transpose(1, 2)).logits.shape[0] == B * T
    diff = (_logits(model, x) - ref).abs().max().item()
    assert diff <= TOL, diff


def test_hf_labels_come_from_id2label(tmp_path: Path) -> None:
    hf = _hf_model("divided_space_time")
    names = ["archery", "bowling", "cooking", "dancing", "eating"]
    hf.config.id2label = dict(enumerate(names))
    hf.config.label2id = {n: i for i, n in enumerate(names)}
    hf.save_pretrained(tmp_path)
    assert from_pretrained(tmp_path).config.labels == names


def test_hf_weights_file_alone_is_read_with_its_config(hf_dirs) -> None:
    hf, st, _ = hf_dirs["divided_space_time"]
    model = from_pretrained(st / "model.safetensors")  # config.json found next to it
    x = _video()
    assert (_logits(model, x) - _hf_logits(hf, x)).abs().max().item() <= TOL


# ---------------------------------------------------------------------------- official


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


# ---------------------------------------------------------------------------- ImageNet ViT


def _hf_vit(seed: int = 0, eps: float = 1e-12):
    cfg = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, layer_norm_eps=eps,
    )  # fmt: skip
    vit = transformers.ViTModel(cfg).eval()
    _perturb(vit, seed)
    return vit


def _vit_cls(vit, image: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return vit(pixel_values=image).last_hidden_state[:, 0]  # final norm of the class token


def _assert_fresh_head(head: torch.nn.Linear) -> None:
    """A newly initialised head: trunc-normal(0.02) weights, zero bias (not stale memory)."""
    assert torch.isfinite(head.weight).all() and torch.count_nonzero(head.bias) == 0
    assert 0.01 < head.weight.std().item() < 0.03 and head.weight.abs().max().item() < 0.15


def _repeat(image: torch.Tensor, t: int) -> torch.Tensor:
    return image.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()  # (B, C, T, H, W)


@pytest.mark.parametrize("attention_type", ["divided_space_time", "space_only"])
def test_hf_vit_init_reproduces_image_features(tmp_path, attention_type) -> None:
    """(Joint attention does not have this property: the class token's single copy competes
    with T copies of every patch in its softmax.)"""
    vit = _hf_vit()
    vit.save_pretrained(tmp_path)
    model = from_pretrained(tmp_path, attention_type=attention_type, num_frames=3, num_classes=7)
    assert detect_format(tmp_path) == "hf_vit"
    assert model.config.layer_norm_eps == 1e-12  # taken from the ViT's config
    assert model.head.weight.shape == (7, 64)
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(_repeat(image, 3))
    diff = (feats - _vit_cls(vit, image)).abs().max().item()
    assert diff <= 1e-5, diff
    # a torch.save'd in-memory state dict (transformers 5 names: layers.N.attention.q_proj)
    torch.save(vit.state_dict(), tmp_path / "mem.pth")
    mem = from_pretrained(
        tmp_path / "mem.pth", attention_type=attention_type, num_frames=3, num_classes=7,
        num_heads=2, layer_norm_eps=1e-12,
    )  # fmt: skip
    with torch.no_grad():
        assert torch.allclose(mem.forward_features(_repeat(image, 3)), feats, atol=1e-6)


def test_image_recipe_structure(tmp_path) -> None:
    vit = _hf_vit()
    vit.save_pretrained(tmp_path)
    model = from_pretrained(tmp_path)  # defaults: divided, 8 frames, 400 classes
    assert model.config.attention_type == "divided_space_time" and model.config.num_frames == 8
    assert model.config.num_classes == 400
    _assert_fresh_head(model.head)
    assert torch.count_nonzero(model.time_embed) == 0
    for blk in model.blocks:
        assert torch.count_nonzero(blk.temporal_fc.weight) == 0
        assert torch.count_nonzero(blk.temporal_fc.bias) == 0
        assert torch.equal(blk.temporal_attn.qkv.weight, blk.attn.qkv.weight)
        assert torch.equal(blk.temporal_norm1.weight, blk.norm1.weight)
    for at in ("axial", "sparse_local_global"):  # every extra step follows the recipe
        m = from_pretrained(tmp_path, attention_type=at, num_frames=2, num_classes=3)
        for blk in m.blocks:
            for norm, attn, fc in blk.extra_steps():
                assert torch.count_nonzero(fc.weight) == 0 and torch.count_nonzero(fc.bias) == 0
                assert torch.equal(attn.qkv.bias, blk.attn.qkv.bias)
                assert torch.equal(attn.proj.weight, blk.attn.proj.weight)
                assert torch.equal(norm.bias, blk.norm1.bias)
        assert _logits(m, _video(t=2)).shape == (2, 3)


def _timm_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in timm's vit_* layout (D 64, 2 blocks, patch 8, 32 px, 10 classes)."""
    g = torch.Generator().manual_seed(seed)
    D, H = 64, 128

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.2

    sd = {
        "cls_token": r(1, 1, D), "pos_embed": r(1, 17, D),
        "patch_embed.proj.weight": r(D, 3, 8, 8), "patch_embed.proj.bias": r(D),
        "norm.weight": 1 + r(D), "norm.bias": r(D), "head.weight": r(10, D), "head.bias": r(10),
    }  # fmt: skip
    for i in range(2):
        b = f"blocks.{i}."
        sd.update({
            b + "norm1.weight": 1 + r(D), b + "norm1.bias": r(D),
            b + "attn.qkv.weight": r(3 * D, D), b + "attn.qkv.bias": r(3 * D),
            b + "attn.proj.weight": r(D, D), b + "attn.proj.bias": r(D),
            b + "norm2.weight": 1 + r(D), b + "norm2.bias": r(D),
            b + "mlp.fc1.weight": r(H, D), b + "mlp.fc1.bias": r(H),
            b + "mlp.fc2.weight": r(D, H), b + "mlp.fc2.bias": r(D),
        })  # fmt: skip
    return sd


def _timm_to_hf_vit(sd: dict[str, torch.Tensor], folder: Path):
    """Reference: the same weights in transformers.ViTModel (eps 1e-6, as timm's ViT), written
    by hand in the saved Hugging Face layout and loaded by transformers itself."""
    from safetensors.torch import save_file

    _hf_vit(eps=1e-6).config.save_pretrained(folder)
    m = {
        "embeddings.cls_token": sd["cls_token"], "embeddings.position_embeddings": sd["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
        "layernorm.weight": sd["norm.weight"], "layernorm.bias": sd["norm.bias"],
    }  # fmt: skip
    for i in range(2):
        b, h = f"blocks.{i}.", f"encoder.layer.{i}."
        for p in ("weight", "bias"):
            q, k, v = sd[b + f"attn.qkv.{p}"].chunk(3, dim=0)
            m.update({
                h + f"attention.attention.query.{p}": q, h + f"attention.attention.key.{p}": k,
                h + f"attention.attention.value.{p}": v,
                h + f"attention.output.dense.{p}": sd[b + f"attn.proj.{p}"],
                h + f"layernorm_before.{p}": sd[b + f"norm1.{p}"],
                h + f"layernorm_after.{p}": sd[b + f"norm2.{p}"],
                h + f"intermediate.dense.{p}": sd[b + f"mlp.fc1.{p}"],
                h + f"output.dense.{p}": sd[b + f"mlp.fc2.{p}"],
            })  # fmt: skip
    save_file({k: v.contiguous() for k, v in m.items()}, str(folder / "model.safetensors"))
    return transformers.ViTModel.from_pretrained(folder, add_pooling_layer=False).eval()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_vit_init_reproduces_image_features(tmp_path, suffix) -> None:
    from safetensors.torch import save_file

    sd = _timm_state()
    path = tmp_path / f"vit{suffix}"
    if suffix == ".pth":
        torch.save(sd, path)
    else:
        save_file(sd, str(path))
    assert detect_format(path) == "timm_vit"
    model = from_pretrained(path, num_heads=2, num_frames=4, num_classes=3)
    assert model.config.layer_norm_eps == 1e-6
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(_repeat(image, 4))
    ref = _timm_to_hf_vit(sd, tmp_path / "ref")
    diff = (feats - _vit_cls(ref, image)).abs().max().item()
    assert diff <= 1e-5, diff
    # another grid: pos_embed resampled from 4x4 to 6x6, class slot kept
    big = from_pretrained(path, num_heads=2, img_size=48)
    assert big.pos_embed.shape == (1, 37, 64)
    assert torch.equal(big.pos_embed[:, :1], sd["pos_embed"][:, :1])
    assert _logits(big, _video(t=8, size=48)).shape == (2, 400)


# ---------------------------------------------------------------------------- ours, round trips


def test_ours_pt_round_trip_keeps_config_labels_and_training_state(tmp_path) -> None:
    model = _ours(labels=list("abcde"))
    rng = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    path = save_checkpoint(model, tmp_path / "ck.pt", epoch=3, step=120, rng=rng, best_metric=0.5)
    ck = read_checkpoint(path)  # numpy RNG state loads through the safe unpickler
    assert ck.format == "ours" and ck.extra["epoch"] == 3 and ck.extra["step"] == 120
    loaded = from_pretrained(path)
    assert loaded.config == model.config and loaded.config.labels == list("abcde")
    x = _video()
    assert torch.equal(_logits(loaded, x), _logits(model, x))
    # an object the safe unpickler refuses: loaded fully, with a warning
    odd = save_checkpoint(model, tmp_path / "odd.pt", when=datetime.date(2024, 1, 1))
    with pytest.warns(UserWarning, match="safe loader refuses"):
        assert read_checkpoint(odd).extra["when"].year == 2024


def test_ours_safetensors_round_trip(tmp_path) -> None:
    model = _ours(attention_type="sparse_local_global", pos_embed="space")
    path = save_safetensors(model, tmp_path / "w.safetensors")
    assert detect_format(path) == "ours"
    loaded = from_pretrained(path)
    assert loaded.config == model.config
    x = _video()
    assert torch.equal(_logits(loaded, x), _logits(model, x))


def test_bare_state_dict_reads_architecture_from_shapes() -> None:
    model = _ours(attention_type="axial", num_heads=1)  # 64 per head: nothing to guess
    loaded = from_pretrained(model.state_dict())
    assert loaded.config.attention_type == "axial" and loaded.config.depth == 2
    x = _video()
    assert torch.equal(_logits(loaded, x), _logits(model, x))


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


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time"])
def test_hf_export_loads_in_transformers_with_identical_logits(tmp_path, attention_type) -> None:
    model = _ours(attention_type=attention_type, drop_path_rate=0.1, labels=list("vwxyz"))
    save_hf(model, tmp_path)
    hf = transformers.TimesformerForVideoClassification.from_pretrained(tmp_path).eval()
    assert hf.config.id2label[4] == "z"
    x = _video()
    diff = (_hf_logits(hf, x) - _logits(model, x)).abs().max().item()
    assert diff <= TOL, diff
    back = from_pretrained(tmp_path)
    assert back.config.drop_path_rate == 0.1 and back.config.labels == list("vwxyz")


def test_create_model_and_load_into(hf_dirs, tmp_path) -> None:
    hf, st, _ = hf_dirs["divided_space_time"]
    kw = dict(img_size=32, patch_size=8, num_frames=4, embed_dim=64, depth=2, num_heads=2,
              mlp_ratio=2.0, num_classes=5, layer_norm_eps=1e-6)  # fmt: skip
    model = create_model("timesformer_tiny", pretrained=st, **kw).eval()
    x = _video()
    assert (_logits(model, x) - _hf_logits(hf, x)).abs().max().item() <= TOL
    fresh = TimeSformer(TimeSformerConfig(**kw))
    assert load_into(fresh, dict(hf.state_dict())) is fresh  # an in-memory HF state dict
    assert (_logits(fresh, x) - _hf_logits(hf, x)).abs().max().item() <= TOL
    other = TimeSformer(TimeSformerConfig(**{**kw, "num_classes": 9})).eval()
    head = other.head.weight.clone()
    load_into(other, st, reset_head=True)
    assert torch.equal(other.head.weight, head)  # the model's own head stays
    with torch.no_grad():
        assert torch.allclose(other.forward_features(x), fresh.forward_features(x), atol=1e-6)


# ---------------------------------------------------------------------------- errors


def test_missing_paths_name_the_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.pyth$"):
        from_pretrained(tmp_path / "nope.pyth")
    with pytest.raises(FileNotFoundError, match="Hugging Face Hub id.*hf download"):
        from_pretrained("facebook/timesformer-base-finetuned-k400")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "timesformer"}')
    with pytest.raises(FileNotFoundError, match="no weights found; expected model.safetensors"):
        from_pretrained(tmp_path)


def test_unknown_formats_list_the_accepted_ones(tmp_path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00\x01 this is not a checkpoint" * 10)
    with pytest.raises(ValueError, match="unknown checkpoint format.*Accepted formats: ours"):
        from_pretrained(junk)
    other = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match=r"unknown checkpoint format \(keys: encoder.weight\)"):
        from_pretrained(other)
    torch.save([1, 2, 3], other)
    with pytest.raises(ValueError, match="unknown checkpoint format.*Hugging Face"):
        from_pretrained(other)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="model_type 'bert' is not a Timesformer or ViT"):
        from_pretrained(tmp_path)


def _ours_dict(model: TimeSformer) -> dict:
    return {"format": "timesformer", "version": 1, "config": model.config.to_dict(),
            "model": dict(model.state_dict())}  # fmt: skip


def test_missing_unexpected_and_misshapen_keys_are_listed() -> None:
    model = _ours()
    ck = _ours_dict(model)
    del ck["model"]["blocks.1.mlp.fc2.bias"]
    with pytest.raises(ValueError, match="missing keys: blocks.1.mlp.fc2.bias"):
        from_pretrained(ck)
    ck = _ours_dict(model)
    ck["model"]["blocks.0.extra.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match="unexpected keys: blocks.0.extra.weight"):
        from_pretrained(ck)
    ck = _ours_dict(model)
    ck["model"]["blocks.0.mlp.fc1.weight"] = torch.zeros(100, 64)
    with pytest.raises(
        ValueError,
        match=r"shape mismatch: blocks.0.mlp.fc1.weight expected \(128, 64\), found \(100, 64\)",
    ):
        from_pretrained(ck)
    ck = _ours_dict(model)
    ck["version"] = 2
    with pytest.raises(ValueError, match="version 2 is newer"):
        from_pretrained(ck)


def test_head_size_mismatch_says_how_to_reset(tmp_path) -> None:
    model = _ours()
    path = save_checkpoint(model, tmp_path / "m.pt")
    with pytest.raises(
        ValueError, match=r"has a 5-class head but 7 classes were requested.*reset_head=True"
    ):
        from_pretrained(path, num_classes=7)
    fresh = from_pretrained(path, num_classes=7, reset_head=True)
    assert fresh.head.weight.shape == (7, 64) and fresh.config.labels is None
    _assert_fresh_head(fresh.head)
    x = _video()
    with torch.no_grad():
        assert torch.equal(fresh.forward_features(x), model.forward_features(x))
    headless = from_pretrained(path, num_classes=0)  # dropping the head needs no reset
    assert headless(x).shape == (2, 64)
    target = TimeSformer(TimeSformerConfig(**{**OURS_SMALL, "num_classes": 3}))
    with pytest.raises(ValueError, match=r"load_into\(model, path, reset_head=True\)"):
        load_into(target, path)


def test_architecture_conflicts_are_named(tmp_path) -> None:
    path = save_checkpoint(_ours(), tmp_path / "m.pt")
    with pytest.raises(
        ValueError, match="depth=3 does not match the ours checkpoint, which has depth=2"
    ):
        from_pretrained(path, depth=3)
    with pytest.raises(ValueError, match="attention_type='joint_space_time' does not match"):
        from_pretrained(path, attention_type="joint_space_time")
    joint = TimeSformer(TimeSformerConfig(**{**OURS_SMALL, "attention_type": "joint_space_time"}))
    with pytest.raises(
        ValueError, match="build the model with attention_type='divided_space_time'"
    ):
        load_into(joint, path)
    with pytest.raises(TypeError, match="unknown model option 'num_frame'"):
        from_pretrained(path, num_frame=8)


def test_exporters_refuse_what_the_target_cannot_hold(tmp_path) -> None:
    axial = _ours(attention_type="axial")
    with pytest.raises(ValueError, match="Hugging Face Timesformer has no attention_type='axial'"):
        save_hf(axial, tmp_path / "hf")
    with pytest.raises(ValueError, match="official TimeSformer code has no attention_type='axial'"):
        to_official_state_dict(axial)
    with pytest.raises(ValueError, match="square frames"):
        save_hf(_ours(img_size=(32, 48)), tmp_path / "hf")
    with pytest.raises(ValueError, match=r"extra keys \['config'\] are reserved"):
        save_checkpoint(_ours(), tmp_path / "x.pt", config={})
