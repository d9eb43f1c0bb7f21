"""Synthetic datasets: files and lists, determinism, cache, boxes, and labels that live in time."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from timesformer.cli import main
from timesformer.data.datasets import load_label_names, read_list_file
from timesformer.data.synthetic import (
    APPEARANCE_CLASSES,
    COLOURS,
    MOTION_CLASSES,
    FolderInUseError,
    render_appearance_clip,
    render_dataset,
    render_motion_clip,
    write_video,
)
from timesformer.data.video import VideoReader


def test_render_dataset_files_lists_and_cache(tmp_path):
    out = tmp_path / "motion"
    kw = dict(num_train=8, num_val=4, num_test=4, size=32, num_frames=6, seed=3, num_classes=4)
    info = render_dataset(out, "motion", **kw)
    assert info["labels"] == list(MOTION_CLASSES[:4]) and not info["cached"]
    assert load_label_names(out / "labels.txt", 4) == info["labels"]
    train = read_list_file(info["splits"]["train"])
    assert len(train) == 8 and sorted(y for _, y in train) == [0, 0, 1, 1, 2, 2, 3, 3]
    with VideoReader(train[0][0]) as reader:
        assert (reader.num_frames, reader.height, reader.width) == (6, 32, 32)
        assert reader.codec == "h264" and reader.fps == pytest.approx(30.0)
    boxes = json.loads((out / "boxes.json").read_text())
    assert len(boxes) == 16 and len(boxes["train/00000.mp4"]) == 6
    assert json.loads((out / "info.json").read_text())["params"]["seed"] == 3
    # cached: same parameters reuse the files untouched; new parameters are refused unless
    # overwrite (or replace_synthetic, for a folder the caller owns) re-renders
    stamp = (out / "train/00000.mp4").stat().st_mtime_ns
    assert render_dataset(out, "motion", **kw)["cached"]
    assert (out / "train/00000.mp4").stat().st_mtime_ns == stamp
    with pytest.raises(FolderInUseError, match="other options [(]seed 3 -> 4[)]"):
        render_dataset(out, "motion", **{**kw, "seed": 4})
    assert (out / "train/00000.mp4").stat().st_mtime_ns == stamp
    assert json.loads((out / "info.json").read_text())["params"]["seed"] == 3
    assert not render_dataset(out, "motion", **{**kw, "seed": 4}, overwrite=True)["cached"]
    assert not render_dataset(out, "motion", **kw, replace_synthetic=True)["cached"]
    assert not (out / ".synth-render.json").exists()  # the stamp of a render under way


def test_rendering_is_deterministic():
    a = render_motion_clip("up", np.random.default_rng(1), distractors=2, clutter=3)
    b = render_motion_clip("up", np.random.default_rng(1), distractors=2, clutter=3)
    c = render_motion_clip("up", np.random.default_rng(2), distractors=2, clutter=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


_ENCODE_CHILD = """
import hashlib, io, sys
import numpy as np
from timesformer.data.synthetic import render_motion_clip, write_video
rng = np.random.default_rng(0)
for i in range({n}):
    frames, _ = render_motion_clip(("approach", "recede")[i % 2], rng, size=32, num_frames=10,
                                   object_size=(0.25, 0.4), speed=(0.15, 0.2), wrap=False)
    write_video(sys.argv[1] + f"/{{i}}.mp4", frames)
