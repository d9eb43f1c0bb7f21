"""extract: features equal the model's on hand-built clips, windows and their times, the index,
resume, failures, names, duration-balanced shares, and two torchrun nodes = one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import timesformer
from timesformer import data as tdata
from timesformer.cli import main
from timesformer.data import VideoReader, write_video
from timesformer.data.inputs import VideoInput
from timesformer.engine.extract import extract
from timesformer.engine.extract_run import assign_shards, feature_names, merge_index
from timesformer.engine.predict import load_for_inference
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint

SRC = Path(timesformer.__file__).resolve().parents[1]
LENGTHS = [30, 60, 90, 120, 45, 75]  # frames at 30 fps: 1 to 4 s


def _tiny() -> TimeSformer:
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=4, embed_dim=32, depth=1,
                            num_heads=1, num_classes=3, drop_path_rate=0.0)  # fmt: skip
    model = TimeSformer(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Six small videos, half of them in a sub-folder."""
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    for i, n in enumerate(LENGTHS):
        frames = rng.integers(0, 255, (n, 48, 64, 3), dtype=np.uint8)
        write_video(root / ("sub" if i % 2 else "") / f"v{i}.mp4", frames, fps=30)
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(_tiny(), path, train_config={"data": {"sampling_rate": 3}})
    return path


def test_video_mode_is_the_mean_of_the_view_features(videos, ckpt) -> None:
    model, st = load_for_inference(ckpt)
    path = videos / "v2.mp4"
    for pool in ("cls", "mean"):
        (got,) = extract(model, [path], views="2x3", pool=pool, settings=st, batch_size=4)
        with VideoReader(path) as r:
            views = tdata.test_views(r.num_frames, 4, 3, r.fps, num_clips=2, num_crops=3,
                                     protocol=st.test_protocol)  # fmt: skip
            tf = tdata.TestTransform(32, num_crops=3, mean=st.mean, std=st.std,
                                     protocol=st.test_protocol, train_short_side=st.short_side)  # fmt: skip
            x = torch.stack([tf(r.get_frames(list(v.indices)), v.crop) for v in views])
        with torch.no_grad():
            want = model.forward_features(x, pool=pool).mean(0)  # (D,)
        assert got.ok and got.features.shape == (32,) and got.views == "2x3"
        np.testing.assert_allclose(got.features, want.numpy(), atol=1e-5)
        assert (got.fps, got.video_frames, got.num_clips) == (30.0, 90, 6)
    cls_, mean_ = (extract(model, path, views="1x1", pool=p)[0].features for p in ("cls", "mean"))
    assert not np.allclose(cls_, mean_)  # the two poolings really differ


def test_windows_cover_the_video_with_their_times_and_strides(videos, ckpt) -> None:
    model, st = load_for_inference(ckpt)  # 4 frames x rate 3: 12-frame (0.4 s) windows
    path = videos / "v2.mp4"  # 90 frames
    (w,) = extract(model, path, mode="windows", settings=st, batch_size=3)
    with VideoReader(path) as r:
        clips = tdata.cover_clips(r.num_frames, 4, 3, r.fps)
        tf = tdata.TestTransform(32, num_crops=1, mean=st.mean, std=st.std,
                                 protocol=st.test_protocol, train_short_side=st.short_side)  # fmt: skip
        x = torch.stack([tf(r.get_frames(c), 0) for c in clips])
    with torch.no_grad():
        want = model.forward_features(x)  # (8, D)
    assert w.features.shape == (8, 32) and len(w.windows) == 8
    np.testing.assert_allclose(w.features, want.numpy(), atol=1e-5)
    assert w.windows[0] == [0.0, 0.4] and w.windows[1] == [0.4, 0.8] and w.windows[-1][1] == 3.0
    rec = w.record("features/v2.npy")
    assert (rec["feat_stride"], rec["window_frames"], rec["num_frames"]) == (12, 12, 4)
    # overlapping windows, half a window apart, stored as fp16
    (o,) = extract(model, path, mode="windows", stride=6, dtype="fp16", settings=st)
    assert o.features.dtype == np.float16 and o.features.shape == (14, 32)  # starts 0..78
    assert o.windows[1] == [0.2, 0.6] and o.windows[-1] == [2.6, 3.0] and o.feat_stride == 6
    np.testing.assert_allclose(o.features[::2].astype(np.float32), want.numpy()[:7], atol=2e-2)
    assert tdata.cover_clips(90, 4, 3, 30.0, stride=12) == clips  # stride = span: the cover
    assert len(tdata.cover_clips(90, 4, 3, 30.0, stride=6)) == 14
    with pytest.raises(ValueError, match="stride"):
        extract(model, path, mode="video", stride=6)


