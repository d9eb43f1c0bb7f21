"""Resume against a changed config: refused with every difference listed, or applied on request."""

from __future__ import annotations

from pathlib import Path

import pytest

from timesformer.data import render_dataset
from timesformer.engine.checkpoint import read_training_checkpoint
from timesformer.engine.config import load_config
from timesformer.engine.resume import ConfigChangedError, ResumeReadError, config_changes
from timesformer.engine.train import train

TINY = [
    "model.name=timesformer_tiny",
    "model.num_frames=2",
    "model.img_size=32",
    "model.patch_size=16",
    "model.embed_dim=16",
    "model.depth=1",
    "model.num_heads=2",
    "data.sampling_rate=1",
    "data.train_jitter=[32, 36]",
    "data.crop_size=32",
    "data.num_workers=0",
    "optim.name=adamw",
    "optim.lr=0.001",
    "optim.weight_decay=0.01",
    "optim.schedule=cosine",
    "train.batch_size=2",
    "train.global_batch_size=4",
    "train.progress=false",
    "train.eval_every=0",
    "train.epochs=2",
]
QUIET = {"log": lambda s: None}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("videos")
    return render_dataset(out, "appearance", num_train=12, num_val=2, num_test=2, size=32,
                          num_frames=2, num_classes=2, seed=0)  # fmt: skip


def _cfg(videos: dict, out: Path, *extra: str):
    return load_config(
        None,
        [
            *TINY,
            f"model.num_classes={videos['num_classes']}",
            f"data.train_list={videos['splits']['train']}",
            f"data.root={videos['out_dir']}",
            f"output_dir={out}",
            *extra,
        ],
    )


def test_config_changes_lists_dotted_keys() -> None:
    old = {"optim": {"lr": 0.1, "betas": [0.9, 0.99]}, "train": {"progress": True}}
    new = {"optim": {"lr": 0.2, "betas": (0.9, 0.99)}, "train": {"progress": False}}
    assert config_changes(old, new) == [("optim.lr", 0.1, 0.2)]  # progress is ignored


def test_changed_config_is_refused_with_every_key(videos: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_cfg(videos, out), max_epochs=1, **QUIET)
    changed = _cfg(videos, out, "optim.lr=0.01", "optim.weight_decay=0.05", "train.epochs=3")
    with pytest.raises(ConfigChangedError) as e:
        train(changed, **QUIET)
    msg = str(e.value)
    for key in ("optim.lr: 0.001 -> 0.01", "optim.weight_decay: 0.01 -> 0.05",
                "train.epochs: 2 -> 3", "train.resume=false", "--fresh",
                "--allow-config-change"):  # fmt: skip
        assert key in msg, msg
    # train.resume=false starts fresh (no refusal); the same config resumes silently
    fresh = train(_cfg(videos, out, "train.resume=false"), max_epochs=1, **QUIET)
    assert fresh.epochs_done == 1
    again = train(_cfg(videos, out), **QUIET)
    assert again.epochs_done == 2


def test_allow_config_change_applies_new_hyperparameters(videos: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_cfg(videos, out), max_epochs=1, **QUIET)
    logs: list[str] = []
    changed = _cfg(videos, out, "optim.lr=0.01", "optim.weight_decay=0.05", "train.epochs=3",
                   "optim.schedule=constant", "train.global_batch_size=2")  # fmt: skip
    r = train(changed, allow_config_change=True, max_epochs=1, log=logs.append)
    assert r.epochs_done == 2
    assert any("config changed, applied" in line and "optim.lr" in line for line in logs), logs
    ck = read_training_checkpoint(out / "last.pt")
    for g in ck["optimizer"]["param_groups"]:
        assert g["lr"] == pytest.approx(0.01) and g["weight_decay"] == pytest.approx(0.05)
    assert ck["optimizer"]["state"], "the optimizer moments were kept"
    # epoch 2 with the new global batch 2: 6 steps (12 clips), after 1 epoch = 6 new-size steps
    assert ck["step"] == 2 * 6 and ck["global_batch"] == 2


def test_mid_epoch_resume_with_another_batch_skips_samples(videos: dict, tmp_path: Path) -> None:
    from timesformer.models.weights import from_pretrained, save_checkpoint

    out = tmp_path / "run"
    train(_cfg(videos, out), max_epochs=1, **QUIET)
    ck = read_training_checkpoint(out / "last.pt")
    # pretend the run stopped after 2 steps of 4 clips in epoch 2
    state = {k: v for k, v in ck.items() if k not in ("format", "version", "config", "model")}
    state.update(batch_in_epoch=2, samples_in_epoch=8)
    save_checkpoint(from_pretrained(out / "last.pt"), out / "last.pt", **state)
    logs: list[str] = []
    r = train(_cfg(videos, out, "train.global_batch_size=2"), allow_config_change=True,
              log=logs.append)  # fmt: skip
    assert any("continuing at epoch 2, step 4 of it" in line for line in logs), logs
    assert r.step == 12  # 2 epochs of 6 steps of 2 clips: 4 skipped + 2 done in epoch 2


def test_corrupt_last_says_how_to_go_on(videos: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ResumeReadError) as e:
        train(_cfg(videos, out), **QUIET)
    assert "train.resume=false" in str(e.value) and "--fresh" in str(e.value)


def test_failing_best_write_keeps_last(videos: dict, tmp_path: Path, monkeypatch) -> None:
    import timesformer.engine.train as T

    real = T.save_training_checkpoint

    def flaky(path, *a, **kw):
        if Path(path).name == "best.pt":
            raise OSError(28, "No space left on device")
        return real(path, *a, **kw)

    monkeypatch.setattr(T, "save_training_checkpoint", flaky)
    logs: list[str] = []
    cfg = _cfg(videos, tmp_path / "run", "train.eval_every=1", "train.epochs=1",
               f"data.val_list={videos['splits']['val']}")  # fmt: skip
    r = train(cfg, log=logs.append)
    assert r.epochs_done == 1 and r.best_checkpoint is None
    assert read_training_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert any("could not write" in line and "best.pt" in line for line in logs), logs
