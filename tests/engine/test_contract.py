"""The preprocessing contract end to end: every writer stores it, every reader restores it, and
the training checkpoint, each export and the Python API give the same prediction; folder-tree
class names; SSv2 BGR from an official-layout file; Hub ids from an offline cache."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import timesformer
from timesformer.cli import main
from timesformer.data import TestTransform, VideoReader, test_views, write_video
from timesformer.engine.checkpoint import save_training_checkpoint
from timesformer.engine.config import RunConfig
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.preprocess import Preprocess
from timesformer.models.weights import (
    from_pretrained,
    save_checkpoint,
    save_hf,
    save_official,
    save_safetensors,
    to_official_state_dict,
)

NAMES = ("left", "right", "up")
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _tiny(labels=None) -> TimeSformer:
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=4, embed_dim=32, depth=1,
                            num_heads=2, num_classes=3, drop_path_rate=0.0, labels=labels)  # fmt: skip
    model = TimeSformer(cfg)
    with torch.no_grad():  # every parameter matters, the temporal ones included
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """3 s at 30 fps, 40 x 56, a square moving right over noise."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 80, (90, 40, 56, 3), dtype=np.uint8)
    for t in range(90):
        x = t % 44
        frames[t, 14:26, x : x + 12] = (230, 60, 20)
    path = tmp_path_factory.mktemp("contract") / "moving.mp4"
    write_video(path, frames, fps=30)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[TimeSformer, Path]:
    """A model as training leaves it: a non-default contract and class names, and its
    training checkpoint."""
    torch.manual_seed(0)
    model = _tiny()
    model.preprocess = Preprocess.for_geometry(
        4, 32, sampling_rate=4, mean=MEAN, std=STD, class_names=NAMES
    )
    run = RunConfig.from_dict({"data": {"sampling_rate": 4, "mean": list(MEAN), "std": list(STD)}})
    path = tmp_path_factory.mktemp("ck") / "last.pt"
    save_training_checkpoint(path, model, epoch=1, step=3, train_config=run.to_dict())
    return model, path


def test_every_export_restores_the_contract_and_gives_the_same_prediction(
    video, trained, tmp_path
) -> None:
    model, train_ck = trained
    ref = timesformer.predict(model, video, topk=3)  # the in-memory model, its contract
    files = {
        "training": train_ck,
        "pt": save_checkpoint(model, tmp_path / "m.pt"),
        "safetensors": save_safetensors(model, tmp_path / "m.safetensors"),
        "hf": save_hf(model, tmp_path / "hf"),
        "official": save_official(model, tmp_path / "m.pyth"),
    }
    for kind, path in files.items():
        loaded = from_pretrained(path)
        assert loaded.preprocess == model.preprocess, kind  # every field, class names too
        assert loaded.preprocess.sampling_rate == 4 and loaded.preprocess.mean == MEAN
        assert list(loaded.config.labels) == list(NAMES), kind
        pred = timesformer.predict(loaded, video, topk=3)  # the README's Python path
        assert pred.label == ref.label, kind
        assert torch.allclose(pred.probs, ref.probs, atol=1e-5), kind
        assert [n for n, _ in pred.topk] == [n for n, _ in ref.topk], kind
    # what each format holds on disk
    hf_conf = json.loads((files["hf"] / "config.json").read_text())
    assert hf_conf["id2label"] == {"0": "left", "1": "right", "2": "up"}
    pre = json.loads((files["hf"] / "preprocessor_config.json").read_text())
    assert pre["image_mean"] == list(MEAN) and pre["image_std"] == list(STD)
    cfg = yaml.safe_load(torch.load(files["official"], weights_only=False)["cfg"])
    assert cfg["DATA"]["SAMPLING_RATE"] == 4 and cfg["DATA"]["MEAN"] == list(MEAN)
    assert cfg["TEST"]["NUM_SPATIAL_CROPS"] == 3
    assert torch.load(files["pt"])["preprocess"]["sampling_rate"] == 4


