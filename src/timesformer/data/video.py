"""Video decoding on PyAV: metadata, exact frames by index or time, streaming clips.

Frame index ``i`` always means the i-th frame in presentation order (sorted by timestamp), so
results are exact for B-frames, sparse keyframes, variable frame rate and containers that do
not state a frame count (an MPEG-PS whose timestamps mislabel B-frames is read by counting
frames decoded from its start instead, see ``data/index.py``). Frames are located through a packet index (``data/index.py``: a
demux-only scan, no decoding, done once per file and cached in memory and optionally on disk,
so opening a long video again costs no more than opening a short one), then each needed range
is decoded once: seek to the keyframe at or before its first frame, decode forward, convert to
RGB only the frames that are returned (converting costs several times more than decoding), and
seek again only when a later keyframe lets the decoder skip frames nobody asked for.

The frame rate is exact: ``frame_rate`` is a ``fractions.Fraction`` taken from the stream's
stated rate (average, guessed, then base rate) when it agrees with the timestamps (it predicts
the last frame's time to within half a frame), else measured from the timestamps; ``fps`` is
the same as a float, for display.

Problems that do not stop reading (a file cut short, a demux error) are warnings: a
``VideoReadWarning`` (``VideoTruncatedWarning`` for a file that ends early) is emitted with
the reason and kept in ``VideoReader.warnings`` so commands can record it. Inputs that are not
video files (an image, a folder, a URL) raise ``NotAVideoError``, a VideoDecodeError.

Only PyAV is used: TorchCodec 0.17.0 is installed beside torch 2.13.0 here but fails to load
(libtorchcodec_image.so), see docs/data.md.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from ..files import missing_reason, printable_path
from .index import PacketIndex, packet_index
from .index import ffmpeg_reason as _err
from .refusals import declared_size_reason, frame_size_reason, image_kind, max_frame_pixels
from .rotation import display_rotation, upright

log = logging.getLogger(__name__)

# what folder scans take as videos, in every command (predict, extract, data check/prepare/lists,
# class-folder datasets); an animated .gif is a video, a still one is refused per file as an image
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ogv", ".flv", ".3gp", ".wmv",
    ".ts", ".mts", ".m2ts", ".mxf", ".gif",
)  # fmt: skip

# Seeking costs about as much as decoding a few frames: skip ahead only past more than this.
_SEEK_MIN_GAP = 8
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # http://, rtsp://, s3://, also "http:/x"


def exact_rate(
    first: int, last: int, frames: int, tb: Fraction, stream: av.VideoStream
) -> Fraction:
    """Frames per second: the stated rate that agrees with the timestamps (the last frame's
    time predicted to within half a frame), else the measured ``(frames - 1) / span``."""
    span = (last - first) * tb  # seconds, exact
    rates = (stream.average_rate, stream.guessed_rate, stream.base_rate)
    stated = [Fraction(r) for r in rates if r and 0 < r <= 1000]
    if frames < 2 or span <= 0:
        return stated[0] if stated else Fraction(30)
    for rate in stated:
        if abs(span * rate - (frames - 1)) <= Fraction(1, 2):
            return rate
    return Fraction(frames - 1) / span


class VideoDecodeError(RuntimeError):
    """A video cannot be read: missing, unreadable, truncated, zero frames or no video stream.

    The message names the path and the reason; both are also kept as attributes.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read video {printable_path(self.path)}: {reason}")


def stated_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    """The duration in seconds the stream's (else the container's) header states, if any. The
    container's counts only without other streams: with audio it may be the audio's (a video
    that starts late, or ends early, is not a cut file)."""
    alone = len(container.streams) == len(container.streams.video)
    whole = container.duration / 1_000_000 if container.duration else None  # microseconds
    if stream.duration and stream.time_base:
        own = float(stream.duration * stream.time_base)
        if alone or whole is None or abs(own - whole) > 1e-3:
            return own
        return None  # Matroska gives every track the file's duration: maybe the audio's
    return whole if alone else None


