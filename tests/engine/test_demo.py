"""`timesformer demo --quick`: the whole pipeline on a tiny dataset (accuracy is not checked
here; docs/training.md reports the full demo's measured numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from timesformer.cli import main
from timesformer.engine.config import load_config


def test_quick_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == ["approach", "recede"] and summary["chance"] == 0.5
    variants = summary["variants"]
    assert list(variants) == ["divided", "space_only"]
    for name, attention in (("divided", "divided_space_time"), ("space_only", "space_only")):
        r = variants[name]
        assert r["attention_type"] == attention
        assert 0.0 <= r["test_top1"] <= 1.0 and r["test_views"] == "3x1"
        assert Path(r["checkpoint"]).is_file()
        run = out / name
        assert load_config(run / "config.yaml").model.attention_type == attention
        eval_summary = json.loads((run / "eval" / "summary.json").read_text())
        assert eval_summary["num_videos"] == 16 and eval_summary["views"] == "3x1"
        assert (run / "metrics.jsonl").is_file() and (run / "curves.png").is_file()
    # space-only has no temporal attention and no time embedding: fewer parameters
    assert variants["space_only"]["params"] < variants["divided"]["params"]
    pred = summary["prediction"]
    assert pred["true"] in summary["classes"] and Path(pred["video"]).is_file()
    assert {name for name, _ in pred["top"]} == set(summary["classes"])
    assert abs(sum(p for _, p in pred["top"]) - 1.0) < 1e-4
    assert (out / "results.md").read_text().startswith("| model |")
    assert json.loads((out / "results.json").read_text())["variants"].keys() == variants.keys()
    # a second run reuses the rendered videos
    info = json.loads((out / "data" / "info.json").read_text())
    assert info["params"]["num_frames"] == 10


class _Stop(Exception):
    """Raised in place of training: the tests below need only what comes before it."""


def _stop(*args: object, **kwargs: object) -> None:
    raise _Stop


def test_demo_replaces_its_own_render_of_other_options(tmp_path: Path, monkeypatch) -> None:
    """out/data is the demo's: a render of other options (e.g. --quick's after a full run) is
    re-rendered, not refused."""
    import timesformer.engine.demo as D
    from timesformer.data import render_dataset

    out = tmp_path / "demo"
    render_dataset(out / "data", "motion", num_train=2, num_val=1, num_test=1, size=16)
    monkeypatch.setattr(D, "_train_all", _stop)
    with pytest.raises(_Stop):
        D.run_demo(out, quick=True, quiet=True, say=lambda s: None)
    params = json.loads((out / "data" / "info.json").read_text())["params"]
    assert params["counts"] == {"train": 48, "val": 16, "test": 16} and params["size"] == 32


def test_demo_never_writes_over_a_data_folder_of_the_users(tmp_path: Path, capsys) -> None:
    out = tmp_path / "project"
    (out / "data" / "train").mkdir(parents=True)
    (out / "data" / "train" / "00000.mp4").write_bytes(b"my video")
    (out / "data" / "train.csv").write_text("my list\n")
    assert main(["demo", "--quick", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no synthetic dataset" in err
    assert "choose another --out" in err
    assert (out / "data" / "train" / "00000.mp4").read_bytes() == b"my video"
    assert (out / "data" / "train.csv").read_text() == "my list\n"


def test_demo_reads_its_bundled_recipe_whatever_the_cwd_holds(tmp_path: Path, monkeypatch) -> None:
    import timesformer.engine.demo as D

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_text("model: [not, a, recipe]\n")  # a file named like the recipe
    (tmp_path / "demo.yaml").mkdir()
    seen = {}

    def stop(cfgs, *args: object) -> None:
        seen.update(cfgs)
        raise _Stop

    monkeypatch.setattr(D, "_train_all", stop)
    with pytest.raises(_Stop):
        D.run_demo(tmp_path / "out", quick=True, quiet=True, say=lambda s: None)
    assert seen["divided"].model.attention_type == "divided_space_time"


def test_a_bad_override_is_refused_before_anything_is_rendered(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import timesformer.data.synthetic as S

    monkeypatch.setattr(S, "render_dataset", _stop)  # the demo imports it when it runs
    out = tmp_path / "dm"
    for override, says in (("train.epochs=abc", "train.epochs='abc' is not valid"),
                           ("train.epochs=0", "train.epochs=0 is out of range"),
                           ("foo.bar=1", "unknown key 'foo.bar'")):  # fmt: skip
        assert main(["demo", "--quick", "--out", str(out), override]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err
        assert not out.exists()  # nothing rendered, no empty folder left behind
