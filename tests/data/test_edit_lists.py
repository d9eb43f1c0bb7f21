"""An mp4/mov whose edit list hides its first frames (a trimmed phone video, `ffmpeg -ss -c copy`):
frame 0 is the first frame a player shows, not a hidden one."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest
from _video_helpers import decode_index, index_frames

from timesformer.data.inspect import decode_all, probe_video
from timesformer.data.video import VideoReader

COUNT, HIDDEN = 30, 4


def _trimmed(path: Path, bframes: int) -> Path:
    """Frames that encode their index; the first HIDDEN have negative timestamps, which the
    mov muxer hides behind an edit list (their packets come back flagged discard)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30, options={"bf": str(bframes), "g": "8", "crf": "18"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 30)
        for i, f in enumerate(index_frames(COUNT)):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts, frame.time_base = i - HIDDEN, Fraction(1, 30)
            c.mux(s.encode(frame))
        c.mux(s.encode())
    with av.open(str(path)) as c:
        if not any(p.is_discard for p in c.demux(c.streams.video[0])):
            pytest.skip("this FFmpeg writes no edit list for negative timestamps")
    return path


@pytest.mark.parametrize("name, bframes", [("trim.mp4", 3), ("trim_b.mov", 2)])
def test_frames_hidden_by_an_edit_list_are_not_frames(tmp_path, name, bframes):
    path = _trimmed(tmp_path / name, bframes)
    shown = list(range(HIDDEN, COUNT))
    with VideoReader(path) as r:
        assert r.num_frames == len(shown) and not r.warnings
        assert decode_index(r.get_frames(range(r.num_frames))) == shown
        assert decode_index(r.get_frames([0])) == [HIDDEN]  # a seek to the first shown frame
        picks = [20, 3, 0, 25, 11, 11]
        assert decode_index(r.get_frames(picks)) == [shown[i] for i in picks]
        assert r.substituted == 0
    rec = probe_video(path, num_frames=2, sampling_rate=2, full=True)
    assert rec["frames"] == len(shown) and rec["decoded_frames"] == len(shown)
    assert not any(p.startswith(("unreadable", "damaged", "truncated")) for p in rec["problems"])
    assert decode_all(path) == (len(shown), "")
