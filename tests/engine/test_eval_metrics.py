"""Evaluation arithmetic on known scores: view aggregation (both rules), metrics, output files."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from timesformer.engine.evaluate import (
    EvalResult,
    aggregate_views,
    compute_metrics,
    confusion_matrix,
    write_eval_outputs,
)


def test_mean_softmax_averages_probabilities_per_video() -> None:
    # video 0 has two views, video 1 has one; rows out of order
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, 0.0], [math.log(4.0), 0.0]])
    vid = [0, 1, 0]
    view = [0, 0, 1]
    scores, counts = aggregate_views(vid, view, logits, num_videos=2)
    # view probabilities: v0: [1/4, 3/4], v2: [4/5, 1/5] -> mean [0.525, 0.475]
    assert torch.allclose(scores[0], torch.tensor([0.525, 0.475], dtype=torch.float64))
    p = torch.tensor([2.0, 0.0]).softmax(0).double()
    assert torch.allclose(scores[1], p)
    assert counts.tolist() == [2, 1]


def test_sum_logits_is_the_official_rule() -> None:
    logits = torch.tensor([[1.0, 5.0], [4.0, 0.0], [3.0, -1.0]])
    scores, counts = aggregate_views([0, 0, 0], [0, 1, 2], logits, 1, rule="sum_logits")
    assert scores[0].tolist() == [8.0, 4.0]
    assert counts.tolist() == [3]
    # the two rules can disagree: one confident view dominates the summed logits
    logits = torch.tensor([[10.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    mean, _ = aggregate_views([0, 0, 0], [0, 1, 2], logits, 1, rule="mean_softmax")
    summed, _ = aggregate_views([0, 0, 0], [0, 1, 2], logits, 1, rule="sum_logits")
    assert summed[0].argmax() == 0
    assert mean[0].argmax() == 0  # 1.0 + 2*0.27 vs 0 + 2*0.73
    logits = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    mean, _ = aggregate_views([0, 0, 0], [0, 1, 2], logits, 1, rule="mean_softmax")
    summed, _ = aggregate_views([0, 0, 0], [0, 1, 2], logits, 1, rule="sum_logits")
    assert summed[0].argmax() == 0  # 3 vs 2
    assert mean[0].argmax() == 1  # (0.95 + 0.54) vs (0.05 + 1.46)


def test_repeated_views_count_once_and_missing_videos_are_empty() -> None:
    # a distributed sampler pads by repeating the first samples
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    scores, counts = aggregate_views([0, 0, 0], [0, 1, 0], logits, 3, rule="sum_logits")
    assert scores[0].tolist() == [1.0, 1.0]
    assert counts.tolist() == [2, 0, 0]
    assert scores[1:].abs().sum() == 0


def test_aggregate_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="aggregate"):
        aggregate_views([0], [0], torch.zeros(1, 2), 1, rule="max")
    with pytest.raises(ValueError, match="out of range"):
        aggregate_views([2], [0], torch.zeros(1, 2), 2)
    with pytest.raises(ValueError, match="expected"):
        aggregate_views([0, 1], [0], torch.zeros(2, 2), 2)


def test_top1_top5_and_mean_class_accuracy() -> None:
    C = 6
    scores = torch.zeros(4, C)
    # video 0 (class 0): correct at rank 1
    scores[0] = torch.tensor([6.0, 5, 4, 3, 2, 1])
    # video 1 (class 0): true class ranked 5th
    scores[1] = torch.tensor([2.0, 6, 5, 4, 3, 1])
    # video 2 (class 1): true class ranked last (6th)
    scores[2] = torch.tensor([6.0, 1, 5, 4, 3, 2])
    # video 3 (class 2): correct
    scores[3] = torch.tensor([0.0, 1, 6, 4, 3, 2])
    m = compute_metrics(scores, torch.tensor([0, 0, 1, 2]), topk=(1, 5))
    assert m["top1"] == pytest.approx(2 / 4)
    assert m["top5"] == pytest.approx(3 / 4)
    # class 0: 1/2, class 1: 0/1, class 2: 1/1 -> mean over the 3 present classes
    assert m["mean_class_accuracy"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert math.isnan(float(m["per_class_accuracy"][5]))
    conf = m["confusion"]
    assert conf.sum() == 4
    assert conf[0, 0] == 1 and conf[0, 1] == 1 and conf[1, 0] == 1 and conf[2, 2] == 1


def test_topk_capped_at_number_of_classes() -> None:
    m = compute_metrics(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 0]))
    assert m["top1"] == 0.5
    assert m["top5"] == 1.0


def test_confusion_matrix_rows_are_true_classes() -> None:
    conf = confusion_matrix(torch.tensor([1, 1, 2]), torch.tensor([0, 1, 2]), 3)
    assert conf.tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_output_files(tmp_path) -> None:
    names = ["left", "right", "up"]
    scores = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.0, 0.0, 0.0]], dtype=torch.float64)
    targets = torch.tensor([0, 2, 1])
    counts = torch.tensor([3, 3, 0])
    m = compute_metrics(scores[:2], targets[:2])
    result = EvalResult(
        metrics=m,
        video_scores=scores,
        targets=targets,
        views_per_video=counts,
        paths=["a.mp4", "b.mp4", "broken.mp4"],
        labels=names,
        aggregate="mean_softmax",
        views="1x3",
        failed=[{"path": "broken.mp4", "error": "invalid data"}],
    )
    files = write_eval_outputs(result, tmp_path / "eval")
    rows = list(csv.DictReader(open(files["predictions"])))
    assert [r["path"] for r in rows] == ["a.mp4", "b.mp4", "broken.mp4"]
    assert rows[0]["pred_name"] == "left" and rows[0]["correct"] == "1"
    assert rows[1]["pred_name"] == "right" and rows[1]["correct"] == "0"
    assert rows[2]["pred"] == "" and rows[2]["views"] == "0"
    conf = list(csv.reader(open(files["confusion_csv"])))
    assert conf[0][1:] == names
    assert conf[3] == ["up", "0", "1", "0"]  # b.mp4: true "up", predicted "right"
    png = open(files["confusion_png"], "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.load(open(files["summary"]))
    assert summary["num_videos"] == 3 and summary["num_failed"] == 1
    assert summary["num_evaluated"] == 2
    assert summary["top1"] == 0.5
    assert summary["failed"][0]["path"] == "broken.mp4"
    assert summary["per_class_accuracy"] == {"left": 1.0, "right": None, "up": 0.0}
    assert "broken.mp4" in open(files["failed"]).read()
