"""Inputs that are not videos get their own reason; files cut short warn instead of hiding it."""

from __future__ import annotations

import warnings

import pytest
from _video_helpers import decode_index, index_frames
from PIL import Image

from timesformer.data.synthetic import write_video
from timesformer.data.video import (
    NotAVideoError,
    VideoDecodeError,
    VideoReader,
    VideoReadWarning,
    VideoTruncatedWarning,
)


@pytest.mark.parametrize(
    "name, kind", [("still.png", "PNG"), ("still.jpg", "JPEG"), ("still.gif", "GIF")]
)
def test_an_image_is_not_a_video(tmp_path, name, kind):
    path = tmp_path / name
    Image.fromarray(index_frames(1)[0]).save(path)
    with pytest.raises(NotAVideoError, match=rf"an image \({kind}\), not a video") as info:
        VideoReader(path)
    assert isinstance(info.value, VideoDecodeError) and "\n" not in str(info.value)


def test_an_animated_gif_and_a_one_frame_video_are_videos(tmp_path):
    frames = [Image.fromarray(f) for f in index_frames(4)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with VideoReader(tmp_path / "anim.gif") as r:
        assert r.num_frames == 4
    write_video(tmp_path / "one.mp4", index_frames(1), 25.0)
    with VideoReader(tmp_path / "one.mp4") as r:
        assert r.num_frames == 1


def test_folder_and_url_are_refused_clearly(tmp_path):
    with pytest.raises(NotAVideoError, match="a folder, not a video file"):
        VideoReader(tmp_path)
    for url in ("https://example.com/v.mp4", "http:/example.com/v.mp4", "rtsp://cam/1"):
        with pytest.raises(NotAVideoError, match="URLs are not read; download the file first"):
            VideoReader(url)


@pytest.mark.parametrize("suffix,opts", [(".mkv", dict(codec="h264", gop=10, bframes=2)),
                                         (".webm", dict(codec="vp9", gop=10))])  # fmt: skip
def test_a_cut_matroska_file_warns_that_it_is_truncated(tmp_path, suffix, opts):
    path = tmp_path / f"full{suffix}"
    write_video(path, index_frames(120), 30.0, **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the intact file reads without a word
        with VideoReader(path) as r:
            assert r.num_frames == 120 and r.warnings == []
    cut = tmp_path / f"cut{suffix}"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.warns(VideoTruncatedWarning, match="truncated: the container states 4.00 s"):
        reader = VideoReader(cut)
    with reader:
        assert 40 < reader.num_frames < 120
        assert len(reader.warnings) == 1 and "truncated" in reader.warnings[0]
        idx = [0, reader.num_frames // 2]
        assert decode_index(reader.get_frames(idx)) == idx  # what is there is still exact
    assert issubclass(VideoTruncatedWarning, VideoReadWarning)


def test_an_empty_file_and_a_broken_link_say_so(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(NotAVideoError, match=r"an empty file \(0 bytes\)"):
        VideoReader(empty)
    link = tmp_path / "gone.mp4"
    link.symlink_to(tmp_path / "nowhere.mp4")
    with pytest.raises(VideoDecodeError, match=r"a broken link \(to .*nowhere.mp4\)"):
        VideoReader(link)
    from timesformer.data.inputs import expand_inputs

    assert [v.name for v in expand_inputs([str(tmp_path)])] == ["empty.mp4", "gone.mp4"]


def _two_video_streams(path, thumb_frames: int = 3, main_frames: int = 30) -> None:
    """An mkv whose first video stream is a small 3-frame thumbnail track."""
    import av
    import numpy as np

    with av.open(str(path), "w") as c:
        small, big = c.add_stream("libx264", rate=30), c.add_stream("libx264", rate=30)
        for s, (w, h) in ((small, (32, 24)), (big, (64, 48))):
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for s, n, (w, h) in ((small, thumb_frames, (32, 24)), (big, main_frames, (64, 48))):
            for i in range(n):
                img = np.full((h, w, 3), (i * 8) % 256, np.uint8)
                for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)


def test_the_main_video_stream_is_read_not_a_thumbnail_track(tmp_path):
    from timesformer.data.inspect import probe_video

    _two_video_streams(tmp_path / "two.mkv")
    with warnings.catch_warnings():
        warnings.simplefilter("error", VideoReadWarning)  # no "truncated" from the thumbnail
        with VideoReader(tmp_path / "two.mkv") as r:
            assert (r.num_frames, r.width, r.height) == (30, 64, 48)
            assert r.get_frames([0, 29]).shape == (2, 48, 64, 3)
    rec = probe_video(tmp_path / "two.mkv", num_frames=4, sampling_rate=2)
    assert (rec["frames"], rec["width"]) == (30, 64)


def test_frames_beyond_the_pixel_limit_are_refused(tmp_path, monkeypatch):
    write_video(tmp_path / "v.mp4", index_frames(4), 25.0)
    monkeypatch.setenv("TIMESFORMER_MAX_FRAME_PIXELS", "1000")
    with pytest.raises(VideoDecodeError, match=r"frames of \d+x\d+ .* larger than .*MAX_FRAME"):
        VideoReader(tmp_path / "v.mp4")
    monkeypatch.setenv("TIMESFORMER_MAX_FRAME_PIXELS", "lots")
    with pytest.raises(ValueError, match="expected a whole number"):
        VideoReader(tmp_path / "v.mp4")
    monkeypatch.delenv("TIMESFORMER_MAX_FRAME_PIXELS")
    with VideoReader(tmp_path / "v.mp4") as r:  # the 8K UHD default
        assert r.num_frames == 4


def test_audio_longer_than_the_video_is_not_a_cut_file(tmp_path):
    """An mkv whose video starts 5 s into 8 s of audio: Matroska gives the video track the
    file's 8 s, which is not a truncation."""
    from fractions import Fraction

    import av
    import numpy as np

    path = tmp_path / "late.mkv"
    with av.open(str(path), "w") as c:
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
        v = c.add_stream("libx264", rate=30)
        v.width, v.height = 64, 48
        t = 0
        while t < 48000 * 8:
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")  # fmt: skip
            f.sample_rate, f.pts, f.time_base = 48000, t, Fraction(1, 48000)
            t += 1024
            for p in a.encode(f):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
        for i in range(60):
            f = av.VideoFrame.from_ndarray(index_frames(60)[i][:48, :64], format="rgb24")
            f.pts, f.time_base = 150 + i, Fraction(1, 30)
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
    with warnings.catch_warnings():
        warnings.simplefilter("error", VideoTruncatedWarning)
        with VideoReader(path) as r:
            assert r.num_frames == 60
