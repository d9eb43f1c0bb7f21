"""predict on rendered videos with every checkpoint format, --long timelines, errors, --json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from timesformer import data as tdata
from timesformer.cli import main
from timesformer.data import VideoReader, cover_clips, write_video
from timesformer.engine.predict import (
    InferenceSettings,
    default_sampling_rate,
    load_for_inference,
    predict,
    resolve_labels,
)
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint, save_official, to_official_state_dict

NAMES = ["left", "right", "up"]
TRAIN_CONFIG = {"data": {"sampling_rate": 3, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}}


def _tiny(num_classes: int = 3, labels: list[str] | None = NAMES, **kw) -> TimeSformer:
    cfg = TimeSformerConfig(
        img_size=32, patch_size=16, num_frames=4, embed_dim=64, depth=1, num_heads=1,
        num_classes=num_classes, drop_path_rate=0.0, labels=labels, **kw,
    )  # fmt: skip
    model = TimeSformer(cfg)
    with torch.no_grad():  # make the weights matter: non-zero temporal and time parameters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 3 s, 30 fps, 48 x 64 video of a square moving right over noise."""
    rng = np.random.default_rng(0)
    T, H, W = 90, 48, 64
    frames = rng.integers(0, 60, (T, H, W, 3), dtype=np.uint8)
    for t in range(T):
        x = (t * 2) % (W - 12)
        frames[t, 18:30, x : x + 12] = (220, 40, 40)
    path = tmp_path_factory.mktemp("videos") / "moving.mp4"
    write_video(path, frames, fps=30)
    return path


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> tuple[Path, TimeSformer]:
    torch.manual_seed(1)
    model = _tiny()
    path = tmp_path_factory.mktemp("ckpt") / "ours.pt"
    save_checkpoint(model, path, train_config=TRAIN_CONFIG, epoch=3)
    return path, model


def _expected(forward, path: Path, st: InferenceSettings, K: int, S: int) -> torch.Tensor:
    """The video's probabilities over the K x S views, built directly from the data functions:
    "official" = softmax of the mean (summed) logit, "centred" = mean of the softmaxes."""
    proto = st.test_protocol
    with VideoReader(path) as r:
        views = tdata.test_views(r.num_frames, st.num_frames, st.sampling_rate, r.fps,
                           num_clips=K, num_crops=S, protocol=proto)  # fmt: skip
        tf = tdata.TestTransform(st.img_size, num_crops=S, mean=st.mean, std=st.std,
                                 protocol=proto, train_short_side=st.short_side)  # fmt: skip
        x = torch.stack([tf(r.get_frames(list(v.indices)), v.crop) for v in views])
    with torch.no_grad():
        z = forward(x)  # (K*S, C)
    return z.mean(0).softmax(-1) if proto == "official" else z.softmax(-1).mean(0)  # (C,)


def test_default_sampling_rate_follows_the_official_models() -> None:
    assert default_sampling_rate(8) == 32
    assert default_sampling_rate(16) == 16
    assert default_sampling_rate(96) == 4
    assert default_sampling_rate(4) == 64


def test_predict_our_checkpoint_matches_the_views_by_hand(video, ours) -> None:
    path, ref = ours
    model, st = load_for_inference(path)
    assert st.sampling_rate == 3 and st.source == "checkpoint train_config"
    assert st.mean == (0.5, 0.4, 0.3) and st.std == (0.2, 0.25, 0.3)
    assert (st.num_frames, st.img_size) == (4, 32)
    pred = predict(model, video, settings=st, views="2x3", topk=2, batch_size=4)
    expected = _expected(ref, video, st, 2, 3)
    assert torch.allclose(pred.probs, expected, atol=1e-5)
    assert pred.views == "2x3" and pred.num_clips == 6
    assert [n for n, _ in pred.topk] == [NAMES[i] for i in expected.topk(2).indices]
    assert pred.prob == pytest.approx(float(expected.max()), abs=1e-5)
    assert pred.duration == pytest.approx(3.0, abs=0.05) and pred.fps == pytest.approx(30.0)
    # overrides: the settings change the clip, and so the answer
    other = predict(model, video, settings=st, views="2x3", sampling_rate=1)
    assert not torch.allclose(other.probs, pred.probs, atol=1e-5)


