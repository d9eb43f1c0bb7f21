"""VideoReader: exact frames by index across codecs, VFR, streaming, bad files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from _video_helpers import NUM_FRAMES, decode_index, index_frames

from timesformer.data.synthetic import write_video
from timesformer.data.video import VideoDecodeError, VideoReader, VideoReadWarning, read_frames


@pytest.mark.parametrize("name", ["h264_bframes.mp4", "h264.mkv", "mpeg4.avi", "vp9.webm"])
def test_exact_frames_random_index_sets(index_videos, name):
    rng = random.Random(name)
    with VideoReader(index_videos[name]) as reader:
        assert reader.num_frames == NUM_FRAMES  # webm states no count: counted by demuxing
        assert reader.fps == pytest.approx(30.0, rel=1e-3)
        assert (reader.height, reader.width) == (48, 64)
        for _ in range(12):
            idx = [rng.randrange(NUM_FRAMES) for _ in range(rng.randint(1, 10))]
            frames = reader.get_frames(idx)
            assert frames.dtype == torch.uint8 and frames.shape == (len(idx), 48, 64, 3)
            assert decode_index(frames) == idx
        # repeats and reverse order, and a dense clip at the very end
        idx = [NUM_FRAMES - 1, 0, 0, 57, NUM_FRAMES - 1, 56]
        assert decode_index(reader.get_frames(idx)) == idx
        idx = list(range(NUM_FRAMES - 10, NUM_FRAMES))
        assert decode_index(reader.get_frames(idx)) == idx
        assert reader.substituted == 0
        assert reader._skip_ok  # the exact results came with non-reference skipping on


@pytest.mark.parametrize("name", ["h264_bframes.mp4", "vp9.webm"])
def test_exact_frames_with_threaded_decoding(index_videos, name):
    rng = random.Random(1)
    with VideoReader(index_videos[name], threads=0) as reader:  # FFmpeg threads, no skipping
        for _ in range(6):
            idx = [rng.randrange(NUM_FRAMES) for _ in range(rng.randint(1, 10))]
            assert decode_index(reader.get_frames(idx)) == idx


def test_colours_survive_the_round_trip(index_videos):
    want = index_frames(NUM_FRAMES)[[3, 90]].astype(int)
    got = read_frames(index_videos["h264_bframes.mp4"], [3, 90]).numpy().astype(int)
    assert np.abs(got - want).mean() < 4  # RGB order and values, not just the index bits


class _CountingContainer:
    """Stands in for the reader's container and counts the frames the decoder produces."""

    def __init__(self, container) -> None:
        self._container, self.count = container, 0

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self.count += 1
            yield frame

    def __getattr__(self, name):
        return getattr(self._container, name)


def _count_decoded(reader: VideoReader) -> _CountingContainer:
    reader._container = _CountingContainer(reader._container)
    return reader._container


def test_decodes_only_from_the_keyframe_before(index_videos):
    # keyframes every 40 frames: frame 110 needs frames 80..110 (plus decoder delay)
    with VideoReader(index_videos["h264_bframes.mp4"]) as reader:
        counter = _count_decoded(reader)
        assert decode_index(reader.get_frames([110])) == [110]
        assert counter.count <= 40
        # two far-apart frames: two seeks, never the frames in between
        counter.count = 0
        assert decode_index(reader.get_frames([5, 115])) == [5, 115]
        assert counter.count <= 2 * 40


def test_variable_frame_rate(vfr_video):
    path, pts = vfr_video
    with VideoReader(path) as reader:
        assert reader.num_frames == NUM_FRAMES
        assert reader.duration == pytest.approx(pts[-1] / 60 + 1 / reader.fps, abs=1e-3)
        assert reader.fps == pytest.approx((NUM_FRAMES - 1) / (pts[-1] / 60), rel=1e-3)
        idx = [0, 119, 64, 3, 3, 100]
        assert decode_index(reader.get_frames(idx)) == idx
        # by time: the frame shown at t is the last one with timestamp <= t
        times = [pts[64] / 60, (pts[64] + pts[65]) / 120, pts[100] / 60 - 1e-3]
        assert decode_index(reader.get_frames_at(times)) == [64, 64, 99]
        assert reader.index_at(1e6) == NUM_FRAMES - 1


def test_iter_clips_streams_every_clip_once(index_videos):
    clips = [list(range(s, min(s + 16, NUM_FRAMES))) for s in range(0, NUM_FRAMES, 16)]
    clips.append([5, 5, 7])  # overlapping, out of order
    with VideoReader(index_videos["h264.mkv"]) as reader:
        counter = _count_decoded(reader)
        seen = {k: decode_index(frames) for k, frames in reader.iter_clips(clips)}
        assert counter.count <= NUM_FRAMES + 8  # one forward pass (plus decoder delay)
    assert sorted(seen) == list(range(len(clips)))
    assert all(seen[k] == clips[k] for k in seen)


def test_index_errors(index_videos):
    with VideoReader(index_videos["vp9.webm"]) as reader:
        with pytest.raises(IndexError, match="out of range"):
            reader.get_frames([NUM_FRAMES])
        with pytest.raises(IndexError):
            reader.get_frames([-1])
        assert reader.get_frames([]).shape == (0, 48, 64, 3)


