"""Media the audits found read inconsistently: GIF folders, huge frame sizes, MPEG-PS B-frames."""

from __future__ import annotations

import json
import warnings

import av
import numpy as np
import pytest
from _video_helpers import decode_index, index_frames
from PIL import Image

from timesformer.cli import main
from timesformer.data.datasets import scan_folder
from timesformer.data.inputs import expand_inputs
from timesformer.data.inspect import collect_videos, probe_video
from timesformer.data.prepare import find_videos
from timesformer.data.video import NotAVideoError, VideoDecodeError, VideoReader, VideoReadWarning


def _gifs(folder, animated=True, still=True):
    folder.mkdir(parents=True, exist_ok=True)
    frames = [Image.fromarray(f) for f in index_frames(4)]
    if animated:
        frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    if still:
        frames[0].save(folder / "still.gif")
    return folder


def test_every_folder_scan_takes_gif_files(tmp_path):
    d = _gifs(tmp_path / "gifs")
    want = [d / "anim.gif", d / "still.gif"]
    assert [v.path for v in expand_inputs([str(d)])] == want  # predict, extract
    assert collect_videos([d]) == [str(p) for p in want]  # data check
    assert find_videos(d) == want  # data prepare
    _gifs(tmp_path / "tree" / "waving", still=False)
    samples, classes = scan_folder(tmp_path / "tree")  # class-folder datasets
    assert classes == ["waving"] and samples == [(str(tmp_path / "tree/waving/anim.gif"), 0)]
    with VideoReader(samples[0][0]) as r:
        assert r.num_frames == 4


def test_check_a_folder_of_gifs_reports_the_still_one_as_an_image(tmp_path, capsys):
    d = _gifs(tmp_path / "gifs")
    rc = main(["data", "check", str(d), "--json", "--no-progress", "--num-frames", "2",
               "--sampling-rate", "1"])  # fmt: skip
    records = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(capsys.readouterr().out)}
    assert rc == 1 and set(records) == {"anim.gif", "still.gif"}
    assert records["anim.gif"]["frames"] == 4 and records["anim.gif"]["clip_ms"] is not None
    assert not records["still.gif"]["ok"]
    assert records["still.gif"]["problems"] == ["not a video: an image (GIF)"]


def _y4m(path, width, height, frames=1):
    """A Y4M file of grey 4:2:0 frames whose header declares `width` x `height`."""
    head = f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode()
    size = width * height * 3 // 2
    frame = b"FRAME\n" + b"\x80" * (size if size < 1 << 20 else 4096)  # huge ones: cut short
    path.write_bytes(head + frame * frames)
    return path


def test_a_y4m_header_of_an_impossible_size_is_named_so(tmp_path):
    path = _y4m(tmp_path / "huge.y4m", 60000, 60000)
    with pytest.raises(VideoDecodeError) as info:
        VideoReader(path)
    msg = str(info.value)
    assert "Device or resource busy" not in msg and "\n" not in msg and "huge.y4m" in msg
    assert "frames of 60000x60000 (3600 MP), as the Y4M header declares, are larger than " in msg
    assert "FFmpeg can decode at all" in msg
    assert probe_video(path)["problems"] == [f"unreadable: {info.value.reason}"]
    with VideoReader(_y4m(tmp_path / "small.y4m", 64, 48, frames=3)) as r:  # a sane one reads
        assert r.num_frames == 3 and (r.width, r.height) == (64, 48)


def test_frames_above_the_limit_but_within_ffmpeg_say_how_to_allow_them(tmp_path, monkeypatch):
    path = _y4m(tmp_path / "wide.y4m", 64, 48, frames=2)
    monkeypatch.setenv("TIMESFORMER_MAX_FRAME_PIXELS", "1000")
    with pytest.raises(VideoDecodeError, match=r"frames of 64x48 \(0.00307 MP\) are larger than the "
                       r"0.001 MP this reads \(as set by TIMESFORMER_MAX_FRAME_PIXELS"):  # fmt: skip
        VideoReader(path)