def test_predict_long_covers_the_whole_video_in_batches(video, ours) -> None:
    path, ref = ours
    model, st = load_for_inference(path)  # 4 frames at rate 3: 12-frame (0.4 s) clips
    sizes: list[int] = []
    hook = model.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    pred = predict(model, video, settings=st, long=True, views="1x1", batch_size=3, topk=3)
    hook.remove()
    clips = pred.clips
    assert clips is not None and len(clips) == math.ceil(90 / 12)  # 8 clips, the last partial
    assert max(sizes) <= 3 and sum(sizes) == len(clips)  # classified in batches of <= 3
    assert clips[0].start == 0.0 and clips[-1].end == pytest.approx(pred.duration)
    for a, b in zip(clips, clips[1:]):
        assert a.end == pytest.approx(b.start) and a.end > a.start
    assert clips[1].start == pytest.approx(0.4)
    # each clip's scores equal the model's on that clip; the video label is their mean
    with VideoReader(video) as r:
        idx = cover_clips(r.num_frames, 4, 3, r.fps)
        tf = tdata.TestTransform(32, num_crops=1, mean=st.mean, std=st.std,
                                 protocol=st.test_protocol, train_short_side=st.short_side)  # fmt: skip
        x = torch.stack([tf(r.get_frames(c), 0) for c in idx])
    with torch.no_grad():
        p = ref(x).softmax(-1)  # (J, C)
    assert [c.label for c in clips] == [NAMES[i] for i in p.argmax(1)]
    assert clips[2].prob == pytest.approx(float(p[2].max()), abs=1e-5)
    assert torch.allclose(pred.probs, p.mean(0), atol=1e-5)
    merged = pred.segments()
    assert merged[0].start == 0.0 and merged[-1].end == pytest.approx(pred.duration)
    assert all(a.label != b.label for a, b in zip(merged, merged[1:]))


def test_long_mode_streams_and_never_asks_for_frames_by_index(video, ours, monkeypatch) -> None:
    path, _ = ours
    model, st = load_for_inference(path)

    def refuse(self, indices):
        raise AssertionError("long mode must stream with iter_clips, not get_frames")

    monkeypatch.setattr(VideoReader, "get_frames", refuse)
    pred = predict(model, video, settings=st, long=True)
    assert pred.clips and len(pred.clips) == 8


def test_official_pyth_checkpoint(video, tmp_path) -> None:
    import yaml

    torch.manual_seed(2)
    ref = _tiny(labels=None)
    # an official release: model_state with "model." keys, cfg YAML, optimizer state
    obj = to_official_state_dict(ref)
    obj.pop("timesformer_config")
    cfg = yaml.safe_load(obj["cfg"])
    cfg.pop("TIMESFORMER_PREPROCESS")  # only our exporter writes the full contract
    cfg["DATA"]["SAMPLING_RATE"] = 5
    cfg["DATA"]["MEAN"] = [0.45, 0.45, 0.45]
    obj["cfg"] = yaml.safe_dump(cfg)
    obj["optimizer_state"] = {}
    path = tmp_path / "TimeSformer_tiny.pyth"
    torch.save(obj, path)
    model, st = load_for_inference(path)
    assert st.sampling_rate == 5 and st.source == "official cfg"
    pred = predict(model, video, settings=st, views="1x3")
    assert torch.allclose(pred.probs, _expected(ref, video, st, 1, 3), atol=1e-5)
    assert [n for n, _ in pred.topk][0].startswith("class_")  # no names in an official file
    # our own official exporter round-trips too
    save_official(ref, tmp_path / "exported.pyth")
    model2, st2 = load_for_inference(tmp_path / "exported.pyth")
    assert st2.sampling_rate == default_sampling_rate(4) and st2.source == "official cfg"
    pred2 = predict(model2, video, settings=st)
    assert torch.allclose(pred2.probs, pred.probs, atol=1e-5)


