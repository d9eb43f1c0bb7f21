"""Display rotation: read back from a rendered phone-style mp4, frames come out upright."""

from __future__ import annotations

import numpy as np
import pytest
from _rotated import write_rotated
from _video_helpers import decode_index, index_frames

from timesformer.data import VideoDataset, VideoReader
from timesformer.data.rotation import display_rotation, upright


@pytest.mark.parametrize("clockwise", [0, 90, 180, 270])
def test_display_rotation_reads_back(tmp_path, clockwise):
    path = write_rotated(tmp_path / f"r{clockwise}.mp4", index_frames(4), clockwise)
    assert display_rotation(path) == clockwise
    with VideoReader(path) as r:
        assert r.rotation == clockwise


def test_reader_turns_frames_upright_or_keeps_them(tmp_path):
    stored = index_frames(12)  # (12, 48, 64, 3)
    path = write_rotated(tmp_path / "phone.mp4", stored, 90)
    with VideoReader(path) as r:
        assert (r.width, r.height) == (48, 64)  # displayed geometry
        got = r.get_frames([2, 9, 2])  # (3, 64, 48, 3)
        clip = next(iter(r.iter_clips([[5, 6]])))[1]
    assert got.shape == (3, 64, 48, 3) and clip.shape == (2, 64, 48, 3)
    # turned back counter-clockwise, the stored frame (and its index) reappears
    assert decode_index(np.rot90(got.numpy(), 1, axes=(1, 2))) == [2, 9, 2]
    expected = np.rot90(stored[[2, 9, 2]], -1, axes=(1, 2)).astype(int)
    assert np.abs(got.numpy().astype(int) - expected).mean() < 4
    with VideoReader(path, upright=False) as r:
        assert (r.width, r.height) == (64, 48)
        assert decode_index(r.get_frames([2, 9])) == [2, 9]


def test_upright_turns_clockwise():
    a = np.arange(6).reshape(2, 3, 1)
    assert upright(a, 0) is a
    assert upright(a, 90)[:, :, 0].tolist() == [[3, 0], [4, 1], [5, 2]]
    assert upright(a, 180)[:, :, 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert upright(a, 270)[:, :, 0].tolist() == [[2, 5], [1, 4], [0, 3]]


def test_dataset_and_config_pass_upright(tmp_path):
    from timesformer.engine.config import load_config, resolve
    from timesformer.engine.train import build_dataset

    path = write_rotated(tmp_path / "v.mp4", index_frames(40), 90)
    (tmp_path / "l.csv").write_text("v.mp4,0\n")
    for flag in (True, False):
        ds = VideoDataset(tmp_path / "l.csv", mode="test", num_frames=2, sampling_rate=2,
                          test_views=(1, 1), crop_size=32, upright=flag)  # fmt: skip
        assert ds.upright is flag and ds[0]["error"] == ""
    cfg = load_config(None, [f"data.train_list={tmp_path / 'l.csv'}", "data.upright=false",
                             "data.list_separator=comma", "model.name=timesformer_tiny",
                             "model.num_classes=1"])  # fmt: skip
    ds = build_dataset(resolve(cfg), "train")
    assert ds.upright is False and ds.samples == [(str(path), 0)]


def test_predict_turns_upright_unless_told_to_keep_the_stored_frames(tmp_path):
    import torch

    from timesformer.engine.predict import predict
    from timesformer.models import TimeSformer, TimeSformerConfig

    path = write_rotated(tmp_path / "phone.mp4", index_frames(24), 90)
    torch.manual_seed(0)
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=2, embed_dim=16, depth=1,
                            num_heads=1, num_classes=3)  # fmt: skip
    model = TimeSformer(cfg).eval()
    turned = predict(model, path, views="1x1")
    stored = predict(model, path, views="1x1", upright=False)
    same = predict(model, path, views="1x1")
    assert torch.allclose(turned.probs, same.probs)
    assert not torch.allclose(turned.probs, stored.probs), "the rotation reaches the model"