def test_bad_files(tmp_path, index_videos):
    data = index_videos["h264_bframes.mp4"].read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 50)
    (tmp_path / "empty.mp4").write_bytes(b"")
    cases = {
        "missing.mp4": "file not found",
        "truncated.mp4": "truncated",
        "junk.mp4": "not a media file",
        "empty.mp4": r"an empty file \(0 bytes\)",
    }
    for name, reason in cases.items():
        with pytest.raises(VideoDecodeError, match=reason) as info:
            VideoReader(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
        assert isinstance(info.value, RuntimeError)


def test_audio_only_file(tmp_path):
    import av

    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(VideoDecodeError, match=r"no video stream \(audio only\)"):
        VideoReader(path)


def test_a_damaged_track_header_is_not_called_audio_only(tmp_path):
    """The handler box zeroed: FFmpeg sees a data stream; the message says what is there."""
    path = tmp_path / "hdlr.mp4"
    write_video(path, index_frames(6), 30.0)
    data = bytearray(path.read_bytes())
    at = data.find(b"hdlr")
    data[at + 4 : at + 60] = bytes(56)
    path.write_bytes(bytes(data))
    with pytest.raises(VideoDecodeError, match=r"only 1 data stream \(a damaged header\?\)"):
        VideoReader(path)


def test_faststart_truncation_is_detected(tmp_path):
    # moov at the front: the container states 60 frames but the data stops early
    import av

    src = tmp_path / "fs.mp4"
    frames = index_frames(60)
    with av.open(str(src), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = src.read_bytes()
    cut = tmp_path / "fs_cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VideoDecodeError, match="truncated|could not be decoded"):
        with VideoReader(cut) as reader:
            reader.get_frames([reader.num_frames - 1])


def test_single_frame_video(tmp_path):
    path = tmp_path / "one.mp4"
    write_video(path, index_frames(1), 25.0)
    with VideoReader(path) as reader:
        assert reader.num_frames == 1 and reader.fps == pytest.approx(25.0)
        assert decode_index(reader.get_frames([0, 0, 0])) == [0, 0, 0]


def test_ffmpeg_eperm_reads_as_damaged_data_not_permissions() -> None:
    import av

    from timesformer.data.video import _err

    assert _err(av.PermissionError(1, "Operation not permitted")).startswith("damaged data")
    assert _err(ValueError("bad")) == "ValueError: bad"


def test_frame_size_change_mid_stream_is_scaled_to_the_streams(tmp_path, monkeypatch):
    """Two MPEG-TS pieces joined (legal: a broadcast's resolution switch), the second at twice
    the size: its frames come back at the stream's size, exact, with one warning."""
    first = index_frames(30)  # 48 x 64
    second = index_frames(60)[30:].repeat(2, axis=1).repeat(2, axis=2)  # 96 x 128, same layout
    write_video(tmp_path / "a.ts", first, 30.0, gop=10, bframes=0)  # no B-frames: both pieces
    write_video(tmp_path / "b.ts", second, 30.0, gop=10, bframes=0,  # get the same clock offset
                pts=range(30, 60), time_base=(1, 30))  # fmt: skip
    joined = tmp_path / "joined.ts"
    joined.write_bytes((tmp_path / "a.ts").read_bytes() + (tmp_path / "b.ts").read_bytes())
    with VideoReader(joined) as reader:
        assert (reader.num_frames, reader.height, reader.width) == (60, 48, 64)
        with pytest.warns(VideoReadWarning, match="frame size changes mid-stream"):
            frames = reader.get_frames([0, 29, 30, 45, 59])
        assert tuple(frames.shape) == (5, 48, 64, 3)
        assert decode_index(frames) == [0, 29, 30, 45, 59]
    # the pixel limit holds for the frames that come later too, not only the stream's header
    monkeypatch.setenv("TIMESFORMER_MAX_FRAME_PIXELS", str(64 * 48))
    with VideoReader(joined) as reader:
        assert decode_index(reader.get_frames([0, 29])) == [0, 29]
        with pytest.raises(VideoDecodeError, match="frame 31 is 128x96, larger than"):
            reader.get_frames([31])


def _write_ts(path, n: int, options: dict) -> list[np.ndarray]:
    """An MPEG-TS H.264 file of n moving-box frames at 29.97 fps; returns the frames' RGB."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w", format="mpegts") as c:
        s = c.add_stream("libx264", rate=Fraction(30000, 1001), options=options)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            a = np.full((48, 64, 3), 30, np.uint8)
            a[10:22, i % 50 : i % 50 + 12] = 220
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.mark.parametrize("n, options", [(90, {}), (300, {"g": "15", "bf": "2"})])
def test_mpeg_ts_frames_are_read_exactly_to_the_last(tmp_path, n, options):
    # MPEG-TS (AVCHD .MTS, broadcast .ts) seeks by byte position and can land past the frame's
    # keyframe: frame 0 of a short file and the last frames of a longer one were unreadable
    ref = _write_ts(tmp_path / "cam.ts", n, options)
    r = VideoReader(tmp_path / "cam.ts")
    assert r.num_frames == len(ref) == n
    idx = [0, 1, 28, n // 2, n - 7, n - 1]
    got = r.get_frames(idx)  # (len(idx), H, W, 3) uint8
    for i, j in enumerate(idx):
        assert np.array_equal(got[i].numpy(), ref[j]), j