def test_hugging_face_directory(video, tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(3)
    conf = transformers.TimesformerConfig(
        image_size=32, patch_size=16, num_frames=4, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64, num_labels=3,
        id2label={0: "walk", 1: "run", 2: "jump"}, label2id={"walk": 0, "run": 1, "jump": 2},
    )  # fmt: skip
    hf = transformers.TimesformerForVideoClassification(conf).eval()
    hf.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]})
    )
    model, st = load_for_inference(tmp_path / "hf", sampling_rate=2)
    assert st.mean == (0.5, 0.5, 0.5) and st.std == (0.25, 0.25, 0.25)
    assert st.sampling_rate == 2
    pred = predict(model, video, settings=st, views="1x3", topk=3)

    def hf_forward(x: torch.Tensor) -> torch.Tensor:
        return hf(pixel_values=x.transpose(1, 2)).logits  # HF takes (B, T, C, H, W)

    expected = _expected(hf_forward, video, st, 1, 3)
    assert torch.allclose(pred.probs, expected, atol=1e-4)
    assert sorted(n for n, _ in pred.topk) == ["jump", "run", "walk"]


def test_label_sources(tmp_path) -> None:
    model = _tiny(labels=None)
    assert resolve_labels(model) == ["class_0", "class_1", "class_2"]
    assert resolve_labels(_tiny()) == NAMES
    f = tmp_path / "names.txt"
    f.write_text("a\nb\nc\n")
    assert resolve_labels(_tiny(), f) == ["a", "b", "c"]
    f.write_text("a\nb\n")
    with pytest.raises(ValueError, match="names.txt"):
        resolve_labels(model, f)
    k400 = resolve_labels(_tiny(num_classes=400, labels=None))
    assert len(k400) == 400 and k400[0] == "abseiling"


def test_cli_reports_bad_videos_and_still_predicts_the_others(video, ours, tmp_path, capsys):
    path, _ = ours
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    missing = tmp_path / "missing.mp4"
    rc = main(["predict", str(missing), str(video), str(broken), "--checkpoint", str(path),
               "--topk", "2"])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc != 0
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("preprocess: ")]
    assert len(lines) == 2
    assert "missing.mp4" in lines[0] and "broken.mp4" in lines[1]
    assert all(ln.startswith("timesformer predict: error:") for ln in lines)
    assert str(video) in out and " 1. " in out and " 2. " in out and " 3. " not in out
    assert any(name in out for name in NAMES)


def test_cli_json_structure(video, ours, tmp_path, capsys) -> None:
    path, _ = ours
    labels = tmp_path / "labels.txt"
    labels.write_text("north\nsouth\neast\n")
    rc = main(["predict", str(video), str(tmp_path / "nope.mp4"), "--checkpoint", str(path),
               "--json", "--long", "--labels", str(labels), "--topk", "3"])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 1 and "nope.mp4" in err
    d = json.loads(out)
    assert set(d) == {"checkpoint", "settings", "preprocess", "warnings", "predictions", "errors"}
    assert d["preprocess"]["values"]["sampling_rate"] == 3
    assert d["preprocess"]["sources"]["sampling_rate"] == "checkpoint train_config"
    assert d["settings"]["sampling_rate"] == 3 and d["warnings"] == []
    assert d["errors"] == [
        {"path": str(tmp_path / "nope.mp4"), "error": d["errors"][0]["error"], "warnings": []}
    ]
    (p,) = d["predictions"]
    assert p["path"] == str(video) and p["views"] == "long x1" and p["warnings"] == []
    assert [t["label"] for t in p["topk"]][0] == p["label"]
    assert {t["label"] for t in p["topk"]} == {"north", "south", "east"}
    assert sum(t["prob"] for t in p["topk"]) == pytest.approx(1.0, abs=1e-5)
    assert len(p["clips"]) == 8 and p["clips"][0]["start"] == 0.0
    assert set(p["clips"][0]) == {"start", "end", "label", "prob", "topk"}