def test_the_rate_changes_the_answer_so_the_test_above_can_fail(video, trained) -> None:
    model, _ = trained
    a = timesformer.predict(model, video)
    b = timesformer.predict(model, video, sampling_rate=32)
    assert not torch.allclose(a.probs, b.probs, atol=1e-4)


def test_cli_says_where_each_setting_came_from(video, trained, capsys) -> None:
    _, path = trained
    assert main(["predict", str(video), "-c", str(path), "--json", "--sampling-rate", "2"]) == 0
    out, err = capsys.readouterr()
    d = json.loads(out)
    src = d["preprocess"]["sources"]
    assert (
        d["preprocess"]["values"]["sampling_rate"] == 2 and src["sampling_rate"] == "command line"
    )
    assert src["mean"] != "default"  # recorded by training, not guessed
    assert d["predictions"][0]["label"] in NAMES
    assert "preprocess: " in err and "sampling_rate=2 (command line)" in err


def test_protocol_flag_places_and_combines_the_views(video, trained, capsys) -> None:
    model, path = trained
    for proto in ("official", "centred"):
        assert main(["predict", str(video), "-c", str(path), "--json", "--protocol", proto]) == 0
        d = json.loads(capsys.readouterr().out)
        st = model.preprocess.replace(test_protocol=proto)
        with VideoReader(video) as r:
            views = test_views(r.num_frames, 4, 4, r.fps, num_clips=1, num_crops=3, protocol=proto)
            tf = TestTransform(32, 3, MEAN, STD, protocol=proto, train_short_side=st.short_side)
            x = torch.stack([tf(r.get_frames(list(v.indices)), v.crop) for v in views])
        with torch.no_grad():
            z = model(x)  # (3, C)
        want = z.mean(0).softmax(0) if proto == "official" else z.softmax(1).mean(0)
        got = {t["label"]: t["prob"] for t in d["predictions"][0]["topk"]}
        for i, name in enumerate(NAMES):
            assert got[name] == pytest.approx(float(want[i]), abs=1e-5), (proto, name)


def test_ssv2_official_file_loads_bgr_segments_and_applies_them(video, tmp_path) -> None:
    torch.manual_seed(1)
    model = _tiny()
    obj = to_official_state_dict(model)
    obj.pop("timesformer_config")
    cfg = yaml.safe_load(obj["cfg"])
    cfg.pop("TIMESFORMER_PREPROCESS")  # an official release: only the official keys
    cfg["TRAIN"] = {"DATASET": "ssv2"}
    cfg["TEST"] = {"DATASET": "ssv2", "NUM_ENSEMBLE_VIEWS": 1, "NUM_SPATIAL_CROPS": 1}
    cfg["DATA"] = {"NUM_FRAMES": 4, "TRAIN_CROP_SIZE": 32, "TEST_CROP_SIZE": 32,
                   "TRAIN_JITTER_SCALES": [36, 45], "REVERSE_INPUT_CHANNEL": True}  # fmt: skip
    obj["cfg"] = yaml.safe_dump(cfg)
    torch.save(obj, tmp_path / "ssv2.pyth")
    loaded = from_pretrained(tmp_path / "ssv2.pyth")
    pre = loaded.preprocess
    assert pre.channel_order == "bgr" and pre.sampler == "segments" and pre.test_views == (1, 1)
    assert pre.sources["channel_order"] == "official cfg" and pre.short_side == 36
    pred = timesformer.predict(loaded, video)
    with VideoReader(video) as r:
        v = test_views(r.num_frames, 4, 1, r.fps, num_clips=1, num_crops=1, sampler="segments")[0]
        frames = r.get_frames(list(v.indices))
    for order, same in (("bgr", True), ("rgb", False)):
        tf = TestTransform(32, 1, channel_order=order, protocol="official", train_short_side=36)
        with torch.no_grad():
            want = loaded(tf(frames, 0)[None])[0].softmax(0)  # heads as the official file says
        assert torch.allclose(pred.probs, want, atol=1e-5) == same, order
    # without the explicit key, the dataset alone says BGR
    del cfg["DATA"]["REVERSE_INPUT_CHANNEL"]
    obj["cfg"] = yaml.safe_dump(cfg)
    torch.save(obj, tmp_path / "ssv2b.pyth")
    assert from_pretrained(tmp_path / "ssv2b.pyth").preprocess.channel_order == "bgr"


