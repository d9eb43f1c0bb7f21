"""`timesformer convert SRC DST`, end to end through `timesformer.cli.main`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from timesformer.cli import main
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import detect_format, from_pretrained, save_checkpoint

SMALL = dict(
    img_size=32, patch_size=8, num_frames=4, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0,
    num_classes=5, drop_path_rate=0.0,
)  # fmt: skip


def _model(**kw) -> TimeSformer:
    model = TimeSformer(TimeSformerConfig(**{**SMALL, **kw})).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def _logits(model: TimeSformer, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture
def src(tmp_path: Path) -> tuple[TimeSformer, Path]:
    model = _model(labels=["a", "b", "c", "d", "e"])
    return model, save_checkpoint(model, tmp_path / "src.pt", epoch=2)


X = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    ("dst", "fmt"),
    [("out.safetensors", "ours"), ("out.pyth", "official"), ("out.pt", "ours"), ("hf_dir", "hf")],
)
def test_convert_infers_target_from_dst_and_round_trips(src, tmp_path, capsys, dst, fmt) -> None:
    model, path = src
    out = tmp_path / dst
    assert main(["convert", str(path), str(out)]) == 0
    assert "(ours) ->" in capsys.readouterr().out
    assert detect_format(out) == fmt
    back = from_pretrained(out)
    assert back.config.labels == ["a", "b", "c", "d", "e"]
    assert (_logits(back, X) - _logits(model, X)).abs().max().item() <= 1e-5


def test_convert_hf_output_loads_in_transformers(src, tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    model, path = src
    assert main(["convert", str(path), str(tmp_path / "hf"), "--to", "hf"]) == 0
    hf = transformers.TimesformerForVideoClassification.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        ref = hf(pixel_values=X.transpose(1, 2)).logits
    assert (ref - _logits(model, X)).abs().max().item() <= 1e-4
    # and back: hf -> official -> ours, still the same function
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "o.pyth")]) == 0
    assert main(["convert", str(tmp_path / "o.pyth"), str(tmp_path / "o.ckpt")]) == 0
    back = from_pretrained(tmp_path / "o.ckpt")
    assert (_logits(back, X) - _logits(model, X)).abs().max().item() <= 1e-5


def test_convert_overrides_and_json(src, tmp_path, capsys) -> None:
    _, path = src
    labels = tmp_path / "labels.txt"
    labels.write_text("x\ny\nz\n")
    args = ["convert", str(path), str(tmp_path / "o.pt"), "--num-frames", "6", "--img-size", "48"]
    args += ["--labels", str(labels), "--reset-head", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["src_format"] == "ours" and summary["format"] == "ours"
    assert (summary["num_frames"], summary["img_size"], summary["num_classes"]) == (6, 48, 3)
    back = from_pretrained(tmp_path / "o.pt")
    assert back.config.labels == ["x", "y", "z"] and back.time_embed.shape == (1, 6, 64)


def test_converted_files_get_the_umask_mode(src, tmp_path, capsys) -> None:
    import os
    import stat

    _, path = src
    old = os.umask(0o022)
    try:
        for dst in ("perm.safetensors", "perm.pt", "hfdir"):
            assert main(["convert", str(path), str(tmp_path / dst)]) == 0
    finally:
        os.umask(old)
    files = [tmp_path / "perm.safetensors", tmp_path / "perm.pt", *(tmp_path / "hfdir").iterdir()]
    modes = {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files}
    assert set(modes.values()) == {"0o644"}, modes


def test_convert_image_weights_to_video_checkpoint(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    vit = transformers.ViTModel(
        transformers.ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
        )  # fmt: skip
    )
    vit.save_pretrained(tmp_path / "vit")
    out = tmp_path / "init.pt"
    args = ["convert", str(tmp_path / "vit"), str(out), "--attention-type", "joint_space_time"]
    assert main(args + ["--num-frames", "2", "--num-classes", "3"]) == 0
    m = from_pretrained(out)
    assert m.config.attention_type == "joint_space_time" and m.config.num_classes == 3
    assert torch.count_nonzero(m.time_embed) == 0


def test_convert_errors_are_one_line_on_stderr(src, tmp_path, capsys) -> None:
    _, path = src
    cases = [
        (["convert", str(tmp_path / "missing.pt"), str(tmp_path / "o.pt")], "checkpoint not found"),
        (["convert", str(path), str(tmp_path / "o.weird")], "cannot tell the target format"),
        (["convert", str(path), str(path)], "exists; pass --force"),
        (["convert", str(path), str(tmp_path / "o.pt"), "--num-classes", "9"], "pass --reset-head"),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("timesformer convert: error:") and message in err
        assert err.count("\n") == 1
    axial = save_checkpoint(_model(attention_type="axial"), tmp_path / "axial.pt")
    assert main(["convert", str(axial), str(tmp_path / "axial_hf")]) == 1
    assert "no attention_type='axial'" in capsys.readouterr().err
    assert main(["convert", str(path), str(path), "--force", "--to", "ours"]) == 0


def test_convert_help(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["convert", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for word in ("SRC", "DST", "--to", "official", "hf", "safetensors", ".pyth", "--reset-head"):
        assert word in text