def test_clips_are_batched_across_videos_and_workers_change_nothing(videos, ckpt) -> None:
    model, st = load_for_inference(ckpt)
    paths = [videos / "v0.mp4", videos / "v4.mp4", videos / "v2.mp4"]  # 3 + 4 + 8 windows
    sizes: list[int] = []
    orig = model.forward_features

    def counting(x, **kw):
        sizes.append(x.shape[0])
        return orig(x, **kw)

    model.forward_features = counting  # type: ignore[method-assign]
    try:
        a = extract(model, paths, mode="windows", settings=st, batch_size=5)
    finally:
        del model.forward_features
    assert sizes == [5, 5, 5]  # 15 windows of three videos in three full batches
    b = extract(model, paths, mode="windows", settings=st, batch_size=5, workers=2)
    for x, y in zip(a, b):
        assert x.video == y.video
        np.testing.assert_allclose(x.features, y.features, atol=1e-6)


def test_a_bad_video_is_reported_and_the_others_still_extracted(videos, ckpt, tmp_path) -> None:
    model, st = load_for_inference(ckpt)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    out = extract(model, [videos / "v0.mp4", bad, tmp_path / "missing.mp4"], settings=st)
    assert [r.status for r in out] == ["ok", "failed", "failed"]
    assert "broken.mp4" in out[1].error and out[1].features is None
    assert out[1].record("features/broken.npy")["error"] == out[1].error


def test_names_keep_relative_paths_and_collisions_are_resolved_in_order() -> None:
    inputs = [VideoInput(Path(p), n) for p, n in [
        ("/a/x/clip.mp4", "x/clip.mp4"), ("/b/x/clip.mp4", "x/clip.mp4"),
        ("/c/clip.mkv", "clip.mkv"), ("/d/Clip.mp4", "Clip.mp4"), ("/e/../up.mp4", "../up.mp4"),
    ]]  # fmt: skip
    assert feature_names(inputs) == ["x/clip", "x/clip__2", "clip", "Clip__2", "up"]


def test_shares_are_disjoint_deterministic_and_balanced_by_duration() -> None:
    durations = [600.0, 10, 10, 10, 300, 290, 5, 20]
    shares = assign_shards(durations, 3)
    assert shares == assign_shards(durations, 3)
    assert sorted(i for s in shares for i in s) == list(range(8))
    loads = sorted(sum(durations[i] for i in s) for s in shares)
    assert loads == [320, 325, 600]  # the long file alone; the rest spread evenly
    assert assign_shards([1.0, 2.0], 4) == [[1], [0], [], []]