"""


def test_h264_encodes_are_repeatable(tmp_path):
    """The same frames give the same file: in this process, in two processes encoding at once.

    With libx264's defaults about 1 clip in 20 came out different (more under load), which made
    the demo's results differ from run to run; 40 clips x 3 encodes catch that almost surely.
    """
    n = 40
    code = _ENCODE_CHILD.format(n=n)
    dirs = [tmp_path / name for name in ("a", "b", "c")]
    for d in dirs:
        d.mkdir()
    children = [subprocess.Popen([sys.executable, "-c", code, str(d)]) for d in dirs[:2]]
    rng = np.random.default_rng(0)
    for i in range(n):  # the third encode, here, while the children run
        frames, _ = render_motion_clip(("approach", "recede")[i % 2], rng, size=32, num_frames=10,
                                       object_size=(0.25, 0.4), speed=(0.15, 0.2), wrap=False)  # fmt: skip
        write_video(dirs[2] / f"{i}.mp4", frames)
    assert [c.wait(timeout=120) for c in children] == [0, 0]
    digests = [
        [hashlib.md5((d / f"{i}.mp4").read_bytes()).hexdigest() for i in range(n)] for d in dirs
    ]
    differ = [i for i in range(n) if len({h[i] for h in digests}) > 1]
    assert differ == [], f"clips encoded differently: {differ}"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown motion classes"):
        render_dataset(tmp_path, classes=["left", "sideways"])
    with pytest.raises(ValueError, match="even"):
        render_dataset(tmp_path, size=31)
    with pytest.raises(ValueError, match="kind"):
        render_dataset(tmp_path, kind="audio")


def _features(frame: np.ndarray) -> np.ndarray:
    """Single-frame features of the object: area, and wrapped centroid x and y."""
    f = frame.astype(np.float64)
    background = np.median(f.reshape(-1, 3), 0)
    mask = np.linalg.norm(f - background, axis=-1) > 40
    size = frame.shape[0]
    ang = np.exp(2j * np.pi * (np.arange(size) + 0.5) / size)
    ys, xs = np.nonzero(mask)
    cx = np.angle(ang[xs].mean()) * size / (2 * np.pi) % size
    cy = np.angle(ang[ys].mean()) * size / (2 * np.pi) % size
    return np.array([mask.mean(), cx, cy])


def _best_threshold_accuracy(a: np.ndarray, b: np.ndarray) -> float:
    values = np.concatenate([a, b])
    truth = np.r_[np.zeros(len(a)), np.ones(len(b))]
    return max(max(((values > t) == truth).mean(), ((values <= t) == truth).mean()) for t in values)


@pytest.fixture(scope="module")
def motion_features():
    """(N, T, 3) single-frame features per motion class, 64 clips of 8 frames at 32 px."""
    feats = {}
    for k, label in enumerate(MOTION_CLASSES):
        rng = np.random.default_rng([11, k])
        clips = [render_motion_clip(label, rng)[0] for _ in range(64)]
        feats[label] = np.array([[_features(f) for f in clip] for clip in clips])
    return feats


def test_motion_class_is_not_in_any_single_frame(motion_features):
    # For every frame position, every pair of classes and every feature (the object's area,
    # and where it is), the best threshold separates the two classes barely above chance.
    worst = 0.0
    for t in (0, 4, 7):
        for a, b in itertools.combinations(MOTION_CLASSES, 2):
            for k in range(3):
                acc = _best_threshold_accuracy(
                    motion_features[a][:, t, k], motion_features[b][:, t, k]
                )
                worst = max(worst, acc)
    assert worst < 0.72  # chance is 0.5; 64 per class and ~250 comparisons put noise near 0.66


def test_motion_class_is_in_time(motion_features):
    def step(x):  # wrapped displacement between consecutive frames
        return ((np.diff(x, axis=1) + 16) % 32 - 16).mean(1)

    f = motion_features
    assert _best_threshold_accuracy(step(f["left"][..., 1]), step(f["right"][..., 1])) > 0.97
    assert _best_threshold_accuracy(step(f["up"][..., 2]), step(f["down"][..., 2])) > 0.97

    def growth(x):  # majority of frame-to-frame changes of the log area
        return np.sign(np.diff(np.log(x[..., 0] + 1e-3), axis=1)).sum(1)

    assert _best_threshold_accuracy(growth(f["approach"]), growth(f["recede"])) > 0.95


def test_boxes_hold_the_object_amid_distractors():
    rng = np.random.default_rng(0)
    for label in MOTION_CLASSES:
        # render twice from the same seed: with and without the labelled object's colour known
        frames, boxes = render_motion_clip(
            label, rng, size=64, distractors=3, clutter=4, wrap=False, object_size=(0.15, 0.2)
        )
        assert boxes.shape == (8, 4)
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 64).all()
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        assert (areas > 20).all() and (areas < 64 * 64 / 4).all()
    # the box is where the object is: alone on a plain background, its pixels are all inside
    frames, boxes = render_motion_clip("right", np.random.default_rng(5), size=64, wrap=False)
    for f, (x0, y0, x1, y1) in zip(frames, boxes):
        ys, xs = np.nonzero(np.linalg.norm(f.astype(float) - f[0, 0], axis=-1) > 30)
        assert xs.min() >= np.floor(x0) - 1 and xs.max() <= np.ceil(x1) + 1
        assert ys.min() >= np.floor(y0) - 1 and ys.max() <= np.ceil(y1) + 1
        assert (xs.max() - xs.min()) >= 0.6 * (x1 - x0)  # and the box is tight
    assert boxes[-1, 0] > boxes[0, 0]  # moving right, inside the frame


def test_appearance_class_is_in_every_frame():
    rng = np.random.default_rng(0)
    names = list(COLOURS)
    palette = np.array([COLOURS[n] for n in names], float)
    for label in APPEARANCE_CLASSES * 3:
        frames, _ = render_appearance_clip(label, rng, size=32)
        for f in frames:  # any single frame: the object's colour names the class colour
            px = f.reshape(-1, 3).astype(float)
            obj = px[np.linalg.norm(px - np.median(px, 0), axis=1) > 60]
            assert len(obj) >= 5
            nearest = names[int(np.argmin(np.linalg.norm(palette - obj.mean(0), axis=1)))]
            assert nearest == label.split()[0]


def test_appearance_without_wrap_keeps_the_object_whole_inside_the_frame():
    for seed in range(20):
        label = APPEARANCE_CLASSES[seed % len(APPEARANCE_CLASSES)]
        frames, boxes = render_appearance_clip(
            label, np.random.default_rng(seed), size=32, num_frames=10, object_size=(0.4, 0.6),
            speed=(0.04, 0.08), wrap=False,
        )  # fmt: skip
        # the box is never clipped by the frame: the same size in every frame, inside it
        widths = boxes[:, 2] - boxes[:, 0]
        assert np.allclose(widths, widths[0], atol=1e-4) and (boxes >= 0).all()
        assert (boxes <= 32).all()
        # the border stays background: no piece of the object wrapped to the far edge
        _, wrapped_boxes = render_appearance_clip(
            label, np.random.default_rng(seed), size=32, num_frames=10, object_size=(0.4, 0.6),
            speed=(0.04, 0.08),
        )  # fmt: skip
        assert frames.shape == (10, 32, 32, 3) and wrapped_boxes.shape == boxes.shape


def test_synth_command(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["synth", str(out), "--num-train", "4", "--num-val", "2", "--num-test", "2",
            "--size", "16", "--frames", "4", "--classes", "left,right", "--json"]  # fmt: skip
    assert main(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["labels"] == ["left", "right"] and (out / "test.csv").is_file()
    assert main(["synth", str(out), "--classes", "left,nowhere"]) == 2  # a usage error
    assert "--classes: unknown motion classes ['nowhere']" in capsys.readouterr().err


SMALL = ["--num-train", "2", "--num-val", "1", "--num-test", "1", "--size", "16", "--frames", "2"]


def test_synth_refuses_a_folder_of_other_files(tmp_path, capsys):
    """A folder with the user's own files is not written over without --overwrite."""
    mine = tmp_path / "mine"
    (mine / "train").mkdir(parents=True)
    (mine / "train" / "00000.mp4").write_bytes(b"my video")
    (mine / "train.csv").write_text("my list\n")
    assert main(["synth", str(mine), *SMALL]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{mine} is not empty and holds no synthetic dataset" in err and "--overwrite" in err
    assert (mine / "train" / "00000.mp4").read_bytes() == b"my video"
    assert (mine / "train.csv").read_text() == "my list\n"
    assert sorted(p.name for p in mine.iterdir()) == ["train", "train.csv"]
    (mine / "info.json").write_text('{"note": "mine too"}')  # an info.json that is not ours
    assert main(["synth", str(mine), *SMALL]) == 1
    assert (mine / "info.json").read_text() == '{"note": "mine too"}'
    assert main(["synth", str(mine), *SMALL, "--overwrite", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"train": 2, "val": 1, "test": 1}
    assert (mine / "train.csv").read_text().startswith("train/00000.mp4 ")


def test_synth_reuses_its_own_render_and_refuses_other_options(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["synth", str(out), *SMALL]) == 0
    first = (out / "train" / "00000.mp4").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["synth", str(out), *SMALL]) == 0
    assert capsys.readouterr().out.startswith(f"reused cached files in {out}")
    assert (out / "train" / "00000.mp4").stat().st_mtime_ns == first
    assert main(["synth", str(out), *SMALL, "--seed", "7"]) == 1
    err = capsys.readouterr().err
    assert "rendered with other options (seed 0 -> 7)" in err and "--overwrite" in err
    assert json.loads((out / "info.json").read_text())["params"]["seed"] == 0
    assert main(["synth", str(out), *SMALL, "--seed", "7", "--overwrite"]) == 0
    assert json.loads((out / "info.json").read_text())["params"]["seed"] == 7


def test_an_interrupted_render_resumes_with_the_same_options(tmp_path, monkeypatch):
    """The stamp written first marks an unfinished render as synth's own: the same options
    render it again, other options are refused."""
    import timesformer.data.synthetic as S

    out = tmp_path / "syn"
    real = S.write_video
    calls = []

    def dies_on_the_second(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(*a, **kw)

    monkeypatch.setattr(S, "write_video", dies_on_the_second)
    kw = dict(num_train=2, num_val=1, num_test=1, size=16, num_frames=2)
    with pytest.raises(KeyboardInterrupt):
        render_dataset(out, **kw)
    monkeypatch.setattr(S, "write_video", real)
    assert not (out / "info.json").exists() and (out / ".synth-render.json").is_file()
    with pytest.raises(FolderInUseError, match="other options"):
        render_dataset(out, **{**kw, "seed": 1})
    info = render_dataset(out, **kw)
    assert not info["cached"] and (out / "info.json").is_file()
    assert not (out / ".synth-render.json").exists()


@pytest.mark.parametrize(
    "flag, value, says",
    [("--size", "100000", "expected an integer in 16..4096"),
     ("--size", "31", "expected an even integer in 16..4096"),
     ("--fps", "nan", "expected a finite number in (0, 240]"),
     ("--fps", "0", "expected a finite number in (0, 240]"),
     ("--fps", "1000", "expected a finite number in (0, 240]"),
     ("--objects", "0", "expected an integer in 1..32"),
     ("--object-size", "2,3", "each in (0, 1]"),
     ("--object-size", "0,0.3", "each in (0, 1]"),
     ("--speed", "nan", "finite numbers in [0, 1]"),
     ("--speed", "0.2,0.1", "LOW <= HIGH"),
     ("--frames", "0", "expected an integer in 1..4096"),
     ("--seed", "-1", "expected an integer >= 0"),
     ("--num-train", "-1", "expected an integer >= 0"),
     ("--num-classes", "1", "expected an integer >= 2"),
     ("--distractors", "-1", "expected an integer in 0..64"),
     ("--clutter", "1000", "expected an integer in 0..256"),
     ("--noise", "inf", "expected a number in [0, 1]")],
)  # fmt: skip
def test_bad_synth_values_are_usage_errors_before_any_work(tmp_path, capsys, flag, value, says):
    out = tmp_path / "syn"
    with pytest.raises(SystemExit) as e:
        main(["synth", str(out), flag, value])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"argument {flag}: " in err and says in err
    assert not out.exists()


@pytest.mark.parametrize(
    "args, says",
    [(["--frames", "4096", "--size", "1024"], "--frames 4096 x --size 1024"),
     (["--num-train", "0", "--num-val", "0", "--num-test", "0"], "expected at least one video"),
     (["--num-classes", "9"], "--num-classes: num_classes must be in [2, 8]"),
     (["--classes", "left"], "--classes: classes must be at least 2"),
     (["--kind", "appearance", "--objects", "2"], "--objects: only --kind motion")],
)  # fmt: skip
def test_bad_synth_combinations_are_usage_errors(tmp_path, capsys, args, says):
    out = tmp_path / "syn"
    assert main(["synth", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err
    assert not out.exists()


def test_render_dataset_refuses_impossible_values(tmp_path):
    for bad in ({"fps": float("nan")}, {"num_objects": 0}, {"object_size": (0.5, 2.0)},
                {"speed": (0.0, float("inf"))}, {"clutter": -1}):  # fmt: skip
        with pytest.raises(ValueError):
            render_dataset(tmp_path / "x", **bad)
    assert not (tmp_path / "x").exists()
