"""Packet index of a video file: frame timestamps and keyframes, built once and reused.

Finding frame ``i`` exactly needs every frame's presentation timestamp, which only a demux of
the whole file gives (tens of milliseconds for a 10-minute video, more than decoding a clip).
The index is built once per file and kept:

- in memory, per process (each DataLoader worker has its own), in a least-recently-used cache
  bounded by the number of frames it holds (``MEMORY_BUDGET_FRAMES``, 8 bytes a frame);
- optionally on disk, in a folder given as ``index_dir`` (or the environment variable
  ``TIMESFORMER_VIDEO_INDEX_DIR``): one ``.tsidx.npz`` per video, named by a hash of its path,
  written atomically and read without pickle, so other processes and later runs skip the scan.

Either copy is used only while the file's path, size and modification time are unchanged.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..files import atomic_write

INDEX_DIR_ENV = "TIMESFORMER_VIDEO_INDEX_DIR"
MEMORY_BUDGET_FRAMES = 4_000_000  # about 32 MB of timestamps per process (37 h at 30 fps)
_FORMAT_VERSION = 3  # 3: by_order; 2: packets an edit list hides are left out (1 counted them)
# A stream whose timestamps repeat but fill a regular grid (MPEG-PS with B-frames) is read by
# counting frames from its start: exact, but every read decodes from the start, so only this long
ORDER_MAX_FRAMES = 3000

FileKey = tuple[str, int, int]  # (real path, size in bytes, mtime in ns)


@dataclass(frozen=True)
class PacketIndex:
    """Timestamps of one video stream: ``pts`` (int64, presentation order, one per frame),
    ``keys`` (int64, sorted keyframe timestamps, the first frame always included),
    ``stated_frames`` (the container's frame count, 0 if it states none) and ``notes``
    (problems met while scanning, e.g. a demux error that ended the scan early)."""

    pts: np.ndarray
    keys: np.ndarray
    stated_frames: int
    notes: tuple[str, ...] = ()
    by_decoding: bool = False  # timestamps came from decoding (packets carried none)
    by_order: bool = False  # frames are found by counting decoded frames, not by timestamp

    @property
    def num_frames(self) -> int:
        """Number of frames (timestamps) in the index."""
        return int(self.pts.shape[0])


def ffmpeg_reason(e: BaseException) -> str:
    """A short reason from an FFmpeg/OS exception."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, av.FFmpegError) and isinstance(e, PermissionError):
        # FFmpeg's decoders report some damaged packets as EPERM, which PyAV raises as a
        # PermissionError: it is about the data, not file permissions
        return f"damaged data (FFmpeg: {getattr(e, 'strerror', None) or text})"
    if isinstance(e, av.FFmpegError) and getattr(e, "strerror", None):
        return f"FFmpeg: {e.strerror}"  # without the errno number and the file name again
    return f"{type(e).__name__}: {text}"


def scan_packets(container: av.container.InputContainer, stream: av.VideoStream) -> PacketIndex:
    """Demux ``stream`` (no decoding) into a PacketIndex; packets without timestamps fall back
    to decoding every frame. An empty index means the stream has no frames. Packets an edit
    list hides (before a trimmed mp4's start) are not frames: players, and FFmpeg's decoder,
    never show them."""
    pts: list[int] = []
    keys: list[int] = []
    notes: list[str] = []
    by_decoding = cut = False
    hidden = 0  # packets before an edit list's start (a trimmed mp4): decoded, never shown
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.is_discard:  # FFmpeg's decoder drops these frames: they are not frames
                hidden += 1
                continue
            if packet.pts is None:
                pts = []  # timestamps unknown: fall back to counting by decoding
                break
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
            cut = packet.is_corrupt  # the demuxer read less than the packet's stated size
    except (av.FFmpegError, OSError) as e:
        notes.append(f"demux stopped early after {len(pts)} frames ({ffmpeg_reason(e)})")
    if cut and pts:  # the file ends inside its last packet: that frame cannot be decoded
        lost = pts.pop()
        keys = [k for k in keys if k != lost]
        notes.append(
            f"truncated: the file ends inside its last frame's data ({len(pts)} frames kept)"
        )
    if not pts:
        by_decoding = True
        try:
            container.seek(0)
            for i, frame in enumerate(container.decode(stream)):
                p = frame.pts if frame.pts is not None else i
                pts.append(p)
                if frame.key_frame:
                    keys.append(p)
        except (av.FFmpegError, OSError) as e:
            notes.append(f"decoding stopped early after {len(pts)} frames ({ffmpeg_reason(e)})")
    order = np.sort(np.asarray(pts, dtype=np.int64))  # (N,) presentation order
    grid = regular_timeline(order, stream)
    by_order = grid is not None
    if by_order:  # misplaced timestamps: the true ones, and decoding starts at the start
        order, keys = grid, grid[:1].tolist()
    k = np.unique(np.asarray(keys, dtype=np.int64))
    if len(order):
        k = k[k >= order[0]]
        if not len(k) or k[0] != order[0]:
            k = np.concatenate([order[:1], k])  # decoding from the start always works
    # an edit list makes the stated count unreliable: it counts hidden samples, some of which
    # the demuxer leaves out altogether; the stated duration (the shown part) still checks a cut
    stated = 0 if hidden else int(stream.frames or 0)
    return PacketIndex(order, k, stated, tuple(notes), by_decoding, by_order)


def regular_timeline(pts: np.ndarray, stream: av.VideoStream) -> np.ndarray | None:
    """The true timestamps of sorted ``pts`` that repeat some values yet lie on the grid of
    the stream's stated rate, spanning exactly one grid step a frame (an MPEG-PS muxer gives a
    few B-frame GOPs the timestamps of their neighbours: their frames still decode in order,
    and only their labels are wrong), else None (no repeats, a clock that restarts, or more
    than ORDER_MAX_FRAMES frames: counting them is not worth a decode from the start)."""
    rate = stream.average_rate or stream.guessed_rate
    if (
        not 2 <= len(pts) <= ORDER_MAX_FRAMES
        or not rate
        or not stream.time_base
        or len(np.unique(pts)) == len(pts)
    ):
        return None
    step = 1 / (Fraction(rate) * Fraction(stream.time_base))  # ticks a frame
    grid = pts[0] + np.array([round(i * step) for i in range(len(pts))], dtype=np.int64)
    if abs(int(grid[-1]) - int(pts[-1])) > 1:
        return None  # the timestamps span fewer (or more) frames than there are
    slot = np.rint((pts - pts[0]) / float(step)).astype(np.int64)  # each one's grid point
    if slot[-1] >= len(grid) or np.any(np.abs(grid[slot] - pts) > 1):
        return None  # off the grid: a variable or restarting clock, not misplaced labels
    return grid


def file_key(path: str | Path) -> FileKey:
    """(real path, size, mtime_ns) of ``path``: an index is valid while these are unchanged."""
    st = os.stat(path)
    return os.path.realpath(path), int(st.st_size), int(st.st_mtime_ns)


class IndexCache:
    """Least-recently-used PacketIndex cache bounded by the total number of frames held."""

    def __init__(self, budget_frames: int = MEMORY_BUDGET_FRAMES) -> None:
        self.budget_frames = int(budget_frames)
        self._items: OrderedDict[FileKey, PacketIndex] = OrderedDict()
        self._frames = 0
        self.hits = self.misses = 0

    def get(self, key: FileKey) -> PacketIndex | None:
        """The cached index for ``key`` (and mark it recently used), or None."""
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item

    def put(self, key: FileKey, index: PacketIndex) -> None:
        """Keep ``index``; drop the least recently used ones beyond the budget."""
        if index.num_frames > self.budget_frames:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._frames -= old.num_frames
        self._items[key] = index
        self._frames += index.num_frames
        while self._frames > self.budget_frames:
            _, dropped = self._items.popitem(last=False)
            self._frames -= dropped.num_frames

    def clear(self) -> None:
        """Forget every index (tests and benchmarks measure cold opens with it)."""
        self._items.clear()
        self._frames = 0

    def __len__(self) -> int:
        return len(self._items)


MEMORY_CACHE = IndexCache()  # one per process: DataLoader workers each fill their own


def index_dir_for(index_dir: str | Path | None) -> Path | None:
    """The on-disk index folder: ``index_dir``, else $TIMESFORMER_VIDEO_INDEX_DIR, else None."""
    chosen = index_dir if index_dir is not None else os.environ.get(INDEX_DIR_ENV) or None
    return Path(chosen) if chosen else None


def _disk_path(folder: Path, key: FileKey) -> Path:
    digest = hashlib.sha256(key[0].encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return folder / f"{digest}.tsidx.npz"


def load_disk_index(folder: Path, key: FileKey) -> PacketIndex | None:
    """The stored index for ``key`` from ``folder``, or None if absent, stale or unreadable."""
    path = _disk_path(folder, key)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = z["meta"].tolist()
            if meta[:3] != [_FORMAT_VERSION, key[1], key[2]] or str(z["path"]) != key[0]:
                return None
            notes = tuple(str(n) for n in z["notes"].tolist())
            return PacketIndex(
                z["pts"], z["keys"], int(meta[3]), notes, bool(meta[4]), bool(meta[5])
            )
    except (OSError, ValueError, KeyError, IndexError):
        return None


def save_disk_index(folder: Path, key: FileKey, index: PacketIndex) -> None:
    """Store ``index`` in ``folder`` atomically (best effort: a failed write is not an error)."""
    meta = np.array(
        [
            _FORMAT_VERSION,
            key[1],
            key[2],
            index.stated_frames,
            int(index.by_decoding),
            int(index.by_order),
        ],
        np.int64,
    )

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(
                f, meta=meta, path=np.array(key[0]), pts=index.pts, keys=index.keys,
                notes=np.array(list(index.notes), dtype=str),
            )  # fmt: skip

    try:
        atomic_write(_disk_path(folder, key), write, durable=False)
    except OSError:
        pass


def packet_index(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    path: str | Path,
    *,
    index_dir: str | Path | None = None,
    use_cache: bool = True,
) -> tuple[PacketIndex, str]:
    """The PacketIndex of ``stream`` in ``path`` and where it came from ("memory", "disk" or
    "scan"): the memory cache, then the disk folder (see :func:`index_dir_for`), then a scan
    (stored in both). ``use_cache=False`` always scans and stores nothing."""
    if not use_cache or stream.index != container.streams.video[0].index:
        # keys name the file, not the stream: only the first video stream is cached
        return scan_packets(container, stream), "scan"
    key = file_key(path)
    hit = MEMORY_CACHE.get(key)
    if hit is not None:
        return hit, "memory"
    folder = index_dir_for(index_dir)
    if folder is not None:
        hit = load_disk_index(folder, key)
        if hit is not None:
            MEMORY_CACHE.put(key, hit)
            return hit, "disk"
    index = scan_packets(container, stream)
    if index.num_frames and not index.notes:  # a damaged file is scanned again next time
        MEMORY_CACHE.put(key, index)
        if folder is not None:
            save_disk_index(folder, key, index)
    return index, "scan"
