"""--debug in batch modes: a per-file error keeps its one line, and --debug adds its traceback
(a traceback caught in a decoding worker process included); without --debug, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

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


def _eval_config(folder: tuple[Path, Path], tmp_path: Path) -> Path:
    """A run config whose test list holds the good and the corrupt video, read by a worker."""
    videos, _ = folder
    (tmp_path / "test.csv").write_text("good.mp4 0\nbad.mp4 1\n")
    config = {
        "model": {"name": "timesformer_tiny"},
        "data": {"test_list": str(tmp_path / "test.csv"), "root": str(videos),
                 "sampling_rate": 2, "num_workers": 1, "test_views": "1x1"},
        "train": {"batch_size": 2, "progress": False},
        "output_dir": str(tmp_path / "out"),
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("debug", [False, True])
def test_eval_with_a_decoding_worker(folder, tmp_path, capsys, debug) -> None:
    config = _eval_config(folder, tmp_path)
    rc = main(["eval", "--config", str(config), "-c", str(folder[1]), "--json",
               *(["--debug"] * debug)])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["num_failed"] == 1 and "traceback" not in json.dumps(summary)
    saved = json.loads((tmp_path / "out" / "eval" / "summary.json").read_text())
    assert "traceback" not in json.dumps(saved)  # nor in the files
    lines = _error_lines(err, "eval")
    assert len(lines) == 1 and "bad.mp4" in lines[0]
    if debug:  # after the error line, the traceback the worker formatted
        tail = err.split(lines[0], 1)[1]
        assert "Traceback (most recent call last)" in tail
        assert "VideoDecodeError" in tail and "_eval_clip" in tail
    else:
        assert "Traceback" not in err


@pytest.mark.parametrize("debug", [False, True])
def test_train_with_a_decoding_worker(folder, tmp_path, debug) -> None:
    """The bad file's line is written by the DataLoader worker that met it: its traceback too."""
    videos, _ = folder
    (tmp_path / "train.csv").write_text("good.mp4 0\nbad.mp4 1\n")
    tiny = ["model.name=timesformer_tiny", "model.num_frames=4", "data.num_frames=4",
            "model.img_size=32", "data.crop_size=32", "model.patch_size=16",
            "model.embed_dim=16", "model.depth=1", "model.num_heads=1", "model.num_classes=2",
            "data.sampling_rate=2", "data.train_jitter=[32, 36]", "data.num_workers=1",
            "train.batch_size=2", "train.global_batch_size=2", "train.epochs=1",
            "train.progress=false", f"data.train_list={tmp_path / 'train.csv'}",
            f"data.root={videos}", f"output_dir={tmp_path / 'run'}"]  # fmt: skip
    cmd = [sys.executable, "-m", "timesformer", "train", "--config", "demo", *tiny, "--fresh",
           *(["--debug"] * debug)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr
    lines = [ln for ln in err.splitlines() if ln.startswith("skipping unreadable video")]
    assert len(lines) == 1 and "bad.mp4" in lines[0], err
    if debug:
        tail = err.split(lines[0], 1)[1]
        assert tail.lstrip("\n").startswith("Traceback (most recent call last)"), err
        assert "VideoDecodeError" in tail and "_train_item" in tail
    else:
        assert "Traceback" not in err
