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