def test_cli_long_prints_a_timeline(video, ours, capsys) -> None:
    path, _ = ours
    assert main(["predict", str(video), "--checkpoint", str(path), "--long", "--every-clip"]) == 0
    out = capsys.readouterr().out
    assert "timeline, 8 clips" in out
    assert "0:00.0 - 0:00.4" in out and "0:02.8 - 0:03.0" in out


def test_training_checkpoint_settings_come_from_its_run_config(video, tmp_path) -> None:
    from timesformer.engine.checkpoint import rng_state, save_training_checkpoint
    from timesformer.engine.config import RunConfig

    model = _tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(1, 3, 4, 32, 32)).sum().backward()
    opt.step()
    run = RunConfig.from_dict({"data": {"sampling_rate": 4, "std": [0.3, 0.3, 0.3]}})
    path = tmp_path / "last.pt"
    save_training_checkpoint(path, model, optimizer=opt, epoch=2, step=10, rng=[rng_state()],
                             train_config=run.to_dict(), best_metric=0.5)  # fmt: skip
    loaded, st = load_for_inference(path)
    assert st.sampling_rate == 4 and st.std == (0.3, 0.3, 0.3) and st.sampler == "rate"
    pred = predict(loaded, video, settings=st, views="1x1")
    assert torch.allclose(pred.probs, _expected(model.eval(), video, st, 1, 1), atol=1e-5)


def test_safetensors_export_and_geometry_overrides(video, ours, tmp_path) -> None:
    from timesformer.models.weights import save_safetensors

    _, ref = ours
    save_safetensors(ref, tmp_path / "w.safetensors")
    model, st = load_for_inference(tmp_path / "w.safetensors", sampling_rate=3)
    assert st.source == "command line" and st.sampling_rate == 3
    pred = predict(model, video, settings=st, labels=NAMES)
    assert torch.allclose(pred.probs, _expected(ref, video, st, 1, 3), atol=1e-5)
    # --frames / --size: the clip and the model's embeddings follow
    model, st = load_for_inference(tmp_path / "w.safetensors", num_frames=6, img_size=48)
    assert (st.num_frames, st.img_size) == (6, 48)
    assert model.config.num_frames == 6 and model.time_embed.shape[1] == 6
    pred = predict(model, video, settings=st, views="1x1")
    assert torch.allclose(pred.probs, _expected(model, video, st, 1, 1), atol=1e-5)


