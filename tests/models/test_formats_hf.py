"""Hugging Face Timesformer directories: read (both weight layouts), labels, export.

Every equivalence test compares against an independent implementation (transformers' own
Timesformer / ViT models) on small random models, so a wrong key map, a transposed qkv or a
wrong token order shows up as different logits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _checkpoint_helpers import (  # conftest puts this folder on sys.path
    TOL,
    _hf_logits,
    _hf_model,
    _logits,
    _ours,
    _video,
)

from timesformer.models.weights import (
    detect_format,
    from_pretrained,
    save_hf,
)

transformers = pytest.importorskip("transformers")


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


def test_a_damaged_preprocessor_config_is_refused(tmp_path: Path) -> None:
    model = _ours()
    save_hf(model, tmp_path)
    assert (tmp_path / "preprocessor_config.json").is_file()
    (tmp_path / "preprocessor_config.json").write_text('{"image_mean": [0.5, 0.4')  # cut short
    with pytest.raises(ValueError, match=r"preprocessor_config\.json: not valid JSON"):
        from_pretrained(tmp_path)


@pytest.mark.parametrize("text", ['{"image_mean": "abc"}', "[1, 2]", '{"crop_size": -3}'])
def test_a_preprocessor_config_with_bad_values_is_refused(tmp_path: Path, text: str) -> None:
    # a warning and the defaults would silently change every prediction
    save_hf(_ours(), tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(text)
    with pytest.raises(ValueError, match=r"preprocessor_config\.json: .*cannot be read"):
        from_pretrained(tmp_path)


def test_a_config_that_disagrees_with_its_weights_is_refused(tmp_path: Path) -> None:
    import json

    model = _ours()
    save_hf(model, tmp_path)
    conf = json.loads((tmp_path / "config.json").read_text())
    conf["num_frames"] = model.config.num_frames + 2
    (tmp_path / "config.json").write_text(json.dumps(conf))
    with pytest.raises(ValueError, match=r"says num_frames=\d+ but the weights' time embedding"):
        from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "key, value", [("num_frames", "abc"), ("hidden_size", 7.5), ("layer_norm_eps", "x")]
)
def test_a_config_value_of_the_wrong_type_is_named(tmp_path: Path, key: str, value: object) -> None:
    import json

    save_hf(_ours(), tmp_path)
    conf = json.loads((tmp_path / "config.json").read_text())
    conf[key] = value
    (tmp_path / "config.json").write_text(json.dumps(conf))
    with pytest.raises(
        ValueError, match=rf"config\.json has {key}=.*; expected (an integer|a fin)"
    ):
        from_pretrained(tmp_path)
