"""`data prepare`: re-encoded tree (size, fps, keyframes, upright), resumable, failures listed."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from _rotated import halves, write_rotated

from timesformer.cli import main
from timesformer.data import VideoReader
from timesformer.data.inspect import probe_video
from timesformer.data.prepare import output_size, prepare_tree, prepare_video
from timesformer.data.synthetic import write_video


@pytest.fixture()
def tree(tmp_path):
    src = tmp_path / "src"
    write_video(src / "walk" / "a.mp4", halves(60, 48, 64), 30.0, gop=60)  # 2 s at 30 fps
    write_video(src / "run" / "deep" / "b.mkv", halves(20, 64, 48), 10.0)  # 2 s at 10 fps
    write_rotated(src / "run" / "phone.mp4", halves(30, 48, 64), 90)  # stored 64x48, shown 48x64
    (src / "run" / "broken.mp4").write_bytes(b"\x00" * 300)
    return src


def test_output_size():
    assert output_size(340, 256, 128) == (170, 128)
    assert output_size(256, 340, 128) == (128, 170)
    assert output_size(1920, 1080, 256) == (456, 256)  # long side rounded to even


def test_prepare_tree(tree, tmp_path):
    dst = tmp_path / "dst"
    recs = {r["path"].split("src/")[1]: r for r in
            prepare_tree(tree, dst, short_side=32, fps=15, gop=4)}  # fmt: skip
    assert {k: r["status"] for k, r in recs.items()} == {
        "run/broken.mp4": "failed", "run/deep/b.mkv": "written",
        "run/phone.mp4": "written", "walk/a.mp4": "written",
    }  # fmt: skip
    assert "cannot read source" in recs["run/broken.mp4"]["reason"]
    expect = {
        "walk/a.mp4": (42, 32, 30),
        "run/deep/b.mp4": (32, 42, 30),
        "run/phone.mp4": (32, 42, 15),
    }
    for rel, (w, h, frames) in expect.items():
        r = probe_video(dst / rel, num_frames=2, sampling_rate=2)
        assert (r["width"], r["height"], r["frames"], r["fps"]) == (w, h, frames, "15"), rel
        assert r["rotation"] == 0 and r["keyframe_interval_frames"] == 4 and not r["variable_fps"]
    with VideoReader(dst / "run" / "phone.mp4", upright=False) as r:
        f = r.get_frames([3])[0].numpy().astype(int)  # (42, 32, 3), stored upright
    # stored left half red turned 90 degrees clockwise: the red half is now on top
    assert f[:15, :, 0].mean() > 150 and f[-15:, :, 0].mean() < 60
    assert f[-15:, :, 2].mean() > 150
    assert not list(dst.rglob(".*partial*"))


def test_resumable_and_bad_outputs_redone(tree, tmp_path):
    dst = tmp_path / "dst"
    kw = dict(short_side=32, fps=15, gop=4)
    first = prepare_video(tree / "walk" / "a.mp4", dst / "a.mp4", **kw)
    mtime = (dst / "a.mp4").stat().st_mtime_ns
    assert first["status"] == "written"
    assert prepare_video(tree / "walk" / "a.mp4", dst / "a.mp4", **kw)["status"] == "skipped"
    assert (dst / "a.mp4").stat().st_mtime_ns == mtime
    # other settings: the existing output no longer matches, so it is redone
    assert prepare_video(tree / "walk" / "a.mp4", dst / "a.mp4", short_side=16, fps=15, gop=4)[
        "status"] == "written"  # fmt: skip
    (dst / "a.mp4").write_bytes((dst / "a.mp4").read_bytes()[:200])  # a cut output
    assert prepare_video(tree / "walk" / "a.mp4", dst / "a.mp4", **kw)["status"] == "written"
    with VideoReader(dst / "a.mp4") as r:
        assert (r.num_frames, r.width, r.height) == (30, 42, 32)


def test_keep_source_rate(tree, tmp_path):
    r = prepare_video(tree / "run" / "deep" / "b.mkv", tmp_path / "b.mp4", short_side=32,
                      fps=None, gop=5)  # fmt: skip
    assert r["status"] == "written"
    with VideoReader(tmp_path / "b.mp4") as v:
        assert v.num_frames == 20 and v.fps == pytest.approx(10.0)


def test_a_destination_inside_the_source_is_not_read_back(tree, tmp_path, capsys):
    import shutil

    src = tmp_path / "copy"
    shutil.copytree(tree, src)
    (src / "run" / "broken.mp4").unlink()
    argv = ["data", "prepare", str(src), str(src / "out"), "--short-side", "32", "--sample", "0",
            "--json"]  # fmt: skip
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)["counts"]
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)["counts"]
    assert again == {"written": 0, "skipped": first["written"], "failed": 0}
    assert not (src / "out" / "out").exists()


def test_prepare_command(tree, tmp_path, capsys):
    dst = tmp_path / "out"
    argv = ["data", "prepare", str(tree), str(dst), "--short-side", "32", "--fps", "15",
            "--gop", "4", "--sample", "2", "--num-frames", "2", "--sampling-rate", "2"]  # fmt: skip
    assert main(argv) == 1  # broken.mp4 failed
    out = capsys.readouterr().out
    assert "failed: " in out and "broken.mp4" in out
    assert "ms before" in out and "ms after" in out
    assert main([*argv, "--json"]) == 1
    res = json.loads(capsys.readouterr().out)
    assert res["counts"] == {"written": 0, "skipped": 3, "failed": 1}
    (tree / "run" / "broken.mp4").unlink()
    assert main(argv) == 0


@pytest.mark.parametrize(
    "extra, match, code",
    [
        (["{tmp}/nope", "{tmp}/d"], "source folder not found", 1),
        (["{src}", "{src}"], "is the source folder", 1),
        (["{src}", "/proc/dst"], "destination folder", 1),
        (["{src}", "{tmp}/d", "--gop", "0"], "--gop: expected a positive integer, got '0'", 2),
        (["{src}", "{tmp}/d", "--short-side", "0"], "--short-side: expected an integer >= 2", 2),
        (["{src}", "{tmp}/d", "--crf", "99"], "--crf: expected an integer in 0..51", 2),
    ],
)
def test_prepare_bad_input_one_line(tree, tmp_path, capsys, extra, match, code):
    argv = [a.format(tmp=tmp_path, src=tree) for a in extra]
    try:
        rc = main(["data", "prepare", *argv, "--sample", "0"])
    except SystemExit as e:  # argparse's own: the flag's type refused it
        rc = e.code
    assert rc == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


def test_frames_far_apart_are_not_multiplied(tmp_path):
    """10 frames 1000 s apart: at 30 fps the copy would repeat each 30,000 times; refused in
    one line before anything is written."""
    import numpy as np

    frames = np.random.default_rng(0).integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    src = tmp_path / "far.mkv"
    write_video(src, frames, 30.0, pts=[i * 1000 for i in range(10)], time_base=(1, 1))
    r = prepare_video(src, tmp_path / "out" / "far.mp4", short_side=32, fps=30)
    assert r["status"] == "failed" and "would hold 300000 frames" in r["reason"], r
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_anamorphic_source_is_flagged_and_prepared_square(tmp_path):
    """Pixels 4:3 wide (64x48 stored, 85x48 shown): the reader keeps the stored shape (as the
    reference pipelines), data check says so, data prepare writes square pixels."""
    src = tmp_path / "anamorphic.mp4"
    with av.open(str(src), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(4, 3)
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), "rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with VideoReader(src) as reader:
        assert reader.sample_aspect_ratio == Fraction(4, 3) and (reader.width, reader.height) == (
            64,
            48,
        )
    rec = probe_video(src, num_frames=2, sampling_rate=1)
    assert rec["sample_aspect_ratio"] == "4:3"
    assert any(p.startswith("anamorphic:") and "displayed 85x48" in p for p in rec["problems"])
    out = prepare_video(src, tmp_path / "square.mp4", short_side=48, fps=None)
    assert out["status"] == "written" and (out["width"], out["height"]) == (84, 48)
    with VideoReader(tmp_path / "square.mp4") as reader:
        assert reader.sample_aspect_ratio == 1 and (reader.width, reader.height) == (84, 48)