def _mjpeg_avi(path, frames):
    """An AVI of `frames` 64x48 MJPEG frames."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        for f in index_frames(frames):
            for packet in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


@pytest.mark.parametrize("frames", [1, 3])
def test_check_and_the_reader_give_one_reason_for_huge_mjpeg(tmp_path, monkeypatch, frames):
    # a 9000x5000 MJPEG against the 8K limit, in small: 64x48 frames against a 1000-pixel one
    path = _mjpeg_avi(tmp_path / "big.avi", frames)
    monkeypatch.setenv("TIMESFORMER_MAX_FRAME_PIXELS", "1000")
    with pytest.raises(VideoDecodeError) as info:
        VideoReader(path)
    reason = info.value.reason
    if frames == 1:  # one picture of an image codec: an image, however large
        assert isinstance(info.value, NotAVideoError) and reason == "an image (JPEG), not a video"
        assert probe_video(path)["problems"] == ["not a video: an image (JPEG)"]
    else:
        assert reason.startswith("frames of 64x48 (0.00307 MP) are larger than the 0.001 MP")
        assert probe_video(path)["problems"] == [f"unreadable: {reason}"]


def _mpeg_ps(path, count, codec="mpeg2video", bframes=2, gop=12):
    """An MPEG-PS (.mpg) file of index frames with B-frames, as FFmpeg's muxer writes it."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.gop_size, s.codec_context.max_b_frames = gop, bframes
        s.codec_context.qscale = 2
        s.options = {"bf": str(bframes)}
        for f in index_frames(count):
            for packet in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


@pytest.mark.parametrize("codec, bframes, gop", [("mpeg2video", 2, 12), ("mpeg1video", 3, 6)])
def test_mpeg_ps_b_frames_with_repeated_timestamps_read_exactly(tmp_path, codec, bframes, gop):
    path = _mpeg_ps(tmp_path / "b.mpg", 120, codec, bframes, gop)
    with av.open(str(path)) as c:  # the muxer's timestamps repeat: that is the case here
        pts = [p.pts for p in c.demux(video=0) if p.size]
    assert len(pts) == 120 and len(set(pts)) < 120
    with av.open(str(path)) as c:  # frame k of a straight decode from the start
        straight = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert decode_index(straight) == list(range(120))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact now: no "namesakes" warning
        with VideoReader(path) as r:
            assert (r.num_frames, r.fps, r.duration) == (120, 25.0, pytest.approx(4.8))
            ask = [36, 37, 5, 119, 0, 36, 64]
            assert np.array_equal(r.get_frames(ask).numpy(), straight[ask])
            assert np.array_equal(r.get_frames(range(120)).numpy(), straight)
            clips = dict(r.iter_clips([[30, 34, 38], [90, 95]]))
            assert np.array_equal(clips[0].numpy(), straight[[30, 34, 38]])
            assert r.index_at(36 / 25) == 36 and r.time_of(36) == pytest.approx(36 / 25)
    rec = probe_video(path, num_frames=4, sampling_rate=2)
    assert not rec["variable_fps"] and rec["frames"] == 120 and rec["fps"] == "25"


def test_a_restarting_clock_still_warns_and_long_files_keep_their_timestamps(tmp_path):
    from timesformer.data.index import regular_timeline

    _mpeg_ps(tmp_path / "a.mpg", 12, gop=6)
    joined = tmp_path / "joined.mpg"  # as `cat a.mpg a.mpg`: the clock starts again halfway
    joined.write_bytes((tmp_path / "a.mpg").read_bytes() * 2)
    with pytest.warns(VideoReadWarning, match="repeat another frame's timestamp"):
        VideoReader(joined).close()
    with av.open(str(tmp_path / "a.mpg")) as c:
        stream = c.streams.video[0]
        grid = (48600 + 3600 * np.arange(5000)).astype(np.int64)
        assert regular_timeline(np.sort(np.r_[grid[:100], grid[:1]][1:]), stream) is None
        short = np.sort(np.r_[grid[:98], grid[97], grid[99]])  # frame 98's label on frame 97
        assert np.array_equal(regular_timeline(short, stream), grid[:100])
        assert regular_timeline(np.sort(np.r_[grid[:-2], grid[-3], grid[-1]]), stream) is None