def test_cli_bad_labels_file_is_one_error_not_a_video_error(video, ours, tmp_path, capsys):
    path, _ = ours
    rc = main(["predict", str(video), "--checkpoint", str(path),
               "--labels", str(tmp_path / "no_labels.txt")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "no_labels.txt" in err[0]


@pytest.fixture(scope="module")
def headless(tmp_path_factory) -> Path:
    """A checkpoint without a classification head (convert --num-classes 0 --reset-head)."""
    model = _tiny()
    model.reset_classifier(0)
    return save_checkpoint(model, tmp_path_factory.mktemp("headless") / "e.pt")


@pytest.mark.parametrize(
    "extra",
    [[], ["--segments"], ["--long", "--json"], ["--labels", "LABELS"], ["--out", "OUT"]],
)
def test_cli_a_model_without_a_head_is_one_error(video, headless, tmp_path, capsys, extra):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    extra = [{"LABELS": str(labels), "OUT": str(tmp_path / "p.csv")}.get(a, a) for a in extra]
    rc = main(["predict", str(video), "-c", str(headless), *extra])
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and cap.out == "", cap
    assert f"{headless}: the model has no classification head (num_classes=0)" in err[0]
    assert "timesformer extract" in err[0] and not (tmp_path / "p.csv").exists()


def test_api_refuses_a_model_without_a_head(video) -> None:
    model = _tiny()
    model.reset_classifier(0)
    for long in (False, True):
        with pytest.raises(ValueError, match=r"no classification head .*timesformer extract"):
            predict(model, video, long=long)


@pytest.mark.parametrize(
    "extra, expected, code",
    [
        (["--smooth", "5"], "--smooth: only with --segments", 2),
        (["--out-dir", "d", "--min-score", "0.5"], "--min-score, --out-dir: only with --segments", 2),
        (["--every-clip"], "--every-clip: only with --long", 2),
        (["--long", "--views", "3x1"], "K must be 1", 2),
        (["--segments", "--min-score", "2"], "--min-score 2.0: expected a probability", 2),
        (["--segments", "--min-windows", "0"], "--min-windows 0: expected >= 1", 2),
    ],
)  # fmt: skip
def test_options_of_another_mode_fail_before_loading(
    tmp_path, capsys, extra, expected, code
) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")  # never opened: the options fail first
    assert main(["predict", str(video), "-c", str(tmp_path / "none.pt"), *extra]) == code
    assert expected in capsys.readouterr().err


def test_api_rejects_what_the_cli_rejects(tmp_path) -> None:
    model = TimeSformer(TimeSformerConfig(img_size=32, patch_size=16, num_frames=2, embed_dim=16,
                                          depth=1, num_heads=2, num_classes=3)).eval()  # fmt: skip
    video = tmp_path / "v.mp4"
    write_video(video, np.zeros((4, 32, 32, 3), np.uint8), fps=8)
    with pytest.raises(ValueError, match="topk must be >= 1"):
        predict(model, video, topk=0)
    with pytest.raises(ValueError, match="K must be 1"):
        predict(model, video, long=True, views="3x1")
    with pytest.raises(tdata.VideoDecodeError, match="a folder, not a video file"):
        predict(model, tmp_path)


def test_cli_json_reports_the_finished_videos_when_interrupted(
    video, ours, capsys, monkeypatch, tmp_path
) -> None:
    import shutil

    from timesformer.engine import predict as engine_predict

    path, _ = ours
    videos = [str(shutil.copy(video, tmp_path / f"v{i}.mp4")) for i in range(3)]
    real, calls = engine_predict.predict, []

    def stop_on_second(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(engine_predict, "predict", stop_on_second)
    rc = main(["predict", *videos, "-c", str(path), "--json"])
    out, err = capsys.readouterr()
    assert rc == 130 and "interrupted" in err
    d = json.loads(out)
    assert d["interrupted"] is True and len(d["predictions"]) == 1


def test_cli_a_link_loop_and_a_name_that_is_not_utf8_end_nothing_else(video, ours, tmp_path,
                                                                        capfdbinary):  # fmt: skip
    """A folder holding a symlink loop: the loop is named and the video beside it predicted;
    a file name that is not UTF-8 is printed and written to the CSV as its own bytes."""
    import os
    import shutil

    path, _ = ours
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(video, folder / "ok.mp4")
    os.symlink("l2.mp4", folder / "l1.mp4")
    os.symlink("l1.mp4", folder / "l2.mp4")
    odd = os.fsdecode(bytes(tmp_path) + b"/bad_\xff.mp4")  # a surrogate escape in str form
    shutil.copy(video, odd)
    out_csv = tmp_path / "p.csv"
    rc = main(["predict", str(folder), odd, "--checkpoint", str(path), "--out", str(out_csv)])
    out, err = capfdbinary.readouterr()
    assert rc == 1
    assert b"l1.mp4: a symbolic link loop" in err and b"l2.mp4: a symbolic link loop" in err
    assert b"ok.mp4" in out and b"bad_" in out  # pytest's capture replaces what it cannot encode
    rows = out_csv.read_bytes().splitlines()
    assert any(b"bad_\xff.mp4" in r and b",ok," in r for r in rows), rows
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "timesformer.cli", "predict", odd,
                           "--checkpoint", str(path)], capture_output=True)  # fmt: skip
    assert proc.returncode == 0 and b"bad_\xff.mp4" in proc.stdout, proc.stderr[-800:]


def test_reader_reasons_for_an_empty_path_and_an_unreadable_file(tmp_path) -> None:
    import os

    from timesformer.data.video import VideoDecodeError, VideoReader

    with pytest.raises(VideoDecodeError, match="an empty path"):
        VideoReader("")
    if os.geteuid() == 0:
        pytest.skip("root reads every file: the permission case needs another user")
    f = tmp_path / "locked.mp4"
    f.write_bytes(b"x" * 100)
    f.chmod(0)
    with pytest.raises(VideoDecodeError, match=r"permission denied \(the file is not readable\)"):
        VideoReader(f)


def test_long_timelines_follow_the_timestamps(ours, tmp_path) -> None:
    """Variable frame rate: clip times are those of the clips' own frames, not index / mean
    fps; a few frames hours apart give one clip per frame at most, not thousands; a stream
    whose timestamps repeat is read with a warning."""
    import warnings

    from timesformer.data import VideoReader, cover_clips

    model, st = load_for_inference(ours[0])  # 4 frames at rate 3 (30 fps): 12-frame clips
    frames = np.random.default_rng(0).integers(0, 255, (60, 32, 32, 3), dtype=np.uint8)
    pts = [i * 10 for i in range(30)] + [300 + i * 100 for i in range(30)]  # ms: 100 fps, 10 fps
    write_video(tmp_path / "vfr.mp4", frames, 30.0, pts=pts, time_base=(1, 1000))
    pred = predict(model, tmp_path / "vfr.mp4", settings=st, long=True)
    with VideoReader(tmp_path / "vfr.mp4") as r:
        fps, n = r.fps, r.num_frames
    clips = cover_clips(n, st.num_frames, st.sampling_rate, fps, target_fps=st.target_fps)
    assert len(pred.clips) == len(clips) > 2
    for c, idx in zip(pred.clips[1:], clips[1:]):  # clip starts fall on their frames' times
        first, after = pts[idx[0]] / 1000, pts[min(idx[0] + 1, 59)] / 1000
        assert first - 1e-6 <= c.start <= after + 1e-6, (c.start, first, after)
    assert pred.clips[1].start < 0.35  # the fast first half: 12 frames in 0.12 s (mean fps: 1.8 s)
    assert pred.clips[-1].end == pytest.approx(pred.duration)

    sparse = tmp_path / "sparse.mkv"
    write_video(sparse, frames[:10], 30.0, pts=[i * 1000 for i in range(10)], time_base=(1, 1))
    long = predict(model, sparse, settings=st, long=True)
    assert len(long.clips) <= 10 and long.clips[-1].end == pytest.approx(long.duration)

    write_video(tmp_path / "a.ts", frames[:10], 30.0)
    write_video(tmp_path / "b.ts", frames[10:20], 30.0)
    joined = tmp_path / "joined.ts"  # as `cat a.ts b.ts`: the clock starts again halfway
    joined.write_bytes((tmp_path / "a.ts").read_bytes() + (tmp_path / "b.ts").read_bytes())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with VideoReader(joined) as r:
            assert r.num_frames >= 18
    assert any("repeat another frame's timestamp" in str(w.message) for w in seen)


def test_cli_an_animated_gif_is_a_video_and_ts_files_are_scanned(ours, tmp_path, capsys):
    from PIL import Image

    from timesformer.data.inspect import collect_videos

    path, _ = ours
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(6)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=40)
    assert main(["predict", str(tmp_path / "anim.gif"), "--checkpoint", str(path)]) == 0
    assert "anim.gif" in capsys.readouterr().out
    write_video(tmp_path / "clip.ts", np.zeros((4, 32, 32, 3), np.uint8), 25.0)
    # data check's scan takes both (an animated GIF is a video)
    assert sorted(collect_videos([tmp_path])) == [
        str(tmp_path / n) for n in ("anim.gif", "clip.ts")
    ]