def truncation(stated: float | None, found_s: float, fps: float) -> str | None:
    """ "truncated: ..." where a header states a duration well beyond the `found_s` seconds the
    frames cover (a cut .mkv/.webm demuxes cleanly and keeps its header's duration), else None."""
    if stated is None:
        return None
    slack = max(0.5, 3.0 / max(fps, 1e-3), 0.01 * stated)
    if stated - found_s <= slack:
        return None
    return f"truncated: the container states {stated:.2f} s, the frames found cover {found_s:.2f} s"


class NotAVideoError(VideoDecodeError):
    """The path is not a video file: an image, a folder or a URL (the reason says which)."""


def video_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    """The video stream to read: FFmpeg's best one (`av_find_best_stream`: cover art skipped,
    the main stream over a thumbnail track), else the first; None without video."""
    streams = container.streams.video
    if not streams:
        return None
    try:
        best = container.streams.best("video")
    except (av.FFmpegError, ValueError):
        best = None
    return best if best is not None else streams[0]


def check_video_file(path: str | Path) -> None:
    """Raise VideoDecodeError (NotAVideoError for a folder or an empty file) unless `path` is a
    non-empty file this process may read: one reason per case, before FFmpeg sees it."""
    if not str(path):
        raise VideoDecodeError(path, "an empty path, not a video file")
    try:
        if Path(path).is_dir():
            raise NotAVideoError(path, "a folder, not a video file")
        if not Path(path).is_file():
            raise VideoDecodeError(path, missing_reason(path))
        size = os.path.getsize(path)
    except PermissionError:
        raise VideoDecodeError(path, "permission denied (a folder on its path)") from None
    if size == 0:
        raise NotAVideoError(path, "an empty file (0 bytes), not a video")
    if not os.access(path, os.R_OK):
        raise VideoDecodeError(path, "permission denied (the file is not readable)")


class VideoReadWarning(UserWarning):
    """A video was read, but not cleanly (e.g. a demux error ended the packet scan early)."""


class VideoTruncatedWarning(VideoReadWarning):
    """A video ends before its container says it should: it is read as a shorter video."""


def no_video_reason(container: av.container.InputContainer) -> str:
    """Why a container has no video stream, from the streams it does have."""
    kinds = [s.type for s in container.streams]
    if "audio" in kinds and all(k in ("audio", "subtitle", "data") for k in kinds):
        return "no video stream (audio only)"
    if not kinds:
        return "no video stream: no streams at all (a damaged or incomplete header?)"
    held = ", ".join(f"{n} {k}" for k, n in sorted(Counter(kinds).items()))
    return f"no video stream, only {held} stream{'s' if len(kinds) > 1 else ''} (a damaged header?)"


