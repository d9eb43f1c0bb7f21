"""Training runs that go wrong: divergence, a part-done epoch resumed, a killed run's metrics,
a finished run started again, a run that fails before it writes, clips of another shape."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from timesformer.data import render_dataset
from timesformer.engine.build import build_dataset
from timesformer.engine.config import load_config, resolve
from timesformer.engine.epoch import TrainingDiverged
from timesformer.engine.train import drop_rows_after, train

TINY = [
    *("model.name=timesformer_tiny", "model.num_frames=2", "model.img_size=32"),
    *("model.patch_size=16", "model.embed_dim=16", "model.depth=1", "model.num_heads=2"),
    *("data.sampling_rate=1", "data.train_jitter=[32, 36]", "data.crop_size=32"),
    *("data.num_workers=0", "optim.name=adamw", "optim.lr=0.003", "optim.schedule=cosine"),
    *("train.batch_size=2", "train.global_batch_size=2", "train.progress=false"),
    *("train.log_every=1", "train.eval_every=0", "train.epochs=2"),
]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("videos")
    return render_dataset(out, "appearance", num_train=8, num_val=2, num_test=2, size=32,
                          num_frames=2, num_classes=2, seed=0)  # fmt: skip


def _cfg(videos: dict, out: Path, *extra: str):
    return load_config(None, [*TINY, f"model.num_classes={videos['num_classes']}",
                              f"data.train_list={videos['splits']['train']}",
                              f"data.root={videos['out_dir']}", f"output_dir={out}", *extra])  # fmt: skip


def _rows(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl as strict JSON: a bare NaN / Infinity fails here."""

    def refuse(word: str) -> None:
        raise AssertionError(f"{path}: not strict JSON ({word})")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_divergence_stops_the_run_without_saving_nan_weights(videos: dict, tmp_path: Path):
    out = tmp_path / "div"
    with pytest.raises(TrainingDiverged, match=r"not finite .* at epoch 1, step \d+/4.*optim\.lr"):
        train(_cfg(videos, out, "optim.lr=1e30"), log=lambda s: None)
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()
    rows = _rows(out / "metrics.jsonl")  # valid JSON: the NaN loss is written as null
    assert rows and any(r["loss"] is None for r in rows)


class _SignalAt(torch.utils.data.Dataset):
    """A dataset that sends this process SIGTERM when item number `at` is fetched, as a
    scheduler would mid-epoch (the loader runs in this process: num_workers=0)."""

    def __init__(self, inner: Any, at: int) -> None:
        self.inner, self.at, self.fetched = inner, at, 0

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> Any:
        self.fetched += 1
        if self.fetched == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.inner[i]

    def __getattr__(self, name: str) -> Any:  # set_epoch, label_names, ...
        return getattr(self.inner, name)


def test_mid_epoch_resume_reports_the_whole_epoch(videos: dict, tmp_path: Path) -> None:
    quiet = {"log": lambda s: None}
    straight = train(_cfg(videos, tmp_path / "a"), **quiet)
    cfg = _cfg(videos, tmp_path / "b")
    ds = _SignalAt(build_dataset(resolve(cfg), "train"), at=3)  # during step 2 of epoch 1
    stopped = train(cfg, train_dataset=ds, **quiet)
    assert stopped.interrupted == "SIGTERM" and stopped.epochs_done == 0
    done = train(cfg, **quiet)
    assert done.step == straight.step
    for a, b in zip(straight.history, done.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6)
        assert b["train_top1"] == pytest.approx(a["train_top1"], rel=1e-6)
    steps = [r["step"] for r in _rows(tmp_path / "b" / "metrics.jsonl") if r["kind"] == "step"]
    assert steps == sorted(set(steps)) == list(range(1, straight.step + 1))


def test_resume_drops_metrics_logged_after_the_checkpoint(tmp_path: Path) -> None:
    m = tmp_path / "metrics.jsonl"
    rows = [{"kind": "step", "step": s} for s in (1, 2, 3, 4)] + [{"kind": "epoch", "step": 4}]
    m.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "step", "st')
    drop_rows_after(m, 2)  # a run killed at step 4 whose last checkpoint is step 2
    assert [r["step"] for r in _rows(m)] == [1, 2]
    before = m.read_text()
    drop_rows_after(m, 10)
    assert m.read_text() == before


def test_finished_run_started_again_trains_nothing_and_says_so(videos: dict, tmp_path: Path):
    cfg = _cfg(videos, tmp_path / "run", "train.epochs=1")
    first = train(cfg, log=lambda s: None)
    logs: list[str] = []
    again = train(cfg, log=logs.append)
    assert again.step == first.step and again.epochs_done == 1
    assert again.last_checkpoint == tmp_path / "run" / "last.pt"
    said = [line for line in logs if "has finished all 1 epochs" in line]
    assert said and "--fresh" in said[0] and "--allow-config-change" in said[0], logs
    assert not any("continuing at" in line for line in logs), logs
    # what the line says works: train.epochs raised alone is refused, with the flag it trains on
    more = _cfg(videos, tmp_path / "run", "train.epochs=2")
    with pytest.raises(ValueError, match=r"train\.epochs: 1 -> 2.*--allow-config-change"):
        train(more, log=lambda s: None)
    on = train(more, allow_config_change=True, log=lambda s: None)
    assert on.epochs_done == 2 and on.step > first.step