def _cli(capsys, *args: str) -> tuple[int, dict]:
    code = main(["extract", *args, "--json", "--workers", "0"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def test_cli_writes_features_and_index_and_resumes(videos, ckpt, tmp_path, capsys) -> None:
    src = tmp_path / "in"
    (src / "deep").mkdir(parents=True)
    for name in ("v0.mp4", "sub/v1.mp4"):
        (src / "deep" / Path(name).name).write_bytes((videos / name).read_bytes())
    (src / "deep" / "zz_bad.mp4").write_bytes(b"junk")
    out = tmp_path / "out"
    code, summary = _cli(capsys, str(src), "-c", str(ckpt), "--out", str(out), "--mode",
                         "windows")  # fmt: skip
    assert code == 1 and (summary["ok"], summary["failed"], summary["skipped"]) == (2, 1, 0)
    assert summary["clips"] == 3 + 5 and summary["clips_per_s"] > 0
    lines = [json.loads(x) for x in (out / "index.jsonl").read_text().splitlines()]
    assert [r["video"] for r in lines] == ["deep/v0.mp4", "deep/v1.mp4", "deep/zz_bad.mp4"]
    ok = lines[0]
    for key in ("feature", "shape", "fps", "duration", "num_frames", "sampling_rate",
                "windows", "feat_stride", "window_frames", "status"):  # fmt: skip
        assert key in ok
    assert ok["feature"] == "features/deep/v0.npy" and ok["status"] == "ok"
    assert np.load(out / ok["feature"]).shape == tuple(ok["shape"]) == (3, 32)
    assert lines[2]["status"] == "failed" and "zz_bad.mp4" in lines[2]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["features", "index.jsonl", "run.json"]
    # rerun: both good videos are skipped; remove one output and only it is redone
    first = out / "features/deep/v1.npy"
    stamp = first.stat().st_mtime_ns
    (out / "features/deep/v0.npy").unlink()
    code, again = _cli(capsys, str(src), "-c", str(ckpt), "--out", str(out), "--mode",
                       "windows")  # fmt: skip
    assert code == 1 and again["skipped"] == 1 and again["clips"] == 3
    assert first.stat().st_mtime_ns == stamp and (out / "features/deep/v0.npy").is_file()
    assert (out / "index.jsonl").read_text().splitlines()[:2] == [json.dumps(r) for r in
                                                                  lines[:2]]  # fmt: skip
    # other settings into the same folder: refused in one line, nothing changed
    code = main(["extract", str(src), "-c", str(ckpt), "--out", str(out), "--mode", "windows",
                 "--pool", "mean", "--workers", "0"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "pool='cls'" in err and len(err.strip().splitlines()) == 1


def test_merge_lists_every_video_when_a_rank_stopped(tmp_path) -> None:
    inputs = [VideoInput(Path(f"/v/{n}.mp4"), f"{n}.mp4") for n in ("a", "b", "c")]
    (tmp_path / "features").mkdir()
    np.save(tmp_path / "features" / "a.npy", np.zeros(4, np.float32))
    (tmp_path / "parts").mkdir()
    rec = {"video": "a.mp4", "feature": "features/a.npy", "shape": [4], "status": "ok"}
    (tmp_path / "parts" / "rank-0.jsonl").write_text(json.dumps(rec) + "\n{cut by a cra")
    lines = merge_index(tmp_path, inputs, ["a", "b", "c"], {1: "RuntimeError: out of memory"})
    assert [r["status"] for r in lines] == ["ok", "failed", "failed"]
    assert "rank 1 stopped: RuntimeError: out of memory" in lines[1]["error"]
    assert not (tmp_path / "parts").exists()
    assert len((tmp_path / "index.jsonl").read_text().splitlines()) == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_torchrun_nodes_give_the_files_of_one_process(videos, ckpt, tmp_path, capsys):
    one = tmp_path / "one"
    code, single = _cli(capsys, str(videos), "-c", str(ckpt), "--out", str(one), "--mode",
                        "windows", "--batch-size", "3")  # fmt: skip
    assert code == 0 and single["ok"] == 6
    two, port = tmp_path / "two", _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
           "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id",
           f"extract-{port}", "--max-restarts", "0", "-m", "timesformer.cli", "extract",
           str(videos), "-c", str(ckpt), "--out", str(two), "--mode", "windows",
           "--batch-size", "5", "--workers", "0", "--json"]  # fmt: skip
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    summary = next(json.loads(o) for o, _ in outs if o.strip().startswith("{"))
    assert summary["world_size"] == 2 and summary["ok"] == 6
    assert sorted(summary["per_rank"]) == [3, 3] and sum(summary["per_rank"]) == 6  # both worked
    files = sorted(p.relative_to(two).as_posix() for p in two.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(one).as_posix() for p in one.rglob("*") if p.is_file())
    assert len([f for f in files if f.endswith(".npy")]) == 6  # no duplicates, nothing missing
    assert (two / "index.jsonl").read_text() == (one / "index.jsonl").read_text()
    for f in files:
        if f.endswith(".npy"):
            np.testing.assert_allclose(np.load(two / f), np.load(one / f), atol=1e-5)
