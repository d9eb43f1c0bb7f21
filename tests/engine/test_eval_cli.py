"""`timesformer eval` end to end on rendered videos: outputs, failures, overrides, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from timesformer.cli import main
from timesformer.data import write_video
from timesformer.engine.predict import InferenceSettings, predict
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint

NAMES = ["red", "green", "blue"]
COLOURS = [(220, 30, 30), (30, 220, 30), (30, 30, 220)]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """Six 16-frame videos (two per class), one broken file, a checkpoint and a config."""
    root = tmp_path_factory.mktemp("evalrun")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        label = i % 3
        frames = rng.integers(0, 80, (16, 32, 48, 3), dtype=np.uint8)
        frames[:, 8:24, 10 + i : 26 + i] = COLOURS[label]
        write_video(root / f"v{i}.mp4", frames, fps=30)
        lines.append(f"v{i}.mp4 {label}")
    (root / "broken.mp4").write_bytes(b"not a video at all" * 50)
    lines.insert(3, "broken.mp4 1")
    (root / "test.csv").write_text("\n".join(lines) + "\n")
    torch.manual_seed(0)
    cfg = TimeSformerConfig(
        img_size=32, patch_size=16, num_frames=4, embed_dim=64, depth=1, num_heads=1,
        num_classes=3, drop_path_rate=0.0, labels=NAMES,
    )  # fmt: skip
    model = TimeSformer(cfg).eval()
    with torch.no_grad():
        model.head.weight.mul_(50)  # spread the scores so that videos differ
    save_checkpoint(model, root / "best.pt")
    config = {
        "model": {"name": "timesformer_tiny"},
        "data": {
            "test_list": str(root / "test.csv"),
            "root": str(root),
            "sampling_rate": 2,
            "num_workers": 0,
            "test_views": "2x3",
        },  # fmt: skip
        "train": {"batch_size": 4, "progress": False},
        "output_dir": str(root / "out"),
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return {"root": root, "model": model, "config": root / "config.yaml", "ckpt": root / "best.pt"}


def test_eval_writes_outputs_and_lists_the_broken_video(run, capsys) -> None:
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]),
               "--json", "--protocol", "centred"])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0, err
    s = json.loads(out)
    assert s["protocol"] == "centred"
    assert s["num_videos"] == 7 and s["num_failed"] == 1 and s["num_evaluated"] == 6
    assert s["views"] == "2x3" and s["aggregate"] == "mean_softmax" and s["split"] == "test"
    assert s["failed"][0]["path"].endswith("broken.mp4") and s["failed"][0]["error"]
    # reported on one line, once, not once per view or worker, as predict and extract say it
    lines = [line for line in err.splitlines() if "broken.mp4" in line]
    broken = run["root"] / "broken.mp4"
    assert lines == [f"timesformer eval: error: cannot read video {broken}: "
                     f"{s['failed'][0]['error']}"], err  # fmt: skip
    eval_dir = run["root"] / "out" / "eval"
    for name in ("summary.json", "predictions.csv", "confusion.csv", "confusion.png", "failed.txt"):
        assert (eval_dir / name).is_file(), name
    rows = list(csv.DictReader(open(eval_dir / "predictions.csv")))
    assert len(rows) == 7
    assert rows[3]["path"].endswith("broken.mp4") and rows[3]["pred"] == ""
    good = [r for r in rows if r["pred"] != ""]
    assert all(r["views"] == "6" for r in good)
    # the same answers as `predict` on each video with the same clip settings
    st = InferenceSettings.for_geometry(4, 32, sampling_rate=2, test_protocol="centred")
    for r in good:
        p = predict(run["model"], r["path"], settings=st, views="2x3")
        assert r["pred_name"] == p.label
        assert float(r["score"]) == pytest.approx(p.prob, abs=1e-4)
    top1 = sum(int(r["correct"]) for r in good) / 6
    assert s["top1"] == pytest.approx(top1)
    assert s["top5"] == 1.0  # 3 classes
    conf = list(csv.reader(open(eval_dir / "confusion.csv")))
    assert conf[0][1:] == NAMES
    assert sum(int(v) for row in conf[1:] for v in row[1:]) == 6
    summary = json.loads((eval_dir / "summary.json").read_text())
    assert set(summary["per_class_accuracy"]) == set(NAMES)
    assert summary["checkpoint"] == str(run["ckpt"])


def test_eval_overrides_aggregate_and_text_output(run, tmp_path, capsys) -> None:
    out_dir = tmp_path / "elsewhere"
    args = ["data.test_views=1x1", "--aggregate", "sum_logits", "--output", str(out_dir)]
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]), *args])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert "top-1" in out and "1x1 per video, aggregated by sum_logits" in out
    s = json.loads((out_dir / "summary.json").read_text())
    assert s["views"] == "1x1" and s["aggregate"] == "sum_logits"
    rows = list(csv.DictReader(open(out_dir / "predictions.csv")))
    assert {r["views"] for r in rows if r["pred"]} == {"1"}


def test_eval_that_scores_no_video_fails(run, tmp_path, capsys) -> None:
    only_bad = tmp_path / "bad.csv"
    only_bad.write_text("broken.mp4 1\n")
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]),
               f"data.test_list={only_bad}", "--output", str(tmp_path / "o")])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 1, err
    assert "error: no video of" in err and "1 of 1 failed to decode" in err, err
    assert "top-1           n/a" in out  # the report is still printed and written
    assert (tmp_path / "o" / "failed.txt").read_text().startswith(str(run["root"]))


def test_eval_text_says_when_top5_counts_every_video(run, tmp_path, capsys) -> None:
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]),
               "data.test_views=1x1", "--output", str(tmp_path / "o")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "(only 3 classes: every video is in the top 5)" in out, out


def test_eval_config_errors_are_one_line(run, capsys) -> None:
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]),
               "data.test_lst=x"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "data.test_lst" in err and "data.test_list" in err
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]),
               "--split", "val"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "data.val_list is not set" in err
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint",
               str(Path(run["root"]) / "nothing.pt")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "nothing.pt" in err and len(err.strip().splitlines()) == 1


def test_eval_of_a_model_without_a_head_is_one_line(run, tmp_path, capsys) -> None:
    model = TimeSformer(run["model"].config)
    model.load_state_dict(run["model"].state_dict())
    model.reset_classifier(0)
    ckpt = save_checkpoint(model, tmp_path / "headless.pt")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(NAMES) + "\n")
    out = tmp_path / "new" / "eval"
    for extra in ([], [f"data.labels={labels}"]):  # not "3 names, expected 0 classes"
        rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(ckpt),
                   f"output_dir={tmp_path / 'new'}", *extra])  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1 and len(err) == 1, err
        assert f"{ckpt}: the model has no classification head (num_classes=0)" in err[0]
        assert "timesformer extract" in err[0]
        assert not out.exists() and not out.parent.exists()  # no empty folder left behind


def test_late_failure_keeps_the_predictions_written_so_far(run, tmp_path, monkeypatch) -> None:
    import timesformer.engine.evaluate as E

    def boom(*a, **kw):
        raise RuntimeError("disk full while drawing")

    monkeypatch.setattr(E, "plot_confusion", boom)
    out = tmp_path / "late"
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]),
               "--output", str(out), "--no-progress"])  # fmt: skip
    assert rc == 1
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert rows and all(r["path"] for r in rows)  # written video by video, before the failure
    assert "warnings" in rows[0]


def test_eval_output_that_is_a_file_fails_before_work(run, tmp_path, capsys) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("x")
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]),
               "--output", str(blocker / "eval")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "is a file, not a folder" in err[0]


def test_eval_never_writes_over_its_list(run, tmp_path, capsys) -> None:
    """A test list named predictions.csv in the output folder would be truncated as the first
    video finishes: exit 2 before the checkpoint loads, the list untouched."""
    listing = tmp_path / "predictions.csv"
    text = (run["root"] / "test.csv").read_text()
    listing.write_text(text)
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]),
               f"data.test_list={listing}", "--output", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "is the same file as the input" in err[0], err
    assert listing.read_text() == text


def test_eval_official_protocol_sums_logits_and_matches_predict(run, tmp_path, capsys) -> None:
    """data.test_protocol official (the default): summed logits, the same top-1 as predict."""
    out_dir = tmp_path / "official"
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]),
               "--output", str(out_dir), "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0, err
    s = json.loads(out)
    assert s["protocol"] == "official" and s["aggregate"] == "sum_logits"
    st = InferenceSettings.for_geometry(4, 32, sampling_rate=2, test_protocol="official")
    rows = [r for r in csv.DictReader(open(out_dir / "predictions.csv")) if r["pred"]]
    for r in rows:
        p = predict(run["model"], r["path"], settings=st, views="2x3")
        assert r["pred_name"] == p.label


def test_eval_refuses_a_recipe_geometry_that_differs_from_the_checkpoint(run, tmp_path, capsys):
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]),
               "data.num_frames=8"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1
    assert "data.num_frames=8" in err[0] and "checkpoint's 4" in err[0]
    assert "--force-geometry" in err[0]
    rc = main(["eval", "--config", str(run["config"]), "--checkpoint", str(run["ckpt"]),
               "data.num_frames=8", "--force-geometry", "--output", str(tmp_path / "f")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0 and "WARNING: --force-geometry" in err and "resampled" in err
