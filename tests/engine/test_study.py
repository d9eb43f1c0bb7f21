"""`timesformer study`: structure, resume and errors at the test size (accuracy is what the study
itself measures; docs/study.md reports it), the motion dataset's no-shortcut property, and
verdicts computed from the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from timesformer.cli import main
from timesformer.data.study_tasks import ArrayClips, render_motion_video, render_videos
from timesformer.engine.study import SCALES, parse_studies, plan, run_study
from timesformer.engine.study_report import findings
from timesformer.models import create_model

ROW_KEYS = {
    "study", "attention_type", "pos_embed", "num_frames", "img_size", "dataset", "top1_mean",
    "top1_std", "seeds", "params", "macs",
}  # fmt: skip


def test_motion_classes_differ_only_in_frame_order() -> None:
    # "recede" from a seed is exactly "approach" from the same seed played backwards
    for seed in range(3):
        a = render_motion_video("approach", [seed, 0, 1], 32, 10)
        r = render_motion_video("recede", [seed, 0, 1], 32, 10)
        assert np.array_equal(a[::-1], r)
        assert not np.array_equal(a, r)
    videos, labels = render_videos("motion", 10, size=16, length=5, seed=0)
    assert videos.shape == (10, 5, 16, 16, 3) and videos.dtype == np.uint8
    assert np.bincount(labels).tolist() == [5, 5]


def test_space_only_model_ignores_frame_order() -> None:
    # so on the motion dataset it cannot beat chance, whatever it learns
    torch.manual_seed(0)
    kw = dict(num_classes=2, num_frames=4, img_size=16, patch_size=8, embed_dim=16, depth=1)
    kw.update(num_heads=1, drop_path_rate=0.0)
    so = create_model("timesformer_tiny", attention_type="space_only", **kw).eval()
    div = create_model("timesformer_tiny", attention_type="divided_space_time", **kw).eval()
    with torch.no_grad():
        div.time_embed.normal_()
        x = torch.randn(2, 3, 4, 16, 16)
        rev = x.flip(2)
        assert torch.allclose(so(x), so(rev), atol=1e-5)
        assert not torch.allclose(div(x), div(rev), atol=1e-4)


def test_clips_are_normalised_windows() -> None:
    videos, labels = render_videos("appearance", 4, size=16, length=6, seed=1)
    val = ArrayClips(videos, labels, 4, train=False)
    item = val[0]
    assert item["video"].shape == (3, 4, 16, 16) and item["label"] == int(labels[0])
    centre = torch.from_numpy(videos[0, 1:5]).permute(3, 0, 1, 2).float() / 255
    assert torch.allclose(item["video"], (centre - 0.45) / 0.225)
    train = ArrayClips(videos, labels, 4, train=True, seed=3)
    assert torch.equal(train[2]["video"], train[2]["video"])  # reproducible per epoch


def test_plan_shares_cells_between_studies() -> None:
    entries = plan(parse_studies(["all"]), SCALES["full"])
    assert sum(e.study == "table1" for e in entries) == 10
    assert sum(e.study == "table4" for e in entries) == 6
    assert sum(e.study == "fig5" for e in entries) == 8
    assert len({e.cell for e in entries}) == 10 + 4 + 6  # shared cells run once


def test_study_outputs_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study"
    args = ["study", "fig5", "--scale", "tiny", "--seeds", "1", "--workers", "1", "--out", str(out)]
    assert main(args) == 0
    log = capsys.readouterr().out
    assert "3 to run" in log and "[3/3]" in log
    res = json.loads((out / "results.json").read_text())
    rows = res["rows"]
    assert len(rows) == 4 and {r["axis"] for r in rows} == {"frames", "resolution"}
    for r in rows:
        assert ROW_KEYS <= set(r) and r["study"] == "fig5" and r["dataset"] == "motion"
        assert r["seeds"] == 1 and 0.0 <= r["top1_mean"] <= 1.0 and r["top1_std"] == 0.0
        assert r["params"] > 0 and r["macs"] > 0
    assert res["machine"]["cores"] >= 1 and res["machine"]["torch"] == torch.__version__
    report = (out / "report.md").read_text()
    for part in ("## Figure 5", "## Where the miniature agrees", "- command: `timesformer study",
                 "- machine:", "wall time", "![fig5](fig5.png)"):  # fmt: skip
        assert part in report
    assert (out / "fig5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cells = sorted((out / "cells" / "tiny").glob("*/seed0.json"))
    assert len(cells) == 3
    # a rerun skips every stored run
    assert main(args) == 0
    assert "3 runs stored, 0 to run" in capsys.readouterr().out
    # a lost run (and a half-written one) is redone, and only that one
    cells[0].unlink()
    cells[1].write_text('{"top1": ')
    before = cells[2].stat().st_mtime_ns
    assert main(args) == 0
    log = capsys.readouterr().out
    assert "1 runs stored, 2 to run" in log and "[2/2]" in log
    assert cells[0].is_file() and cells[2].stat().st_mtime_ns == before
    assert json.loads(cells[1].read_text())["seed"] == 0


def test_study_in_worker_processes(tmp_path: Path) -> None:
    result = run_study(["table4"], tmp_path, scale="tiny", seeds=1, workers=2, log=lambda s: None)
    assert result.ran == 6 and result.skipped == 0
    assert [r["pos_embed"] for r in result.rows] == ["none", "space", "space_time"] * 2
    assert "## Table 4" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "table4.png").is_file()


@pytest.mark.parametrize(
    ("argv", "message", "code"),
    [
        (["tabel1"], "unknown study 'tabel1'; expected table1, table4, fig5 or all. Did you mean 'table1'? (see timesformer study --help)", 2),
        (["table1", "--seeds", "0"], "argument --seeds: expected a positive integer, got '0' (see timesformer study --help)", 2),
    ],
)  # fmt: skip
def test_bad_arguments_one_line(
    argv: list[str], message: str, code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        rc = main(["study", *argv, "--out", str(tmp_path / "o")])
    except SystemExit as e:  # argparse's own: the flag's type refused it
        rc = e.code
    assert rc == code
    err = capsys.readouterr().err
    assert err.strip() == f"timesformer study: error: {message}"
    assert not (tmp_path / "o").exists()


def test_unwritable_output_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["study", "table1", "--scale", "tiny", "--out", str(blocker)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is a file, not a folder" in err and str(blocker) in err


def _row(study: str, dataset: str, top1: float, std: float = 0.01, **kw: object) -> dict:
    row = {"study": study, "dataset": dataset, "top1_mean": top1, "top1_std": std, "seeds": 3}
    row.update(chance=0.5 if dataset == "motion" else 1 / 9, attention_type="divided_space_time")
    row.update(pos_embed="space_time", axis=None)
    row.update(kw)
    return row


def test_verdicts_follow_the_numbers() -> None:
    def table1(space_motion: float) -> list[dict]:
        rows = []
        for att, a, m in (("divided_space_time", 0.99, 0.97), ("space_only", 0.98, space_motion),
                          ("joint_space_time", 0.99, 0.96)):  # fmt: skip
            rows += [_row("table1", "appearance", a, attention_type=att)]
            rows += [_row("table1", "motion", m, attention_type=att)]
        return rows

    good = {a: v for a, _, v in findings(table1(0.51))}
    assert good["Space-only attention cannot relate frames: far behind on SSv2 (36.6 against "
                "59.5); where the order of frames is the only cue, that means chance"] == "agrees"  # fmt: skip
    assert all(v == "agrees" for v in good.values())
    bad = findings(table1(0.9))  # space-only solving motion would contradict the paper
    assert sum(v != "agrees" for _, _, v in bad) == 3
    t4 = [_row("table4", ds, v, pos_embed=pe) for ds, pe, v in (
        ("motion", "none", 0.5), ("motion", "space", 0.5), ("motion", "space_time", 0.97),
        ("appearance", "none", 0.98), ("appearance", "space", 0.99),
        ("appearance", "space_time", 0.99))]  # fmt: skip
    assert [v for _, _, v in findings(t4)] == ["agrees", "agrees"]
