"""Segments: smoothing and merging of a score stream, per-second scores, the PNG, and
`predict --segments` on a video made of two classes back to back (a tiny model trained here)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from timesformer.cli import main
from timesformer.data import TestTransform, write_video
from timesformer.engine.segments import (
    find_segments,
    per_second_scores,
    plot_timeline,
    smooth_scores,
    window_edges,
    write_scores_csv,
)
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint

NAMES = ["walk", "run", "jump"]


def _stream(labels: list[int], p: float = 0.8, seed: int = 0) -> np.ndarray:
    """(J, 3) probabilities: `p` on each window's class, the rest shared, plus noise."""
    rng = np.random.default_rng(seed)
    out = np.full((len(labels), 3), (1 - p) / 2)
    out[np.arange(len(labels)), labels] = p
    out += rng.uniform(-0.05, 0.05, out.shape)
    return out / out.sum(1, keepdims=True)


def test_smoothing_removes_a_lone_window_and_the_cut_falls_on_the_window_edge() -> None:
    labels = [0] * 9 + [1] * 11
    labels[4] = 2  # one odd window inside the first action
    probs = _stream(labels)
    bounds = [(0.5 * j, 0.5 * (j + 1)) for j in range(20)]
    raw = find_segments(probs, bounds, NAMES, smooth=1)
    assert [s.label for s in raw] == ["walk", "jump", "walk", "run"]  # unsmoothed: split
    segs = find_segments(probs, bounds, NAMES, smooth=3)
    assert [(s.label, s.start, s.end, s.windows) for s in segs] == [
        ("walk", 0.0, 4.5, 9),
        ("run", 4.5, 10.0, 11),
    ]
    # the score is the mean raw probability of the segment's class over its windows
    assert segs[1].score == pytest.approx(probs[9:, 1].mean())
    assert segs[0].to_dict() == {"start": 0.0, "end": 4.5, "label": "walk",
                                 "score": segs[0].score}  # fmt: skip


def test_short_segments_join_a_neighbour_and_low_scores_leave_gaps() -> None:
    probs = _stream([0] * 6 + [2] * 2 + [1] * 6, seed=1)
    bounds = [(j, j + 1.0) for j in range(14)]
    assert [s.label for s in find_segments(probs, bounds, NAMES, smooth=1)] == [
        "walk", "jump", "run",
    ]  # fmt: skip
    merged = find_segments(probs, bounds, NAMES, smooth=1, min_windows=3)
    assert [s.label for s in merged] == ["walk", "run"] and merged[-1].end == 14.0
    assert merged[0].end in (6.0, 7.0, 8.0)
    flat = np.full((6, 3), 1 / 3)
    flat[3:] = [0.9, 0.05, 0.05]
    gaps = find_segments(flat, [(j, j + 1.0) for j in range(6)], NAMES, min_score=0.5, smooth=1)
    assert [(s.label, s.start, s.end) for s in gaps] == [("walk", 3.0, 6.0)]


def test_overlapping_windows_split_at_the_midpoint_of_their_centres() -> None:
    bounds = [(0.5 * j, 0.5 * j + 2.0) for j in range(8)]  # 2 s windows, 0.5 s apart
    edges = window_edges(bounds)
    assert edges[0] == 0.0 and edges[-1] == 5.5
    assert edges[1] == pytest.approx(1.25)  # centres 1.0 and 1.5
    segs = find_segments(_stream([0] * 4 + [1] * 4), bounds, NAMES, smooth=1)
    assert [(s.label, s.end) for s in segs][0] == ("walk", 2.75)


def test_smooth_scores_is_a_centred_mean_with_short_edges() -> None:
    p = np.array([[1.0], [0.0], [0.0], [3.0]])
    np.testing.assert_allclose(smooth_scores(p, 3)[:, 0], [0.5, 1 / 3, 1.0, 1.5])
    np.testing.assert_allclose(smooth_scores(p, 1), p)
    with pytest.raises(ValueError, match="smooth"):
        smooth_scores(p, 0)
    with pytest.raises(ValueError, match="windows=2, classes=3"):
        find_segments(np.zeros((3, 3)), [(0, 1), (1, 2)], NAMES)


