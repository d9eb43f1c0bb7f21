"""`data check`: probe records, every flagged problem, the command's JSON / CSV / exit code."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from _rotated import halves, write_rotated

from timesformer.cli import main
from timesformer.data.inspect import check_videos, collect_videos, probe_video
from timesformer.data.synthetic import write_video

CLIP = dict(num_frames=4, sampling_rate=4)  # spans 16 frames at 30 fps


def _frames(n: int, side: int = 128) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (n, side, side, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("check")
    good = d / "good" / "ok.mp4"
    write_video(good, _frames(40), 30.0, gop=10)
    write_video(d / "ntsc.mp4", _frames(20), 30000 / 1001, gop=10)
    write_video(d / "short.mp4", _frames(8), 30.0)
    write_video(d / "one.mp4", _frames(1), 30.0)
    write_video(d / "whole.mkv", _frames(90, 96), 30.0, gop=10)
    data = (d / "whole.mkv").read_bytes()
    (d / "cut.mkv").write_bytes(data[: len(data) // 2])  # demuxes cleanly; the header says 3 s
    write_video(d / "sparse.mp4", _frames(70, 128)[:, ::2, ::2].repeat(2, 1).repeat(2, 2),
                10.0, gop=100)  # fmt: skip  # one keyframe in 7 s
    write_video(d / "tiny.mp4", _frames(30, 64), 30.0)
    write_video(d / "vfr.mp4", _frames(30), 30.0, pts=[i * 2 + (i > 15) * 5 for i in range(30)],
                time_base=(1, 60))  # fmt: skip
    write_rotated(d / "phone.mp4", halves(30, 128, 160), 90)
    from PIL import Image

    Image.fromarray(_frames(1)[0]).save(d / "still.png")
    (d / "still_named.mp4").write_bytes((d / "still.png").read_bytes())
    (d / "junk.mp4").write_bytes(b"not a video at all" * 50)
    return d


def test_good_video_record(videos):
    r = probe_video(videos / "good" / "ok.mp4", **CLIP)
    assert r["ok"] is True and r["problems"] == []
    assert (r["codec"], r["width"], r["height"], r["rotation"]) == ("h264", 128, 128, 0)
    assert (r["fps"], r["variable_fps"], r["frames"]) == ("30", False, 40)
    assert r["duration"] == pytest.approx(40 / 30, abs=1e-3)
    assert r["keyframe_interval_frames"] == 10 and r["audio"] is None
    assert r["clip_ms"] > 0
    assert probe_video(videos / "ntsc.mp4", **CLIP)["fps"] == "30000/1001"  # exact, not 29.97


@pytest.mark.parametrize(
    "name, expected",
    [
        ("short.mp4", "shorter than one clip: 8 frames"),
        ("one.mp4", "shorter than one clip: 1 frame, "),
        ("cut.mkv", "truncated: the container states 3.00 s, the frames found cover"),
        ("sparse.mp4", "sparse keyframes: 70 frames (7.0 s) apart"),
        ("tiny.mp4", "tiny: 64x64"),
        ("vfr.mp4", "variable frame rate"),
        ("phone.mp4", "display rotation: 90 degrees"),
        ("still.png", "not a video: an image"),
        ("still_named.mp4", "not a video: an image"),  # by content, not by suffix
        ("junk.mp4", "unreadable"),
        ("missing.mp4", "unreadable: file not found"),
    ],
)
def test_problems_are_flagged(videos, name, expected):
    r = probe_video(videos / name, **CLIP)
    assert r["ok"] is False
    assert any(p.startswith(expected) for p in r["problems"]), r["problems"]


def test_collect_inputs(videos, tmp_path):
    lst = tmp_path / "l.csv"
    lst.write_text(f"path,label\n{videos / 'tiny.mp4'},0\n{videos / 'short.mp4'},1\n")
    got = collect_videos([videos / "good", lst, videos / "still.png"])
    assert got == [str(videos / "good" / "ok.mp4"), str(videos / "tiny.mp4"),
                   str(videos / "short.mp4"), str(videos / "still.png")]  # fmt: skip
    with pytest.raises(FileNotFoundError, match="input not found"):
        collect_videos([tmp_path / "nope"])
    folder = tmp_path / "links"
    folder.mkdir()
    (folder / "dead.mp4").symlink_to(tmp_path / "gone.mp4")  # a broken link is reported
    assert collect_videos([folder]) == [str(folder / "dead.mp4")]
    (rec,) = check_videos(collect_videos([folder]), measure=False, **CLIP)
    assert not rec["ok"] and rec["problems"] == [
        f"unreadable: a broken link (to {tmp_path}/gone.mp4)"
    ]


def test_inputs_the_reader_refuses_get_its_reason_and_the_rest_are_checked(videos, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "a.mp4").symlink_to("b.mp4")
    (tmp_path / "b.mp4").symlink_to("a.mp4")
    named = [tmp_path / "a.mp4", tmp_path / "empty.mp4", videos / "good" / "ok.mp4"]
    paths = collect_videos(named)  # a link loop named directly no longer stops the check
    assert paths == [str(p) for p in named]
    loop, empty, ok = check_videos(paths, measure=False, **CLIP)
    assert loop["problems"] == ["unreadable: a symbolic link loop"]
    assert empty["problems"] == ["unreadable: an empty file (0 bytes), not a video"]
    assert ok["ok"]


def test_workers_give_the_same_records(videos):
    paths = [videos / "good" / "ok.mp4", videos / "tiny.mp4", videos / "junk.mp4"]
    one = check_videos(paths, measure=False, **CLIP)
    two = check_videos(paths, workers=2, measure=False, **CLIP)
    assert one == two and [r["ok"] for r in one] == [True, False, False]


def _interrupt_at_second(calls: list) -> object:
    def progress(_rec) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    return progress


def test_an_interrupted_pool_stops_its_workers_at_once(videos):
    import multiprocessing as mp
    import time

    paths = [videos / "good" / "ok.mp4"] * 6
    before = set(mp.active_children())  # other tests' processes are not this pool's
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        check_videos(paths, workers=2, progress=_interrupt_at_second([]), **CLIP)
    deadline = time.perf_counter() + 20  # terminated workers are reaped within moments
    while not set(mp.active_children()) <= before and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert set(mp.active_children()) <= before  # no worker of this pool left behind
    assert time.perf_counter() - t0 < 60


def test_an_interrupted_check_keeps_its_report(videos, tmp_path, capsys, monkeypatch):
    from timesformer.data import inspect as insp

    real = insp.check_videos

    def check(paths, *, progress=None, **kw):  # the command's callback, interrupted at 2
        calls: list = []

        def both(rec) -> None:
            progress(rec)
            _interrupt_at_second(calls)(rec)

        return real(paths, progress=both, **kw)

    monkeypatch.setattr(insp, "check_videos", check)
    out = tmp_path / "r.csv"
    paths = [str(videos / "good" / "ok.mp4"), str(videos / "tiny.mp4"), str(videos / "junk.mp4")]
    assert main(["data", "check", *paths, "--out", str(out), "--no-decode"]) == 130
    assert len(out.read_text().strip().splitlines()) == 3  # header + the 2 checked
    assert "interrupted: 2 of 3 videos" in capsys.readouterr().err


def test_check_command(videos, tmp_path, capsys):
    out = tmp_path / "report.csv"
    rc = main(["data", "check", str(videos / "good"), str(videos / "tiny.mp4"), "--json",
               "--num-frames", "4", "--sampling-rate", "4", "--out", str(out), "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    records = json.loads(captured.out)
    assert rc == 1
    assert [(r["ok"], r["path"].endswith("tiny.mp4")) for r in records] == [
        (True, False),
        (False, True),
    ]
    assert "with problems" in captured.err  # the summary table goes to stderr with --json
    rows = list(csv.DictReader(out.open()))
    assert rows[1]["problems"].startswith("tiny") and rows[0]["ok"] == "True"
    assert main(["data", "check", str(videos / "good"), "--num-frames", "4",
                 "--sampling-rate", "4", "--no-progress"]) == 0  # fmt: skip
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["nope_dir"], "input not found: nope_dir"),
        (["{v}", "--out", "/proc/no/report.csv"], "report"),
    ],
)
def test_check_bad_input_one_line(videos, capsys, argv, match):
    argv = [a.format(v=videos / "tiny.mp4") for a in argv]
    assert main(["data", "check", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0] and "Traceback" not in err[0]


def test_check_names_a_folder_that_holds_no_videos_among_other_inputs(videos, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no videos here")
    argv = ["data", "check", str(videos / "tiny.mp4"), str(tmp_path / "empty")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty holds no video files" in err[0], err


def test_check_a_binary_list_is_named(videos, tmp_path, capsys):
    binlist = tmp_path / "binlist.csv"
    binlist.write_bytes((videos / "still.png").read_bytes())  # a PNG with a list's name
    assert main(["data", "check", str(binlist)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"list file {binlist} is not UTF-8 text" in err[0], err


def test_check_never_writes_its_report_over_an_input_or_another_file(videos, tmp_path, capsys):
    """--out naming an input (the video itself, or a hard link to it, or the list) exits 2;
    an existing file that is not an earlier report (a script) exits 1; both leave it as it
    was. An earlier report is replaced as before."""
    import os
    import shutil

    video = tmp_path / "v.mp4"
    shutil.copy(videos / "tiny.mp4", video)
    os.link(video, tmp_path / "hard.mp4")
    listing = tmp_path / "l.txt"
    listing.write_text(f"{video} 0\n")
    script = tmp_path / "run.py"
    script.write_text("print('mine')\n")
    before = video.read_bytes()
    cases = [
        ([str(video), "--out", str(video)], 2, "is the same file as the input"),
        ([str(video), "--out", str(tmp_path / "hard.mp4")], 2, "is the same file as the input"),
        ([str(listing), "--out", str(listing)], 2, "is the same file as the input"),
        ([str(video), "--out", str(script)], 1, "exists and is not an earlier report"),
    ]
    for argv, code, words in cases:
        assert main(["data", "check", *argv, "--no-decode"]) == code, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert video.read_bytes() == before and script.read_text() == "print('mine')\n"
    assert listing.read_text() == f"{video} 0\n"
    report = tmp_path / "report.csv"
    for _ in range(2):  # the second run replaces the first's report
        assert main(["data", "check", str(video), "--out", str(report), "--no-decode"]) == 1
        assert len(report.read_text().splitlines()) == 2


def test_full_decode_finds_damage_the_timed_clip_misses(tmp_path):
    """Garbage over the last part of the frame data: the clip timed from the start decodes, so
    only --full (every frame, errors not concealed) reports the file as damaged."""
    path = tmp_path / "late_damage.mp4"
    write_video(path, _frames(120, 64), 30.0, gop=10, bframes=0)
    data = bytearray(path.read_bytes())
    start = len(data) * 3 // 4  # the mdat holds the frames in order: the last quarter's data
    data[start : start + 2000] = np.random.default_rng(1).integers(0, 255, 2000, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    quick = probe_video(path, num_frames=2, sampling_rate=1, target_fps=None)
    assert quick["decoded_frames"] is None
    full = probe_video(path, num_frames=2, sampling_rate=1, target_fps=None, full=True)
    damaged = [p for p in full["problems"] if p.startswith("damaged:")]
    assert not full["ok"] and len(damaged) == 1, full["problems"]
    assert not any(p.startswith("damaged:") for p in quick["problems"])
    clean = tmp_path / "clean.mp4"
    write_video(clean, _frames(120, 64), 30.0, gop=10, bframes=0)
    rec = probe_video(clean, num_frames=2, sampling_rate=1, target_fps=None, full=True)
    assert rec["decoded_frames"] == 120 and not any("damaged" in p for p in rec["problems"])


def test_the_report_gives_the_frame_rate_every_reader_uses(tmp_path):
    # data check said 1780/93 where predict and extract said 288000/15041 for the same file
    from fractions import Fraction

    import av

    from timesformer.data.video import VideoReader

    path = tmp_path / "vfr.mp4"
    rng = np.random.default_rng(3)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(90):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 2, np.uint8), format="rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            t += int(rng.integers(20, 80))  # 20-80 ms apart
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    rec = probe_video(path)
    assert rec["variable_fps"] is True
    assert rec["fps"] == str(VideoReader(path).frame_rate)
