"""Files cut inside a packet (a recording that lost power): the frames before the cut are read."""

from __future__ import annotations

import warnings
from pathlib import Path

import av
import numpy as np
import pytest
from _video_helpers import decode_index, index_frames

from timesformer.data.inspect import decode_all, probe_video
from timesformer.data.video import VideoDecodeError, VideoReader

COUNT = 30


def _fragmented_mp4(path: Path) -> Path:
    """A fragmented mp4 (no frame count in its header, as OBS and browsers record) of frames
    that encode their index, with B-frames."""
    frames = index_frames(COUNT)
    with av.open(str(path), "w", options={"movflags": "frag_keyframe+empty_moov"}) as c:
        s = c.add_stream("libx264", rate=30, options={"crf": "18", "bf": "2", "g": "10"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return path


def _cut_inside_a_packet(src: Path, dst: Path) -> list[int]:
    """Write `src` cut in the middle of its 20th packet to `dst`; return the display indices of
    the frames whose packets are whole before the cut."""
    with av.open(str(src)) as c:
        packets = [(p.pts, p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    order = sorted(pts for pts, _, _ in packets)
    _, pos, size = packets[19]
    cut = pos + size // 2
    dst.write_bytes(src.read_bytes()[:cut])
    return sorted(order.index(pts) for pts, p, n in packets if p + n <= cut)


def test_a_file_cut_inside_its_last_packet_reads_the_frames_before(tmp_path):
    whole = _fragmented_mp4(tmp_path / "whole.mp4")
    expected = _cut_inside_a_packet(whole, tmp_path / "cut.mp4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with VideoReader(tmp_path / "cut.mp4") as r:
            assert r.num_frames == len(expected)
            assert any("ends inside its last frame" in w for w in r.warnings), r.warnings
            got = decode_index(r.get_frames(range(r.num_frames)))
            assert decode_index(r.get_frames([r.num_frames - 1])) == [expected[-1]]
    assert got == expected  # frame i is the i-th frame present, to the last one
    rec = probe_video(tmp_path / "cut.mp4", num_frames=2, sampling_rate=2, full=True)
    assert rec["frames"] == len(expected) and rec["decoded_frames"] == len(expected)
    assert any("ends inside its last frame" in p for p in rec["problems"])
    assert not any(p.startswith(("unreadable", "damaged")) for p in rec["problems"])
    assert decode_all(whole) == (COUNT, "")


def test_a_damaged_packet_mid_file_is_still_reported_by_a_full_check(tmp_path):
    whole = _fragmented_mp4(tmp_path / "whole.mp4")
    data = bytearray(whole.read_bytes())
    with av.open(str(whole)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
        pos, size = packets[12].pos, packets[12].size
    data[pos : pos + size] = np.random.default_rng(0).bytes(size)  # junk in place of a frame
    (tmp_path / "junk.mp4").write_bytes(bytes(data))
    decoded, why = decode_all(tmp_path / "junk.mp4")
    assert why or decoded < COUNT


def test_an_mp4_cut_inside_its_first_frame_says_it_is_truncated(tmp_path):
    """Its index (at the front) states the frames; the one packet present is cut short."""
    src = tmp_path / "whole.mp4"
    with av.open(str(src), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=30, options={"crf": "18"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for f in index_frames(6):
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    with av.open(str(src)) as c:
        first = next(p for p in c.demux(c.streams.video[0]) if p.size)
        cut = first.pos + first.size // 2
    (tmp_path / "cut.mp4").write_bytes(src.read_bytes()[:cut])
    with warnings.catch_warnings(), pytest.raises(VideoDecodeError) as e:
        warnings.simplefilter("ignore")
        VideoReader(tmp_path / "cut.mp4")
    assert e.value.reason == "zero video frames (truncated: the container states 6 frames)"
