"""List files, folder trees, label names, VideoDataset items and the bad-file policy."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from _video_helpers import decode_index, index_frames

from timesformer.data.datasets import (
    VideoDataset,
    load_label_names,
    read_list_file,
    scan_folder,
)
from timesformer.data.synthetic import write_video


# ---------------------------------------------------------------------------- list files
def test_read_list_file_formats(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("# comment\npath label\na.mp4 0\n\nsub/b c.mp4 3\n/abs/c.mp4 1\n")
    assert read_list_file(f) == [
        (str(tmp_path / "a.mp4"), 0),  # relative to the list file's folder by default
        (str(tmp_path / "sub/b c.mp4"), 3),  # the label is the last field: spaces in paths
        ("/abs/c.mp4", 1),
    ]
    assert read_list_file(f, root="/data")[0] == ("/data/a.mp4", 0)
    g = tmp_path / "list.csv"
    g.write_text("path,label\nx.mp4,2\ny z.mp4 , 5\n")
    assert read_list_file(g, root="r", separator=",") == [("r/x.mp4", 2), ("r/y z.mp4", 5)]


@pytest.mark.parametrize(
    "text, match",
    [
        ("a.mp4 0\nb.mp4\n", r"list.txt:2: expected"),
        ("a.mp4 0\nb.mp4 x\n", r"list.txt:2: label must be a non-negative integer"),
        ("a.mp4 -1\n", r"list.txt:1: label must be non-negative"),
        ("\n# nothing\n", "has no entries"),
    ],
)
def test_read_list_file_errors(tmp_path, text, match):
    f = tmp_path / "list.txt"
    f.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_list_file(f)


def test_missing_list_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="list file not found"):
        read_list_file(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError):
        VideoDataset(tmp_path / "nope.csv")


def test_scan_folder(tmp_path):
    for cls, names in {"walk": ["1.mp4", "2.webm"], "run": ["a.MP4"], "empty": []}.items():
        (tmp_path / cls).mkdir()
        for n in names:
            (tmp_path / cls / n).write_bytes(b"x")
    (tmp_path / "walk" / "notes.txt").write_text("not a video")
    (tmp_path / "loose.mp4").write_bytes(b"x")  # in no class folder
    with pytest.warns(UserWarning) as caught:
        samples, classes = scan_folder(tmp_path)
    said = " ".join(str(w.message) for w in caught)
    assert "without videos: empty" in said and "loose.mp4" in said
    assert classes == ["empty", "run", "walk"]
    assert [(p.split("/")[-1], y) for p, y in samples] == [
        ("a.MP4", 1),
        ("1.mp4", 2),
        ("2.webm", 2),
    ]
    with pytest.raises(ValueError, match="no videos found"):
        scan_folder(tmp_path / "empty")


def test_load_label_names(tmp_path):
    k400 = load_label_names(None, 400)
    assert len(k400) == 400 and k400[0] == "abseiling"
    assert load_label_names(None, 10) is None and load_label_names() is None
    (tmp_path / "n.txt").write_text("cat\ndog\n\n")
    assert load_label_names(tmp_path / "n.txt") == ["cat", "dog"]
    (tmp_path / "a.json").write_text(json.dumps(["x", "y", "z"]))
    (tmp_path / "b.json").write_text(json.dumps({"y": 1, "x": 0}))
    (tmp_path / "c.json").write_text(json.dumps({"1": "y", "0": "x"}))
    assert load_label_names(tmp_path / "a.json", 3) == ["x", "y", "z"]
    assert load_label_names(tmp_path / "b.json") == ["x", "y"]
    assert load_label_names(tmp_path / "c.json") == ["x", "y"]
    with pytest.raises(ValueError, match="has 2 names, expected 5"):
        load_label_names(tmp_path / "n.txt", 5)
    with pytest.raises(FileNotFoundError):
        load_label_names(tmp_path / "missing.txt")
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match=r"img.png is not UTF-8 text"):
        load_label_names(tmp_path / "img.png")


# ---------------------------------------------------------------------------- datasets
@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """Four 40-frame index videos (48 x 64) and a list file with labels 0..3."""
    root = tmp_path_factory.mktemp("set")
    lines = []
    for k in range(4):
        frames = index_frames(40)
        frames[..., 1] = 60 * k  # tell the videos apart by their green channel
        write_video(root / f"v{k}.mp4", frames, 30.0, gop=10)
        lines.append(f"v{k}.mp4 {k}\n")
    (root / "train.csv").write_text("".join(lines))
    return root


KW = dict(num_frames=4, sampling_rate=2, crop_size=32, train_jitter=(32, 40), num_classes=4)


def test_train_items(small_set):
    ds = VideoDataset(small_set / "train.csv", mode="train", **KW)
    assert len(ds) == 4 and ds.num_views == 1
    item = ds[2]
    assert set(item) == {"video", "label", "index", "view", "path", "error", "failures", "skipped"}
    assert item["video"].shape == (3, 4, 32, 32) and item["video"].dtype == torch.float32
    assert (item["label"], item["index"], item["view"], item["error"], item["failures"]) == (
        2, 2, 0, "", 0,
    )  # fmt: skip
    assert item["path"].endswith("v2.mp4")
    # deterministic per (seed, epoch, item); a new epoch draws new clips
    same = VideoDataset(small_set / "train.csv", mode="train", **KW)[2]["video"]
    assert torch.equal(item["video"], same)
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["video"], item["video"])
    other_seed = VideoDataset(small_set / "train.csv", mode="train", seed=7, **KW)[2]["video"]
    assert not torch.equal(other_seed, item["video"])


def test_eval_views_and_collate(small_set):
    ds = VideoDataset(small_set / "train.csv", mode="test", test_views=(2, 3), **KW)
    assert len(ds) == 4 * 6 and ds.num_views == 6 and ds.num_videos == 4
    items = [ds[i] for i in range(6, 12)]  # all views of video 1
    assert [it["index"] for it in items] == [1] * 6 and [it["view"] for it in items] == list(
        range(6)
    )
    assert all(it["label"] == 1 and it["error"] == "" for it in items)
    assert not torch.equal(items[0]["video"], items[1]["video"])  # different crops
    assert not torch.equal(items[0]["video"], items[3]["video"])  # different clips
    assert torch.equal(items[0]["video"], ds[6]["video"])  # deterministic
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=6)))
    assert batch["video"].shape == (6, 3, 4, 32, 32)
    assert batch["index"].tolist() == [0] * 6 and batch["error"] == [""] * 6


def test_eval_frames_follow_the_sampler(small_set):
    # the left crop (columns 0..47 of 64) keeps the index bits 0-2 and 4-6 whole
    ds = VideoDataset(
        small_set / "train.csv", mode="val", num_frames=4, sampling_rate=2, crop_size=48,
        test_views=(1, 3), mean=(0, 0, 0), std=(1 / 255, 1 / 255, 1 / 255),
    )  # fmt: skip
    video = ds[0]["video"]  # view 0 = clip 0, crop 0 (left): (3, T, 48, 48) in pixel units
    frames = torch.zeros(4, 48, 64, 3)
    frames[:, :, :48] = video.permute(1, 2, 3, 0)
    got = [i & 0b1110111 for i in decode_index(frames.numpy())]
    # centred clip: 4 frames at rate 2 span 8 of 40 frames, start 16: linspace(16, 23, 4)
    assert got == [16, 18, 20, 23]
    official = VideoDataset(
        small_set / "train.csv", mode="val", num_frames=4, sampling_rate=2, crop_size=48,
        test_views=(1, 3), mean=(0, 0, 0), std=(1 / 255, 1 / 255, 1 / 255), official_test=True,
    )[0]["video"]  # fmt: skip
    frames[:, :, :48] = official.permute(1, 2, 3, 0)
    assert [i & 0b1110111 for i in decode_index(frames.numpy())] == [0, 2, 4, 7]


def test_label_range_checked_before_decoding(small_set):
    with pytest.raises(
        ValueError, match=r"label 3 of .*v3.mp4 is outside the class range \[0, 3\)"
    ):
        VideoDataset(small_set / "train.csv", num_classes=3)
    with pytest.raises(ValueError, match="mode"):
        VideoDataset(small_set / "train.csv", mode="eval")


def test_folder_source_gives_label_names(small_set, tmp_path):
    for name in ("jump", "sit"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.mp4").write_bytes((small_set / "v0.mp4").read_bytes())
    ds = VideoDataset(tmp_path, **{**KW, "num_classes": None})
    assert ds.label_names == ["jump", "sit"] and ds.num_classes == 2
    assert ds[1]["label"] == 1


@pytest.fixture(scope="module")
def bad_set(small_set, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    data = (small_set / "v0.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    lines = [
        f"{small_set / 'v0.mp4'} 0",
        "truncated.mp4 1",
        "missing.mp4 2",
        f"{small_set / 'v3.mp4'} 3",
    ]
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    return root


def test_train_substitutes_and_counts_bad_files(bad_set, caplog):
    ds = VideoDataset(bad_set / "list.csv", mode="train", **KW)
    with caplog.at_level(logging.WARNING, logger="timesformer.data.datasets"):
        items = [ds[i] for i in range(4)]
    assert all(it["video"].shape == (3, 4, 32, 32) for it in items)
    for i in (1, 2):  # the bad ones were replaced by readable videos
        assert items[i]["failures"] >= 1 and items[i]["index"] in (0, 3)
        assert items[i]["label"] == items[i]["index"]  # the label follows the substitute
    assert items[0]["failures"] == items[3]["failures"] == 0
    reasons = dict(ds.failures)
    assert any(p.endswith("truncated.mp4") for p in reasons)
    assert any(p.endswith("missing.mp4") and r == "file not found" for p, r in reasons.items())
    assert "missing.mp4" in caplog.text and "truncated.mp4" in caplog.text
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["failures"].sum() >= 2  # counted across the collate


def test_bad_files_are_logged_once_per_run_across_epochs_of_workers(small_set, tmp_path):
    """Each epoch's DataLoader workers are new processes: the training loop hands the logged
    paths back (mark_reported), so a bad file is logged in the first epoch only."""
    from timesformer.engine.loaders import mark_reported

    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    (tmp_path / "list.csv").write_text(f"{small_set / 'v0.mp4'} 0\nbroken.mp4 1\nmissing.mp4 1\n")
    ds = VideoDataset(tmp_path / "list.csv", mode="train", **KW)
    log_file = tmp_path / "log.txt"
    handler = logging.FileHandler(log_file)  # forked workers write here too
    logger = logging.getLogger("timesformer.data.datasets")
    logger.addHandler(handler)
    try:
        loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1)
        skipped = 0
        for epoch in range(3):
            ds.set_epoch(epoch)
            for batch in loader:
                skipped += int(batch["failures"].sum())
                mark_reported(loader, batch)
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = log_file.read_text().splitlines()
    assert skipped >= 6  # both bad files substituted in every epoch
    assert sum("broken.mp4" in ln for ln in lines) == 1
    assert sum("missing.mp4" in ln for ln in lines) == 1
    assert {p.rsplit("/", 1)[-1] for p in ds.reported} == {"broken.mp4", "missing.mp4"}


def test_eval_reports_bad_files_by_path(bad_set):
    ds = VideoDataset(bad_set / "list.csv", mode="test", test_views=(1, 3), **KW)
    assert len(ds) == 12  # nothing dropped
    errors = {ds[i]["path"]: ds[i]["error"] for i in range(12)}
    assert errors[str(bad_set / "missing.mp4")] == "file not found"
    assert "truncated" in errors[str(bad_set / "truncated.mp4")]
    bad = ds[3]
    assert bad["index"] == 1 and torch.count_nonzero(bad["video"]) == 0
    assert sum(1 for e in errors.values() if e == "") == 2


def test_train_gives_up_after_max_retries(tmp_path):
    (tmp_path / "list.csv").write_text("a.mp4 0\nb.mp4 1\n")
    ds = VideoDataset(tmp_path / "list.csv", max_retries=3, **KW)
    with pytest.raises(RuntimeError, match="4 videos in a row could not be read"):
        ds[0]


def test_segments_sampler_in_training(small_set):
    ds = VideoDataset(small_set / "train.csv", sampler="segments", flip=False, **KW)
    v = ds[0]["video"]
    assert v.shape == (3, 4, 32, 32) and np.isfinite(v.numpy()).all()


def test_a_trees_warnings_are_given_once_per_process(tmp_path):
    # a run scans its tree twice (the labels, then the data): the empty class was said twice
    import warnings

    for cls, names in {"walk": ["1.mp4"], "empty": []}.items():
        (tmp_path / cls).mkdir()
        for n in names:
            (tmp_path / cls / n).write_bytes(b"x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # Python's own once-per-place filter out of the way
        scan_folder(tmp_path)
        scan_folder(tmp_path)
    assert sum("without videos" in str(w.message) for w in caught) == 1