def test_per_second_csv_and_timeline_png(tmp_path) -> None:
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
    bounds = [(0.0, 1.5), (1.5, 3.0), (3.0, 3.2)]
    rows = per_second_scores(probs, bounds, 3.2)
    assert rows.shape == (4, 3)
    np.testing.assert_allclose(rows[1], 0.5 * probs[0] + 0.5 * probs[1])  # 1-1.5 s / 1.5-2 s
    np.testing.assert_allclose(rows[3], probs[2])
    segs = find_segments(probs, bounds, NAMES, smooth=1)
    path = write_scores_csv(tmp_path / "s.csv", probs, bounds, NAMES, 3.2, segs)
    table = list(csv.reader(path.open()))
    assert table[0] == ["second", "start_s", "end_s", "segment", "top_label", "top_score",
                        *NAMES]  # fmt: skip
    assert [r[3] for r in table[1:]] == ["walk", "walk", "run", "run"] and len(table) == 5
    png = plot_timeline(tmp_path / "t.png", probs, bounds, NAMES, segs, title="x")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ end to end
COLOURS = {"red": (210, 40, 40), "blue": (40, 60, 210)}
MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def _frames(colour: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 48, 64, 3) frames: the class colour as background, noise and a grey moving box."""
    base = np.array(COLOURS[colour], dtype=np.int16)
    f = base + rng.integers(-40, 40, (n, 48, 64, 3))
    for t in range(n):
        x = (3 * t) % 48
        f[t, 10:26, x : x + 16] = 128
    return np.clip(f, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def two_class_model(tmp_path_factory) -> Path:
    """A tiny model trained for a few seconds to tell red clips from blue ones."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=4, embed_dim=32, depth=1,
                            num_heads=2, num_classes=2, drop_path_rate=0.0,
                            labels=["red", "blue"])  # fmt: skip
    model = TimeSformer(cfg)
    tf = TestTransform(32, num_crops=1, mean=MEAN, std=STD)
    xs, ys = [], []
    for i in range(48):
        colour = ("red", "blue")[i % 2]
        xs.append(tf(torch.from_numpy(_frames(colour, 4, rng)), 0))
        ys.append(i % 2)
    x, y = torch.stack(xs), torch.tensor(ys)  # (48, 3, 4, 32, 32)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: threads only contend (about 30 ms a step)
    try:
        for _ in range(30):
            idx = torch.randperm(48)[:16]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.95
    path = tmp_path_factory.mktemp("seg") / "redblue.pt"
    save_checkpoint(model, path, train_config={"data": {"sampling_rate": 4}})
    return path


def test_predict_segments_finds_both_classes_in_order_with_the_cut(two_class_model, tmp_path,
                                                                   capsys) -> None:  # fmt: skip
    rng = np.random.default_rng(7)
    cut = 4.0  # seconds: 120 frames of red, then 120 of blue
    video = tmp_path / "red_then_blue.mp4"
    write_video(video, np.concatenate([_frames("red", 120, rng), _frames("blue", 120, rng)]))
    out = tmp_path / "seg"
    code = main(["predict", str(video), "-c", str(two_class_model), "--segments", "--json",
                 "--out-dir", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    pred = json.loads(capsys.readouterr().out)["predictions"][0]
    segs = pred["segments"]
    window = 4 * 4 / 30  # 4 frames x rate 4 at 30 fps: 0.53 s per window
    assert [s["label"] for s in segs] == ["red", "blue"]
    assert segs[0]["start"] == 0.0 and segs[-1]["end"] == pytest.approx(8.0)
    assert abs(segs[0]["end"] - cut) <= window and segs[0]["end"] == segs[1]["start"]
    assert all(0.5 < s["score"] <= 1.0 for s in segs)
    scores = list(csv.reader((out / "red_then_blue.scores.csv").open()))
    assert len(scores) == 1 + 8 and scores[1][3] == "red" and scores[-1][3] == "blue"
    assert (out / "red_then_blue.timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert pred["files"]["timeline_png"].endswith("red_then_blue.timeline.png")
    # the text output lists the segments too
    assert main(["predict", str(video), "-c", str(two_class_model), "--segments"]) == 0
    text = capsys.readouterr().out
    assert "segments" in text and text.index("red  score") < text.index("blue  score")