def test_a_run_that_fails_before_writing_leaves_no_folder(videos: dict, tmp_path: Path):
    out = tmp_path / "never"
    with pytest.raises((ValueError, FileNotFoundError, OSError)):
        train(_cfg(videos, out, f"model.pretrained={tmp_path / 'missing.pt'}"), log=lambda s: None)
    assert not out.exists()
    kept = tmp_path / "mine"
    kept.mkdir()
    with pytest.raises((ValueError, FileNotFoundError, OSError)):
        train(_cfg(videos, kept, f"model.pretrained={tmp_path / 'missing.pt'}"), log=lambda s: None)
    assert kept.is_dir()  # a folder the user made stays


def test_clips_of_another_length_than_the_model_are_warned_about(videos: dict, tmp_path: Path):
    logs: list[str] = []
    cfg = _cfg(videos, tmp_path / "run", "train.epochs=1", "data.num_frames=4",
               "train.max_steps_per_epoch=1")  # fmt: skip
    train(cfg, log=logs.append)
    assert any("data.num_frames=4 differs from model.num_frames=2" in s for s in logs), logs


def test_epoch_line_leaves_top5_out_for_few_classes() -> None:
    from timesformer.engine.progress import epoch_line

    row = {"epoch": 1, "train_loss": 0.5, "train_top1": 0.5, "lr": 1e-3, "bad_files": 0,
           "epoch_seconds": 1.0, "val_clip_loss": 0.4, "val_clip_top1": 0.6,
           "val_clip_top5": 1.0}  # fmt: skip
    assert "top-5 100.0%" in epoch_line({**row, "val_classes": 10}, 2)
    assert "top-5" not in epoch_line({**row, "val_classes": 3}, 2)


def test_a_folder_where_a_checkpoint_goes_is_refused_before_training(videos: dict, tmp_path):
    out = tmp_path / "run"
    (out / "last.pt").mkdir(parents=True)
    logs: list[str] = []
    with pytest.raises(OSError, match=r"last.pt is a folder"):
        train(_cfg(videos, out, "train.epochs=1"), log=logs.append)
    assert not any(line.startswith("epoch") for line in logs), logs  # no epoch was run
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]


def test_best_pt_breaks_a_top1_tie_on_the_validation_loss() -> None:
    from timesformer.engine.train import _best_loss, _better

    row = {"val_clip_top1": 1.0, "val_clip_loss": 0.06}
    assert _better(row, None, None)
    assert _better(row, 1.0, 0.48)  # the same 100%, a lower loss: the later epoch wins
    assert not _better(row, 1.0, 0.05) and not _better(row, 1.0, 0.06)
    assert not _better({"val_clip_top1": 0.9, "val_clip_loss": 0.01}, 1.0, 0.48)
    history = [{"val_clip_top1": 1.0, "val_clip_loss": 0.5}, {"train_loss": 1.0},
               {"val_clip_top1": 1.0, "val_clip_loss": 0.3}, {"val_clip_top1": 0.5, "val_clip_loss": 0.1}]  # fmt: skip
    assert _best_loss(history, 1.0) == 0.3 and _best_loss(history, None) is None


def test_a_validation_that_decodes_nothing_has_no_score(videos: dict, tmp_path: Path) -> None:
    """Every validation file broken: no 0% score, no best.pt; the epoch line says so."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.mp4").write_bytes(b"not a video" * 10)
    (bad / "b.mp4").write_bytes(b"\x00" * 300)
    val = tmp_path / "val.csv"
    val.write_text(f"path,label\n{bad / 'a.mp4'},0\n{bad / 'b.mp4'},1\n")
    lines: list[str] = []
    cfg = _cfg(videos, tmp_path / "run", f"data.val_list={val}", "train.eval_every=1",
               "train.epochs=1", "data.test_views=1x1")  # fmt: skip
    result = train(cfg, log=lines.append)
    assert result.best_metric is None and not (tmp_path / "run" / "best.pt").exists()
    row = [r for r in _rows(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "epoch"][0]
    assert row["val_clips"] == 0 and row["val_failed"] == 2 and "val_clip_top1" not in row
    assert any("decoded none of its 2 clips" in line for line in lines), lines
    assert any("val: none of 2 clips decoded" in line for line in lines), lines


def test_a_stop_after_an_epoch_still_draws_curves_and_resume_hides_init_notes(videos, tmp_path):
    """SIGTERM during epoch 2: curves.png holds epoch 1; the resumed run does not claim the
    weights were freshly initialised (they come from last.pt)."""
    cfg = _cfg(videos, tmp_path / "run", "model.time_embed_init_std=0.02")
    ds = _SignalAt(build_dataset(resolve(cfg), "train"), at=9)  # epoch 2 (8 clips per epoch)
    first: list[str] = []
    stopped = train(cfg, train_dataset=ds, log=first.append)
    assert stopped.interrupted == "SIGTERM" and stopped.epochs_done == 1
    assert (tmp_path / "run" / "curves.png").is_file()
    assert any("time_embed initialised" in line for line in first)
    again: list[str] = []
    train(cfg, log=again.append)
    assert any("resumed from" in line for line in again), again
    assert not any("time_embed initialised" in line for line in again), again


def test_the_progress_bar_only_draws_on_a_terminal(monkeypatch) -> None:
    import sys

    from timesformer.engine.progress import progress_bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert progress_bar(10, 0, "epoch 1/1", True) is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress_bar(10, 0, "epoch 1/1", True)
    assert bar is not None
    bar.close()
    assert progress_bar(10, 0, "epoch 1/1", False) is None
