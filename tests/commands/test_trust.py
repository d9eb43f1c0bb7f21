"""Failures are visible and lose nothing: inputs, outputs, warnings, pipes, versions, YAML."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from timesformer.cli import main
from timesformer.data import write_video
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=2, embed_dim=16, depth=1,
                            num_heads=1, num_classes=3, labels=["a", "b", "c"])  # fmt: skip
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    train_config = {"data": {"sampling_rate": 2}}
    save_checkpoint(TimeSformer(cfg).eval(), path, train_config=train_config)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """A folder of 3 short videos, one in a sub-folder, and a PNG disguised as nothing."""
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for name in ("one.mp4", "two.mp4", "sub/three.mp4"):
        (folder / name).parent.mkdir(exist_ok=True)
        write_video(folder / name, rng.integers(0, 255, (12, 32, 40, 3), dtype=np.uint8), fps=10)
    return folder


def _png(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(path, format="PNG")
    return path


def test_predict_folder_list_glob_url_and_image(ckpt, clips, tmp_path, capsys) -> None:
    image = _png(tmp_path / "still.mp4")  # an image with a video's name
    listing = tmp_path / "list.txt"
    listing.write_text(f"{clips / 'one.mp4'} 0\n{clips / 'two.mp4'} 1\n")
    out = tmp_path / "preds.csv"
    rc = main(["predict", str(clips), str(listing), str(clips / "sub" / "*.mp4"), str(image),
               "http://example.com/v.mp4", "-c", str(ckpt), "--views", "1x1", "--json",
               "--out", str(out), "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 1
    d = json.loads(captured.out)
    assert sorted(Path(p["path"]).name for p in d["predictions"]) == ["one.mp4", "three.mp4",
                                                                       "two.mp4"]  # fmt: skip
    errors = {Path(e["path"]).name: e["error"] for e in d["errors"]}
    assert "an image (PNG), not a video" in errors["still.mp4"]
    assert any("URLs are not read" in e for e in errors.values())
    assert "Traceback" not in captured.err
    rows = list(csv.DictReader(out.open()))
    assert [r["status"] for r in rows].count("ok") == 3 and len(rows) == 5
    assert all(r["label"] in "abc" for r in rows if r["status"] == "ok")


def test_predict_long_writes_clip_rows_as_it_goes(ckpt, clips, tmp_path, capsys) -> None:
    out = tmp_path / "timeline.csv"
    assert main(["predict", str(clips / "one.mp4"), "-c", str(ckpt), "--long", "--out",
                 str(out)]) == 0  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert [r["status"] for r in rows][-1] == "ok"
    assert sum(r["status"] == "clip" for r in rows) >= 2


def test_checkpoint_settings_warning_is_recorded(tmp_path, clips, capsys) -> None:
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=2, embed_dim=16, depth=1,
                            num_heads=1, num_classes=3)  # fmt: skip
    path = tmp_path / "bad_cfg.pt"
    save_checkpoint(TimeSformer(cfg).eval(), path)
    raw = torch.load(path, weights_only=True)
    raw["preprocess"] = "{not json"  # a damaged contract record in an older, unhashed file
    raw.pop("payload_sha256", None)
    torch.save(raw, path)
    from timesformer.models.weights import from_pretrained

    with pytest.warns(RuntimeWarning, match="cannot be read"):
        model = from_pretrained(path)
    assert model.preprocess.sources["sampling_rate"] == "default"
    assert main(["predict", str(clips / "one.mp4"), "-c", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    assert any("recorded preprocessing cannot be read" in w for w in d["warnings"])
    assert "warning" in captured.err


def test_video_warnings_land_in_the_record(ckpt, clips, monkeypatch, capsys) -> None:
    import timesformer.engine.predict as P

    real = P._predict_views

    def noisy(*a, **kw):
        warnings.warn("the file ends early: 3 of 12 frames", UserWarning, stacklevel=1)
        return real(*a, **kw)

    monkeypatch.setattr(P, "_predict_views", noisy)
    assert main(["predict", str(clips / "two.mp4"), "-c", str(ckpt), "--json"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)["predictions"]
    assert rec["warnings"] == ["UserWarning: the file ends early: 3 of 12 frames"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_is_one_line_before_work(ckpt, clips, tmp_path, capsys) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc = main(["synth", str(ro / "data")])
        assert rc == 1 and "cannot create output folder" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


def test_output_that_is_a_file_is_one_line(ckpt, clips, tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        ["synth", str(blocker / "data")],
        ["explain", str(clips / "one.mp4"), "-c", str(ckpt), "--out", str(blocker / "ex")],
        ["convert", str(ckpt), str(blocker / "x.pt")],
        ["predict", str(clips / "one.mp4"), "-c", str(ckpt), "--out", str(blocker / "p.csv")],
        ["bench", "--model", "timesformer_tiny", "--write", str(blocker / "r.md")],
        ["demo", "--out", str(blocker / "demo")],
    ]
    for argv in cases:
        rc = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1 and len(err) == 1 and "is a file, not a folder" in err[0], (argv, err)
    with pytest.raises(OSError):  # --debug: the traceback
        main(["explain", str(clips / "one.mp4"), "-c", str(ckpt), "--out", str(blocker / "e"),
              "--debug"])  # fmt: skip


def test_predict_out_never_replaces_an_input_or_a_file_of_another_kind(
    ckpt, clips, tmp_path, capsys
) -> None:
    """--out naming the video (or a hard link to it, the list, the checkpoint) exits 2 before
    the model loads and the CSV is opened; an existing file that is not an earlier predict CSV
    exits 1; neither is touched. An earlier CSV is rewritten on a rerun, as before."""
    import shutil

    video = tmp_path / "victim.mp4"
    shutil.copy(clips / "one.mp4", video)
    os.link(video, tmp_path / "hard.mp4")
    listing = tmp_path / "l.txt"
    listing.write_text(f"{video}\n")
    script = tmp_path / "tool.py"
    script.write_text("print('mine')\n")
    kept = {p: p.read_bytes() for p in (video, listing, script, ckpt)}
    cases = [
        ([str(video), "--out", str(video)], 2, "is the same file as the input"),
        ([str(video), "--out", str(tmp_path / "hard.mp4")], 2, "is the same file as the input"),
        ([str(listing), "--out", str(listing)], 2, "is the same file as the input"),
        ([str(video), "--out", str(ckpt)], 2, "is the same file as the input"),
        ([str(video), "--out", str(script)], 1, "exists and is not an earlier report"),
        ([str(clips / "two.mp4"), "--out", str(tmp_path / "hard.mp4")], 1, "not an earlier"),
    ]
    for argv, code, words in cases:
        assert main(["predict", *argv, "-c", str(ckpt), "--views", "1x1"]) == code, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (argv, err)
    assert all(p.read_bytes() == b for p, b in kept.items())
    out = tmp_path / "results.csv"
    for _ in range(2):
        assert main(["predict", str(video), "-c", str(ckpt), "--views", "1x1", "--out",
                     str(out)]) == 0  # fmt: skip
        assert [r["status"] for r in csv.DictReader(out.open())] == ["ok"]


def test_predict_segments_out_dir_never_replaces_a_list(ckpt, clips, tmp_path, capsys) -> None:
    listing = tmp_path / "one.scores.csv"  # the name --segments gives one.mp4's scores
    listing.write_text(f"{clips / 'one.mp4'}\n")
    rc = main(["predict", str(listing), "-c", str(ckpt), "--segments", "--out-dir",
               str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "is the same file as the input" in err[0], err
    assert listing.read_text() == f"{clips / 'one.mp4'}\n"


def test_labels_folder_and_unreadable_checkpoint_are_named(
    ckpt, clips, tmp_path, capsys, monkeypatch
) -> None:
    folder = tmp_path / "k400"
    folder.mkdir()
    video = str(clips / "one.mp4")
    assert main(["predict", video, "-c", str(ckpt), "--labels", str(folder)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"label-names file {folder} is a folder" in err[0], err
    png = _png(tmp_path / "img.png")
    assert main(["convert", str(ckpt), str(tmp_path / "o.pt"), "--labels", str(png)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"labels file {png} is not UTF-8 text" in err[0], err
    assert main(["predict", video, "-c", "~nosuchuser_ts/m.pt"]) == 1  # no RuntimeError
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint not found: ~nosuchuser_ts/m.pt" in err[0], err
    import timesformer.models.weights as W

    def denied(path, allow_pickle):  # what open() raises on a chmod 000 file (root reads it)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(W, "_read_path", denied)
    assert main(["predict", video, "-c", str(ckpt)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"timesformer predict: error: cannot read checkpoint {ckpt}: permission denied"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file")
def test_a_checkpoint_without_read_permission(ckpt, clips, tmp_path, capsys) -> None:
    import shutil

    locked = tmp_path / "locked.pt"
    shutil.copy(ckpt, locked)
    locked.chmod(0)
    try:
        assert main(["predict", str(clips / "one.mp4"), "-c", str(locked)]) == 1
        err = capsys.readouterr().err
        assert f"cannot read checkpoint {locked}: permission denied" in err
    finally:
        locked.chmod(0o600)


def test_explain_uniform_map_is_a_warning(monkeypatch) -> None:
    import timesformer.tools.explain as E

    T, gh, gw = 2, 2, 2
    monkeypatch.setattr(E, "_build_steps", lambda *a: [])
    monkeypatch.setattr(E, "propagate", lambda blocks, n, n_cls, m: torch.zeros(1, n))
    with pytest.warns(RuntimeWarning, match="the map is uniform"):
        maps = E.class_relevance([[None]], (T, gh, gw))
    assert torch.allclose(maps, torch.full_like(maps, 1 / (T * gh * gw)))


def _cli(*args: str, stdin: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "timesformer.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_version_and_yaml_line(tmp_path) -> None:
    v = _cli("--version")
    assert v.returncode == 0 and v.stdout.startswith("timesformer ")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n bad: [\n")
    r = _cli("train", "--config", str(bad))
    assert r.returncode == 1 and f"{bad}: not valid YAML: line 3" in r.stderr
    assert "Traceback" not in r.stderr
    r = _cli("train", "--config", "demo", "model.img_size=30", "--print-config")
    assert r.returncode == 1 and "model.img_size=30" in r.stderr
    r = _cli("train", "--config", "demo", "data.train_jitter=[20, 30]", "--print-config")
    assert r.returncode == 1 and "data.train_jitter" in r.stderr


def test_json_into_head_exits_quietly(ckpt, clips) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = (f"{sys.executable} -m timesformer.cli predict {clips} -c {ckpt} --json "
           "--views 1x1 | head -1")  # fmt: skip
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], env=env, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.stdout.strip() == "{"
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert r.returncode in (0, 141)
