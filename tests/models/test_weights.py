"""The weights facade: our format's round trips, load_into / create_model, and the errors.

Every equivalence test compares against an independent implementation (transformers' own
Timesformer / ViT models) on small random models, so a wrong key map, a transposed qkv or a
wrong token order shows up as different logits.
"""

from __future__ import annotations

import datetime
import random

import numpy as np
import pytest
import torch
from _checkpoint_helpers import (  # conftest puts this folder on sys.path
    OURS_SMALL,
    TOL,
    _assert_fresh_head,
    _hf_logits,
    _logits,
    _ours,
    _video,
)

from timesformer.models import TimeSformer, TimeSformerConfig, create_model
from timesformer.models.weights import (
    CheckpointError,
    detect_format,
    from_pretrained,
    load_into,
    read_checkpoint,
    save_checkpoint,
    save_hf,
    save_safetensors,
    to_official_state_dict,
)

transformers = pytest.importorskip("transformers")


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
    # an object the safe unpickler refuses: refused in one line, loaded only on the opt-in
    odd = save_checkpoint(model, tmp_path / "odd.pt", when=datetime.date(2024, 1, 1))
    with pytest.raises(CheckpointError, match=r"odd\.pt: refused to load: it holds datetime"):
        read_checkpoint(odd)
    assert read_checkpoint(odd, allow_pickle=True).extra["when"].year == 2024


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


def test_missing_paths_name_the_path(tmp_path, monkeypatch) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.pyth$"):
        from_pretrained(tmp_path / "nope.pyth")
    # a Hub id, offline and not cached: one line saying so and how to fix it (no network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        from_pretrained("facebook/timesformer-base-finetuned-k400")
    with pytest.raises(CheckpointError, match="has no config.json"):  # there, but not a model
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "timesformer"}')
    with pytest.raises(CheckpointError, match="no weights found; expected model.safetensors"):
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


@pytest.mark.parametrize(
    "field, value, where",
    [
        ("embed_dim", 16384, "patch_embed.proj.weight"),
        ("depth", 64, "blocks"),
        ("mlp_ratio", 10000.0, "fc1"),
        ("img_size", 100000, "pos_embed"),
        ("num_frames", 10**7, "time_embed"),
        ("num_classes", 10**6, "head.weight"),
    ],
)
def test_a_config_its_weights_contradict_is_refused_before_anything_is_built(
    field: str, value: object, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an edited config would otherwise allocate the model it describes (gigabytes)
    ck = _ours_dict(_ours())
    ck["config"][field] = value
    if field == "embed_dim":
        ck["config"]["num_heads"] = 64
    built = []
    monkeypatch.setattr(TimeSformer, "__init__", lambda *a, **k: built.append(1))
    with pytest.raises(ValueError, match=f"config says {field}=.*{where}.*config was edited"):
        from_pretrained(ck)
    assert not built


def test_block_weights_with_a_gap_are_refused() -> None:
    ck = _ours_dict(_ours())
    ck["model"]["blocks.999999.norm1.weight"] = torch.zeros(64)
    with pytest.raises(ValueError, match=r"numbered 0\.\.999999 with gaps"):
        from_pretrained(ck)


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
    ck["model"]["blocks.1.mlp.fc1.weight"] = torch.zeros(100, 64)
    with pytest.raises(
        ValueError,
        match=r"shape mismatch: blocks.1.mlp.fc1.weight expected \(128, 64\), found \(100, 64\)",
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
