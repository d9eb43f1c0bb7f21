"""--debug in batch modes: a per-file error keeps its one line, and --debug adds its traceback
(a traceback caught in a decoding worker process included); without --debug, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from timesformer.cli import main
from timesformer.data import write_video
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, Path]:
    """(a folder with one good and one corrupt video, a tiny checkpoint)."""
    root = tmp_path_factory.mktemp("debug")
    videos = root / "videos"
    rng = np.random.default_rng(0)
    write_video(videos / "good.mp4", rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8), fps=30)
    (videos / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    torch.manual_seed(0)
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=4, embed_dim=32, depth=1,
                            num_heads=1, num_classes=2, drop_path_rate=0.0)  # fmt: skip
    ckpt = root / "tiny.pt"
    save_checkpoint(TimeSformer(cfg).eval(), ckpt, train_config={"data": {"sampling_rate": 2}})
    return videos, ckpt


def _error_lines(err: str, command: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith(f"timesformer {command}: error:")]


@pytest.mark.parametrize("debug", [False, True])
def test_predict_over_a_folder(folder, capsys, debug) -> None:
    videos, ckpt = folder
    rc = main(["predict", str(videos), "-c", str(ckpt), "--json", *(["--debug"] * debug)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert [p["path"] for p in json.loads(out)["predictions"]] == [str(videos / "good.mp4")]
    errors = _error_lines(err, "predict")
    assert len(errors) == 1 and "bad.mp4" in errors[0]
    if debug:  # the traceback follows the error line, and ends in the error itself
        tail = err.split(errors[0], 1)[1]
        assert "Traceback (most recent call last)" in tail
        assert "VideoDecodeError" in tail and "bad.mp4" in tail
    else:
        assert "Traceback" not in err


@pytest.mark.parametrize("debug", [False, True])
def test_extract_over_a_folder_with_a_decoding_worker(folder, tmp_path, capsys, debug) -> None:
    videos, ckpt = folder
    out = tmp_path / "feats"
    rc = main(["extract", str(videos), "-c", str(ckpt), "--out", str(out), "--workers", "1",
               "--json", *(["--debug"] * debug)])  # fmt: skip
    stdout, err = capsys.readouterr()
    assert rc == 1
    summary = json.loads(stdout)
    assert (summary["ok"], summary["failed"]) == (1, 1)
    assert "tracebacks" not in summary  # the JSON keeps its fields
    errors = _error_lines(err, "extract")
    assert len(errors) == 1 and "bad.mp4" in errors[0]
    if debug:
        tail = err.split(errors[0], 1)[1]
        assert "Traceback (most recent call last)" in tail
        assert "VideoDecodeError" in tail and "_video" in tail  # raised in the worker
    else:
        assert "Traceback" not in err
    record = [json.loads(x) for x in (out / "index.jsonl").read_text().splitlines()]
    assert all("traceback" not in r for r in record)


@pytest.mark.parametrize("debug", [False, True])
def test_data_prepare_over_a_folder(folder, tmp_path, capsys, debug) -> None:
    videos, _ = folder
    dst = tmp_path / "prepared"
    rc = main(["data", "prepare", str(videos), str(dst), "--short-side", "32", "--sample", "0",
               "--no-progress", "--json", *(["--debug"] * debug)])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 1
    records = json.loads(out)["records"]
    assert sorted(r["status"] for r in records) == ["failed", "written"]
    assert all("traceback" not in r for r in records)  # the JSON keeps its fields
    if debug:
        assert "Traceback (most recent call last)" in err
        assert "VideoDecodeError" in err and "bad.mp4" in err
    else:
        assert "Traceback" not in err
