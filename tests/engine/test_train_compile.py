"""`train.compile`: the same training run through torch.compile (inductor) as eagerly, to float
rounding; validation stays eager; a machine where inductor cannot run gets one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from timesformer.data import render_dataset
from timesformer.engine.checkpoint import read_training_checkpoint
from timesformer.engine.config import ConfigError, load_config
from timesformer.engine.train import train

TINY = [
    *("model.name=timesformer_tiny", "model.num_frames=2", "model.img_size=32"),
    *("model.patch_size=16", "model.embed_dim=16", "model.depth=1", "model.num_heads=2"),
    *("model.drop_path_rate=0", "data.sampling_rate=1", "data.train_jitter=[32, 36]"),
    *("data.crop_size=32", "data.num_workers=0", "data.test_views=1x1", "optim.name=adamw"),
    *("optim.lr=0.003", "optim.schedule=cosine", "train.batch_size=2"),
    *("train.global_batch_size=2", "train.progress=false", "train.log_every=1", "train.epochs=2"),
]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
    torch._dynamo.reset()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("videos")
    return render_dataset(out, "appearance", num_train=6, num_val=2, num_test=2, size=32,
                          num_frames=2, num_classes=2, seed=0)  # fmt: skip


def _cfg(videos: dict, out: Path, *extra: str):
    return load_config(None, [*TINY, f"model.num_classes={videos['num_classes']}",
                              f"data.train_list={videos['splits']['train']}",
                              f"data.val_list={videos['splits']['val']}",
                              f"data.root={videos['out_dir']}", f"output_dir={out}", *extra])  # fmt: skip


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["kind"] == "step"]


def test_a_compiled_run_matches_the_eager_one(videos: dict, tmp_path: Path) -> None:
    lines: list[str] = []
    eager = train(_cfg(videos, tmp_path / "eager"), log=lambda s: None)
    compiled = train(_cfg(videos, tmp_path / "comp", "train.compile=true"), log=lines.append)
    assert any("torch.compile at the first step" in line for line in lines)
    assert compiled.step == eager.step == 2 * 3
    assert _losses(tmp_path / "comp") == pytest.approx(_losses(tmp_path / "eager"), abs=1e-4)
    a = read_training_checkpoint(tmp_path / "eager" / "last.pt")["model"]
    b = read_training_checkpoint(tmp_path / "comp" / "last.pt")["model"]
    assert a.keys() == b.keys()  # the bare model's names: no "_orig_mod." prefix
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-3
    # validation ran (eagerly) after each epoch, with the same clips
    assert [r["val_clips"] for r in compiled.history] == [r["val_clips"] for r in eager.history]


def test_no_compiler_is_one_line(videos: dict, tmp_path: Path, monkeypatch) -> None:
    import timesformer.engine.runtime as runtime

    monkeypatch.setattr(runtime.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"train.compile=true needs a C\+\+ compiler"):
        train(_cfg(videos, tmp_path / "nocc", "train.compile=true"), log=lambda s: None)
    assert not (tmp_path / "nocc" / "last.pt").exists()


def test_compile_mode_is_checked() -> None:
    with pytest.raises(ConfigError, match="compile_mode"):
        load_config(None, ["train.compile_mode=fastest"])


def test_compiled_ddp_with_accumulation_matches_one_eager_process(videos: dict, tmp_path: Path):
    """2 compiled processes x batch 1, 2 accumulated micro-batches (no_sync through the compiled
    DDP module) = 1 eager process x batch 4: the same weights to float rounding."""
    import socket
    import subprocess
    import sys

    import yaml

    common = ("train.epochs=2", "train.eval_every=0", "train.global_batch_size=4")
    one = train(_cfg(videos, tmp_path / "one", *common, "train.batch_size=4"), log=lambda s: None)
    cfg = _cfg(videos, tmp_path / "two", *common, "train.batch_size=1", "train.compile=true")
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "timesformer.cli",
           "train", "--config", str(path)]  # fmt: skip
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch.compile at the first step" in proc.stderr
    a = read_training_checkpoint(one.last_checkpoint)["model"]
    b = read_training_checkpoint(tmp_path / "two" / "last.pt")["model"]
    assert a.keys() == b.keys()
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-4
