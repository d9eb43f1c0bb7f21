"""File names with a newline or a tab: every message about them stays one line, in full."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timesformer.cli import main
from timesformer.data import write_video
from timesformer.data.inputs import InputError, expand_inputs
from timesformer.data.video import VideoDecodeError, VideoReader
from timesformer.files import printable_path
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("names")
    frames = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    write_video(d / "good\nclip.mp4", frames, fps=30)
    (d / "bad\tjunk.mp4").write_bytes(b"\x00not a video" * 50)
    return d


def test_printable_path_escapes_control_characters_only():
    assert printable_path("a b/é 日本.mp4") == "a b/é 日本.mp4"
    assert printable_path("a\nb\t\u2028.mp4") == "a\\nb\\t\\u2028.mp4"
    assert printable_path("bad_\udcff.mp4") == "bad_\udcff.mp4"  # not UTF-8: as it is


def test_reader_and_input_errors_are_one_line(folder):
    with pytest.raises(VideoDecodeError) as e:
        VideoReader(folder / "bad\tjunk.mp4")
    assert "\n" not in str(e.value) and "\t" not in str(e.value)
    assert "bad\\tjunk.mp4: cannot open" in str(e.value)
    assert e.value.path == str(folder / "bad\tjunk.mp4")  # the attribute keeps the real name
    with pytest.raises(InputError, match=r"nope\\nx\.mp4: no such file"):
        expand_inputs([str(folder / "nope\nx.mp4")])


def test_predict_and_data_check_name_such_files_on_one_line(folder, tmp_path, capsys):
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=2, embed_dim=32, depth=1,
                            num_heads=1, num_classes=2, labels=["x", "y"])  # fmt: skip
    torch.manual_seed(0)
    ckpt = save_checkpoint(TimeSformer(cfg).eval(), tmp_path / "m.pt")
    assert main(["predict", str(folder), "-c", str(ckpt), "--no-progress", "--topk", "1"]) == 1
    out, err = capsys.readouterr()
    (error,) = [line for line in err.splitlines() if "error:" in line]
    assert error.endswith("bad\\tjunk.mp4: cannot open: truncated, corrupt or not a media file "
                          "(FFmpeg: Invalid data found when processing input)")  # fmt: skip
    assert out.splitlines()[0].startswith(f"{folder}/good\\nclip.mp4  (")
    assert main(["data", "check", str(folder), "--no-decode", "--no-progress"]) == 1
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith(f"{folder}/bad\\tjunk.mp4: unreadable")
    assert lines[1].startswith(f"{folder}/good\\nclip.mp4: ")
