"""ImageNet ViT weights (Hugging Face and timm) and the paper's video initialisation.

Every equivalence test compares against an independent implementation (transformers' own
Timesformer / ViT models) on small random models, so a wrong key map, a transposed qkv or a
wrong token order shows up as different logits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _checkpoint_helpers import (  # conftest puts this folder on sys.path
    _assert_fresh_head,
    _logits,
    _perturb,
    _video,
)

from timesformer.models.weights import (
    detect_format,
    from_pretrained,
)

transformers = pytest.importorskip("transformers")


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