def _hub_cache(root: Path, repo: str, folder: Path, sha: str = "a" * 40) -> Path:
    """Lay `folder` out as the Hub's cache does: blobs by hash, snapshots/<sha> links, refs."""
    base = root / ("models--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(sha)
    snap = base / "snapshots" / sha
    snap.mkdir(parents=True)
    (base / "blobs").mkdir()
    for f in folder.iterdir():
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copy(f, base / "blobs" / digest)
        (snap / f.name).symlink_to(Path("..") / ".." / "blobs" / digest)
    return snap


def test_hub_id_from_an_offline_cache(video, trained, tmp_path, monkeypatch, capsys) -> None:
    model, _ = trained
    repo = "facebook/timesformer-base-finetuned-k400"
    _hub_cache(tmp_path / "hub", repo, save_hf(model, tmp_path / "export"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    loaded = timesformer.from_pretrained(repo)
    assert list(loaded.config.labels) == list(NAMES)  # the Hub's id2label
    assert loaded.preprocess == model.preprocess  # and its preprocessing
    ref = timesformer.predict(model, video)
    assert torch.allclose(timesformer.predict(loaded, video).probs, ref.probs, atol=1e-5)
    # the CLI takes the same id
    assert main(["predict", str(video), "-c", repo, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"][0]["label"] == ref.label
    # another id, not cached: one line saying so and how to fix it
    rc = main(["predict", str(video), "-c", "facebook/timesformer-hr-finetuned-k600"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1
    assert "not in the Hugging Face cache" in err[0] and "HF_HUB_OFFLINE" in err[0]
    # a local folder of the same spelling wins over the Hub
    other = _tiny(labels=["x", "y", "z"])
    save_hf(other, tmp_path / "facebook" / "timesformer-base-finetuned-k400")
    assert list(timesformer.from_pretrained(repo).config.labels) == ["x", "y", "z"]


def test_folder_tree_run_names_reach_the_checkpoint_and_predict(tmp_path, capsys) -> None:
    """model.num_classes unset: the classes are the folders; predict prints their names."""
    from timesformer.engine.config import load_config
    from timesformer.engine.train import train

    rng = np.random.default_rng(0)
    colours = {"blue": (20, 20, 230), "green": (20, 230, 20), "red": (230, 20, 20)}
    for name, c in colours.items():
        for i in range(2):
            frames = rng.integers(0, 60, (8, 32, 32, 3), dtype=np.uint8)
            frames[:, 8:24, 8:24] = c
            (tmp_path / "tree" / name).mkdir(parents=True, exist_ok=True)
            write_video(tmp_path / "tree" / name / f"{i}.mp4", frames, fps=30)
    overrides = [
        "model.name=timesformer_tiny", "model.num_frames=4", "model.img_size=32",
        "model.patch_size=16", "model.embed_dim=32", "model.depth=1", "model.num_heads=2",
        "data.sampling_rate=2", "data.train_jitter=[32, 40]", "data.num_workers=0",
        "train.epochs=1", "train.batch_size=3", "train.global_batch_size=3",
        "train.progress=false", "train.eval_every=0",
        f"data.train_list={tmp_path / 'tree'}", f"output_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    train(load_config(None, overrides), log=lambda s: None)
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert ck["config"]["num_classes"] == 3
    assert ck["preprocess"]["class_names"] == ["blue", "green", "red"]
    assert ck["preprocess"]["sampling_rate"] == 2 and ck["preprocess"]["short_side"] == 32
    assert main(["predict", str(tmp_path / "tree" / "red" / "0.mp4"), "-c",
                 str(tmp_path / "run" / "last.pt")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "class_0" not in out and all(n in out for n in colours)