def pixel_aspect(stream: av.video.stream.VideoStream) -> Fraction:
    """A video stream's sample (pixel) aspect ratio, width / height: the container's, else the
    bitstream's; 1 when neither states one (0/1 means unknown in FFmpeg)."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar and sar.numerator > 0 and sar.denominator > 0:
            return Fraction(sar.numerator, sar.denominator)
    return Fraction(1)


class VideoReader:
    """Random access to the frames of one video file (a context manager).

    Attributes: ``num_frames`` (exact: the number of video packets with a timestamp, counted by
    demuxing), ``frame_rate`` (exact ``Fraction``, see the module docstring), ``fps`` (the same
    as a float), ``duration`` (seconds), ``height``, ``width``, ``codec``, ``path``,
    ``warnings`` (reasons of the VideoReadWarnings emitted for this file), ``index_source``
    ("scan", "memory" or "disk": where the packet index came from). ``threads``: decoder
    threads (1 suits DataLoader workers; 0 lets FFmpeg choose). ``index_dir``: a folder for
    on-disk packet indexes (default: $TIMESFORMER_VIDEO_INDEX_DIR, else memory only);
    ``cache_index=False`` always scans. ``rotation``: the display rotation (clockwise degrees,
    0/90/180/270, see data/rotation.py); with ``upright=True`` (default) frames come out turned
    for display and ``width``/``height`` are the displayed ones; ``upright=False`` keeps them as
    stored. ``sample_aspect_ratio``: the shape of a stored pixel (width / height, a Fraction; 1
    for square or unstated); frames come out as stored, as in the reference pipelines, so an
    anamorphic video is read squeezed (``data check`` says so, ``data prepare`` makes the pixels
    square). Raises VideoDecodeError on open for a missing file, an unreadable container, no
    video stream (e.g. audio only) or zero frames, and NotAVideoError for an image, a folder or
    a URL.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int = 1,
        index_dir: str | Path | None = None,
        cache_index: bool = True,
        upright: bool = True,
    ) -> None:
        self.path = str(path)
        self.warnings: list[str] = []
        if isinstance(path, str) and _URL.match(path):
            raise NotAVideoError(path, "URLs are not read; download the file first")
        check_video_file(path)
        try:
            self._container = av.open(self.path, metadata_errors="ignore")
        except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as e:
            why = declared_size_reason(path)  # FFmpeg: "Device or resource busy" for a Y4M's
            raise VideoDecodeError(
                path, why or f"cannot open: truncated, corrupt or not a media file ({_err(e)})"
            ) from e
        try:
            stream = video_stream(self._container)
            if stream is None:
                raise VideoDecodeError(path, no_video_reason(self._container))
            self._stream = stream
            if self._stream.codec_context is None:
                raise VideoDecodeError(path, "no decoder for its video stream (unknown codec)")
            if threads != 1:
                self._stream.thread_type = "AUTO"
                self._stream.thread_count = max(threads, 0)
            index, self.index_source = packet_index(
                self._container, self._stream, self.path, index_dir=index_dir,
                use_cache=cache_index,
            )  # fmt: skip
            self._use_index(index)
            cc = self._stream.codec_context
            self.codec: str = cc.name
            self._refuse_images()  # before the size: a huge photo is an image, not too large
            too_large = frame_size_reason(int(cc.width or 0), int(cc.height or 0))
            if too_large:
                raise VideoDecodeError(path, too_large)
        except BaseException:
            self._container.close()
            raise
        self.height: int = int(cc.height or self._stream.height)
        self.width: int = int(cc.width or self._stream.width)
        self._stored_size = (self.height, self.width)  # as decoded, before any turn
        self._rescaled = False  # a frame of another size has been seen (and said)
        self.rotation: int = display_rotation(self._container, self._stream)
        self.sample_aspect_ratio: Fraction = pixel_aspect(self._stream)
        self._turn = self.rotation if upright else 0  # clockwise degrees applied to frames
        if self._turn in (90, 270):
            self.width, self.height = self.height, self.width
        self.substituted = 0  # frames the decoder never produced, replaced by a neighbour
        # skip decoding non-reference frames nobody asked for (single-threaded decoding only;
        # turned off for good if a wanted frame ever goes missing while skipping)
        self._skip_ok = threads == 1 and not self._in_order  # a skipped frame is not counted

    # ------------------------------------------------------------------ index
    def _warn(self, reason: str, category: type[VideoReadWarning] = VideoReadWarning) -> None:
        """Emit a warning for this file and keep its reason in ``self.warnings``."""
        self.warnings.append(reason)
        warnings.warn(f"video {printable_path(self.path)}: {reason}", category, stacklevel=3)

    def _refuse_images(self) -> None:
        """NotAVideoError for a still image (an image container, or one frame of an image
        codec); a one-frame video in a video container stays a video."""
        kind = image_kind(self._container.format.name, self.codec, self.num_frames)
        if kind:
            raise NotAVideoError(self.path, f"an image ({kind}), not a video")

    def _use_index(self, index: PacketIndex) -> None:
        """Take frame timestamps, keyframes and timing from the packet index."""
        for note in index.notes:
            self._warn(note)
        if not index.num_frames:
            n = index.stated_frames  # a file cut inside its first frame's data
            cut = f" (truncated: the container states {n} frames)" if n else ""
            raise VideoDecodeError(self.path, f"zero video frames{cut}")
        pts = index.pts.tolist()
        stated = index.stated_frames
        if stated > 0 and len(pts) < stated - max(2, stated // 50):
            raise VideoDecodeError(
                self.path, f"truncated: the container states {stated} frames, {len(pts)} present"
            )
        repeated = len(pts) - len(set(pts))
        if repeated:
            self._warn(
                f"{repeated} of {len(pts)} frames repeat another frame's timestamp (a stream whose "
                "clock restarts, e.g. joined files?): frames are ordered by timestamp, and those "
                "come back as their namesakes"
            )
        self._pts: list[int] = pts  # presentation order
        # timestamps that label some frames wrongly (data/index.py): frames are counted instead
        self._in_order = index.by_order
        self._listed = set(pts)
        self._keys: list[int] = index.keys.tolist()
        first = self._pts[0]
        tb = self._stream.time_base
        self._tb = Fraction(tb) if tb else Fraction(1, 30)
        self._time_base = float(self._tb)
        self.num_frames: int = len(self._pts)
        self.frame_rate: Fraction = self._exact_rate()
        self.fps: float = float(self.frame_rate)
        span = (self._pts[-1] - first) * self._time_base
        self.duration: float = span + 1.0 / self.fps
        if stated > len(pts):
            self._warn(
                f"truncated: the container states {stated} frames, {len(pts)} present",
                VideoTruncatedWarning,
            )
        else:
            self._check_duration()
        self._seek_to(first)

    def _exact_rate(self) -> Fraction:
        return exact_rate(self._pts[0], self._pts[-1], self.num_frames, self._tb, self._stream)

    def _check_duration(self) -> None:
        """VideoTruncatedWarning when the container states a duration well beyond the frames
        found (a cut .mkv/.webm has no frame count, only a duration in its header)."""
        stated = stated_duration(self._container, self._stream)
        note = truncation(stated, self.duration, self.fps)
        if note:
            self._warn(f"{note} ({self.num_frames} frames)", VideoTruncatedWarning)

    def _seek_to(self, pts: int | None) -> None:
        """Seek to the keyframe at ``pts`` (None: the very start)."""
        try:
            if pts is None:
                self._container.seek(0)
            else:
                self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
        except (av.FFmpegError, OSError) as e:
            raise VideoDecodeError(self.path, f"seek failed ({_err(e)})") from e

    def _frame_index(self, pts: int | None) -> int:
        """Presentation index of a decoded frame (the last listed frame at or before ``pts``)."""
        if pts is None:
            return -1
        return bisect.bisect_right(self._pts, pts) - 1

    def _key_before(self, index: int) -> int:
        """Timestamp of the last keyframe at or before frame ``index``."""
        j = bisect.bisect_right(self._keys, self._pts[index]) - 1
        return self._keys[max(j, 0)]

    def _seek_for(self, index: int, back: int) -> tuple[int, bool]:
        """Seek so that decoding starts at or before frame ``index``; return the keyframe
        timestamp aimed at and whether decoding restarts from the very beginning. ``back = 0`` seeks to the frame's own timestamp (FFmpeg lands on the
        keyframe before it; seeking to the keyframe's timestamp can land one keyframe early in
        mp4, whose index counts decode time); ``back = k`` aims k keyframes earlier, used when a
        seek overshoots; past the first keyframe it decodes from the start."""
        j = bisect.bisect_right(self._keys, self._pts[index]) - 1 - back
        if j < 0 or (back > 0 and j == 0):
            self._seek_to(None)
            return self._keys[0], True
        self._seek_to(self._pts[index] if back == 0 else self._keys[j])
        return self._keys[j], False

    # ------------------------------------------------------------------ decoding
    def _decode_forward(self, wanted: set[int] | None) -> Iterator[av.VideoFrame]:
        """Decode from the current position. With ``wanted`` (timestamps), packets of other
        frames are decoded with ``skip_frame="NONREF"``: a non-reference frame nobody asked for
        is not decoded at all (about a third of an H.264 stream with B-frames), while every
        frame another frame depends on still is."""
        cc = self._stream.codec_context
        try:
            for packet in self._container.demux(self._stream):
                if packet.is_corrupt and packet.pts not in self._listed:
                    continue  # a cut-short last packet, left out of the index
                if wanted is not None:
                    skip = packet.pts is not None and packet.pts not in wanted
                    cc.skip_frame = "NONREF" if skip else "DEFAULT"
                yield from packet.decode()
        finally:
            if wanted is not None:
                cc.skip_frame = "DEFAULT"

    def _decode_sorted(self, needed: list[int]) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield ``(index, frame)`` for the sorted unique ``needed`` indices, decoding each
        range once (a VideoDecodeError if the stream ends before a needed frame).

        A seek that lands after the frame it was meant for (a keyframe flag the decoder does
        not honour) is retried one keyframe earlier, at worst from the start; one that lands
        earlier just decodes forward. Decoding jumps ahead only after a pass has returned a
        frame and only to a keyframe beyond the one aimed at, so every pass makes progress.
        """
        if self._in_order:
            yield from self._decode_counted(needed)
            return
        pos, back = 0, 0
        while pos < len(needed):
            aim, from_start = self._seek_for(needed[pos], back)
            start_pos = pos
            overshoot = jumped = retry = False
            first = True
            wanted = {self._pts[i] for i in needed[pos:]} if self._skip_ok else None
            frames = self._decode_forward(wanted)
            try:
                for frame in frames:
                    idx = self._frame_index(frame.pts)
                    if first and idx > needed[pos] and not from_start:
                        overshoot = True
                        break
                    first = False
                    if wanted is not None and needed[pos] < idx:
                        self._skip_ok = False  # a wanted frame went missing: no more skipping
                        retry = True
                        break
                    shape_ok = (frame.height, frame.width) == self._stored_size
                    if not shape_ok and needed[pos] <= idx:  # a frame returned: check its size
                        self._check_resized(frame, idx)
                    while pos < len(needed) and needed[pos] <= idx:
                        if needed[pos] < idx:
                            self.substituted += 1  # the decoder never produced it: use the next
                        yield needed[pos], frame
                        pos += 1
                    if pos == len(needed):
                        return
                    nxt_key = self._key_before(needed[pos])
                    if (
                        pos > start_pos
                        and nxt_key > aim
                        and self._frame_index(nxt_key) - idx > _SEEK_MIN_GAP
                    ):
                        jumped = True  # a later keyframe lets us skip frames nobody asked for
                        break
            except av.FFmpegError as e:
                raise VideoDecodeError(
                    self.path, f"decoding failed near frame {needed[pos]} ({_err(e)})"
                ) from e
            finally:
                frames.close()
            if retry:
                continue
            if overshoot:
                back += 1
            elif jumped:
                back = 0
            elif not from_start:
                # the stream ended before the frame after a seek (MPEG-TS seeks by byte
                # position and can land past the frame's keyframe): once more from the start
                back = len(self._keys)
            else:
                raise VideoDecodeError(
                    self.path,
                    f"frame {needed[pos]} of {self.num_frames} could not be decoded "
                    "(truncated or corrupt file?)",
                )

    def _decode_counted(self, needed: list[int]) -> Iterator[tuple[int, av.VideoFrame]]:
        """``_decode_sorted`` for a stream whose timestamps mislabel frames: decode from the
        start and take the i-th frame out of the decoder as frame i (decoders put out frames in
        presentation order)."""
        self._seek_to(None)
        pos = 0
        frames = self._decode_forward(None)
        try:
            for idx, frame in enumerate(frames):
                if needed[pos] == idx and (frame.height, frame.width) != self._stored_size:
                    self._check_resized(frame, idx)
                while pos < len(needed) and needed[pos] == idx:
                    yield idx, frame
                    pos += 1
                if pos == len(needed):
                    return
        except av.FFmpegError as e:
            raise VideoDecodeError(
                self.path, f"decoding failed near frame {needed[pos]} ({_err(e)})"
            ) from e
        finally:
            frames.close()
        raise VideoDecodeError(
            self.path, f"frame {needed[pos]} of {self.num_frames} could not be decoded "
            "(counted from the start: truncated or corrupt file?)",
        )  # fmt: skip

    def _check_resized(self, frame: av.VideoFrame, idx: int) -> None:
        """A frame of another size (legal in MPEG-TS, H.264): past the pixel limit refused."""
        if frame.width * frame.height > max_frame_pixels():
            raise VideoDecodeError(
                self.path,
                f"frame {max(idx, 0)} is {frame.width}x{frame.height}, larger than the "
                f"{max_frame_pixels() / 1e6:.3g} MP this reads",
            )
        if not self._rescaled:
            self._rescaled = True
            h, w = self._stored_size
            self._warn(f"the frame size changes mid-stream (frame {max(idx, 0)} is {frame.width}x"
                       f"{frame.height}, the stream {w}x{h}): scaled to the stream's size")  # fmt: skip

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        h, w = self._stored_size
        if (frame.height, frame.width) != (h, w):  # a mid-stream size change: the stream's size
            frame = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA")
        return upright(frame.to_ndarray(format="rgb24"), self._turn)  # (H, W, 3) uint8

    def _check(self, indices: Sequence[int]) -> list[int]:
        idx = [int(i) for i in indices]
        for i in idx:
            if not 0 <= i < self.num_frames:
                raise IndexError(
                    f"frame {i} out of range for {self.path} ({self.num_frames} frames)"
                )
        return idx

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at ``indices`` as uint8 (T, H, W, 3) RGB, in the order asked (repeats allowed).

        Indices outside ``[0, num_frames)`` are an IndexError; a decode failure is a
        VideoDecodeError.
        """
        idx = self._check(indices)
        if not idx:
            return torch.empty(0, self.height, self.width, 3, dtype=torch.uint8)
        got: dict[int, np.ndarray] = {}
        for i, frame in self._decode_sorted(sorted(set(idx))):
            got[i] = self._to_rgb(frame)
        return torch.from_numpy(np.stack([got[i] for i in idx]))  # (T, H, W, 3)

    def time_of(self, position: float) -> float:
        """Seconds from the first frame to frame ``position`` by the timestamps (variable frame
        rates included); a fractional position lies between its two frames' times, one past the
        last frame at the video's rate."""
        if position <= 0:
            return 0.0
        i = min(math.floor(position), self.num_frames - 1)
        t = (self._pts[i] - self._pts[0]) * self._time_base
        nxt = (
            (self._pts[i + 1] - self._pts[0]) * self._time_base
            if i + 1 < self.num_frames
            else t + 1.0 / self.fps
        )
        return float(t + (position - i) * (nxt - t))

    def index_at(self, time: float) -> int:
        """Index of the frame shown at ``time`` seconds from the start (clamped to the video)."""
        target = self._pts[0] + time / self._time_base
        i = bisect.bisect_right(self._pts, target + 1e-6) - 1
        return min(max(i, 0), self.num_frames - 1)

    def get_frames_at(self, times: Sequence[float]) -> torch.Tensor:
        """Frames shown at ``times`` (seconds from the start) as uint8 (T, H, W, 3) RGB."""
        return self.get_frames([self.index_at(t) for t in times])

    def iter_clips(self, clips: Sequence[Sequence[int]]) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(clip_position, frames (T, H, W, 3))`` for each clip, decoding forward once.

        Clips are yielded as soon as their last frame is decoded (for clips sorted by start, in
        order); decoded frames are kept only while a pending clip needs them, so memory stays
        bounded by the clips that overlap the decode position (long-video inference).
        """
        clips = [self._check(c) for c in clips]
        users: dict[int, int] = {}  # frame index -> number of pending clips that need it
        for c in clips:
            for i in set(c):
                users[i] = users.get(i, 0) + 1
        done_at: dict[int, list[int]] = {}  # last frame index -> clips completed there
        for k, c in enumerate(clips):
            if c:
                done_at.setdefault(max(c), []).append(k)
            else:
                yield k, torch.empty(0, self.height, self.width, 3, dtype=torch.uint8)
        cache: dict[int, np.ndarray] = {}
        for i, frame in self._decode_sorted(sorted(users)):
            cache[i] = self._to_rgb(frame)
            for k in done_at.get(i, []):
                yield k, torch.from_numpy(np.stack([cache[j] for j in clips[k]]))
                for j in set(clips[k]):
                    users[j] -= 1
                    if users[j] == 0:
                        del cache[j]

    def close(self) -> None:
        """Release the container."""
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"VideoReader({self.path!r}, frames={self.num_frames}, fps={self.fps:.3f}, "
            f"{self.width}x{self.height}, codec={self.codec})"
        )


def read_frames(path: str | Path, indices: Sequence[int]) -> torch.Tensor:
    """One-shot helper: ``VideoReader(path).get_frames(indices)`` -> uint8 (T, H, W, 3)."""
    with VideoReader(path) as reader:
        return reader.get_frames(indices)
