"""`timesformer explain`: files written from a real video and checkpoint, the same maps as the
Python API on the same clip, class selection, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from timesformer import data as tdata
from timesformer.cli import main
from timesformer.data import TestTransform, VideoReader, write_video
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import from_pretrained, save_checkpoint
from timesformer.tools.explain import explain

NAMES = ["ball", "cube", "ring"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explain_cli")
    cfg = TimeSformerConfig(
        img_size=32,
        patch_size=8,
        num_frames=4,
        num_classes=3,
        embed_dim=32,
        depth=2,
        num_heads=2,
        drop_path_rate=0.0,
        labels=NAMES,
    )
    torch.manual_seed(0)
    model = TimeSformer(cfg)
    with torch.no_grad():  # sharper attention than a fresh model's
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    ckpt = save_checkpoint(model, root / "tiny.pt", train_config={"data": {"sampling_rate": 4}})
    rng = np.random.default_rng(0)
    frames = (rng.random((30, 40, 56, 3)) * 255).astype(np.uint8)  # landscape: resize + crop
    frames[:, 10:20, 20:30] = 255  # a white square
    write_video(root / "clip.mp4", frames, fps=30.0)
    return {"root": root, "ckpt": ckpt, "video": root / "clip.mp4"}


def test_outputs_match_the_python_api(files, capsys) -> None:
    out = files["root"] / "out"
    rc = main(["explain", str(files["video"]), "-c", str(files["ckpt"]), "--out", str(out),
               "--protocol", "centred"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "relevance per frame" in printed and "maps.npy" in printed
    summary = json.loads((out / "summary.json").read_text())
    maps = np.load(out / "maps.npy")
    assert maps.dtype == np.float32 and maps.shape == (4, 32, 32)
    assert maps.min() >= 0 and maps.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(maps.sum((1, 2)), summary["frame_relevance"], atol=1e-5)
    assert summary["predicted"]["label"] in NAMES
    assert 0 < summary["predicted"]["probability"] <= 1

    # the same clip cut by hand: the checkpoint's sampling rate, the centred protocol
    with VideoReader(files["video"]) as r:
        view = tdata.test_views(r.num_frames, 4, 4, r.fps, num_clips=1, num_crops=1,
                                protocol="centred")[0]  # fmt: skip
        frames = r.get_frames(list(view.indices))
    assert summary["frame_indices"] == list(view.indices)
    assert len(set(view.indices)) == 4
    model = TimeSformer(TimeSformerConfig.from_dict(torch.load(files["ckpt"])["config"]))
    model.load_state_dict(torch.load(files["ckpt"])["model"])
    tf = TestTransform(32, num_crops=1, protocol="centred")
    e = explain(model, tf(frames, crop_index=0))
    np.testing.assert_allclose(maps, e.maps, atol=1e-6)
    assert summary["predicted"]["index"] == e.predicted

    for name in ("grid.png", "relevance.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG"
    with Image.open(out / "overlay.gif") as im:
        assert im.n_frames == 4 and im.size[0] >= 128
        # the overlay shows the frames: the white square is still the brightest region
        im.seek(0)
        rgb = np.asarray(im.convert("RGB")).astype(float).sum(-1)
    k = rgb.shape[0] // 32
    # frame 40x56 -> 32x44 (short side 32), centre crop 32 wide from x=6: square at x 10..18
    square = rgb[9 * k : 15 * k, 11 * k : 17 * k].mean()
    assert square > rgb.mean() + 100


def test_class_by_name_json_and_gradient_method(files, capsys) -> None:
    out = files["root"] / "grad"
    args = ["explain", str(files["video"]), "-c", str(files["ckpt"]), "--out", str(out)]
    rc = main([*args, "--class", "ring", "--method", "grad_rollout", "--smooth", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["target"] == {
        "index": 2,
        "label": "ring",
        "probability": pytest.approx(summary["target"]["probability"]),
    }
    assert summary["method"] == "grad_rollout"
    assert np.load(out / "maps.npy").shape == (4, 32, 32)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--class", "rign"], "Did you mean 'ring'"),
        (["--class", "7"], "out of range"),
        (["--size", "36"], "divisible by patch_size=8"),
    ],
)
def test_errors_are_one_line(files, capsys, extra, message) -> None:
    out = files["root"] / "err"
    args = ["explain", str(files["video"]), "-c", str(files["ckpt"]), "--out", str(out)]
    assert main([*args, *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_model_without_a_head_is_one_line_with_labels_too(files, capsys) -> None:
    root = files["root"]
    model = from_pretrained(files["ckpt"])
    model.reset_classifier(0)
    ckpt = save_checkpoint(model, root / "headless.pt")
    (root / "labels.txt").write_text("a\nb\n")
    out = root / "headless_out"
    args = ["explain", str(files["video"]), "-c", str(ckpt), "--out", str(out)]
    for extra in ([], ["--labels", str(root / "labels.txt")]):
        assert main([*args, *extra]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no classification head (num_classes=0)" in err
        assert "timesformer extract" in err and not out.exists()


def test_missing_video(files, capsys) -> None:
    args = ["explain", "nope.mp4", "-c", str(files["ckpt"]), "--out", str(files["root"] / "x")]
    assert main(args) == 1
    assert "nope.mp4" in capsys.readouterr().err


def test_explain_follows_the_checkpoint_protocol(files, capsys) -> None:
    """Without --protocol the checkpoint's (official): the clip starts at frame 0, the short
    side goes to the contract's short side before the centre crop."""
    out = files["root"] / "out_official"
    rc = main(["explain", str(files["video"]), "-c", str(files["ckpt"]), "--out", str(out)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "test_protocol=official" in err and "sampling_rate=4 (" in err
    summary = json.loads((out / "summary.json").read_text())
    with VideoReader(files["video"]) as r:
        view = tdata.test_views(r.num_frames, 4, 4, r.fps, num_clips=1, num_crops=1,
                                protocol="official")[0]  # fmt: skip
        frames = r.get_frames(list(view.indices))
    assert summary["frame_indices"] == list(view.indices) and view.indices[0] == 0
    assert summary["preprocess"]["values"]["test_protocol"] == "official"
    model = TimeSformer(TimeSformerConfig.from_dict(torch.load(files["ckpt"])["config"]))
    model.load_state_dict(torch.load(files["ckpt"])["model"])
    short = summary["preprocess"]["values"]["short_side"]
    tf = TestTransform(32, num_crops=1, protocol="official", train_short_side=short)
    e = explain(model, tf(frames, crop_index=0))
    np.testing.assert_allclose(np.load(out / "maps.npy"), e.maps, atol=1e-6)
