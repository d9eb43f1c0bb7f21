"""Fuzz: corrupted small videos (flipped bytes, cuts, damaged headers; mp4, mkv, webm, avi)
through VideoReader. Each either decodes or raises VideoDecodeError with one line: never
another exception type, a hang (bounded time per file) or a crashed process."""

from __future__ import annotations

import random
from pathlib import Path

import _fuzz_runner
from _video_helpers import index_frames

from timesformer.data.synthetic import write_video

CASES = 200
PER_FILE_S = 5  # the child's own alarm; the parent allows a little more before killing it
SOURCES = {
    "v.mp4": dict(codec="h264", gop=8, bframes=2),
    "v.mkv": dict(codec="h264", gop=8, bframes=2),
    "v.webm": dict(codec="vp9", gop=8),
    "v.avi": dict(codec="mpeg4", gop=8, bframes=2),
}


def corrupt(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One seeded corruption of ``data``, with its name."""
    b = bytearray(data)
    kind = rng.choice(["flip", "header", "cut", "cut+flip", "zero-block", "swap-blocks"])
    if kind in ("flip", "cut+flip"):
        for _ in range(rng.randint(1, 40)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    if kind == "header":
        for _ in range(rng.randint(1, 12)):
            b[rng.randrange(min(600, len(b)))] = rng.randrange(256)
    if kind in ("cut", "cut+flip"):
        del b[rng.randint(0, len(b) - 1) :]
    if kind == "zero-block":
        a = rng.randrange(len(b))
        b[a : a + rng.randint(16, 2048)] = bytes(len(b[a : a + rng.randint(16, 2048)]))
    if kind == "swap-blocks":
        n = rng.randint(64, 1024)
        i, j = rng.randrange(len(b) - n), rng.randrange(len(b) - n)
        b[i : i + n], b[j : j + n] = b[j : j + n], b[i : i + n]
    return kind, bytes(b)


def run_children(paths: list[Path]) -> dict[int, str]:
    """Read every path in child processes (see tests/_fuzz_runner.py): case -> outcome line."""
    return _fuzz_runner.run_children(Path(__file__).with_name("_fuzz_child.py"), paths, PER_FILE_S)


def test_corrupted_videos_decode_or_fail_with_one_reader_error(tmp_path):
    frames = index_frames(24)
    sources = {}
    for name, opts in SOURCES.items():
        write_video(tmp_path / name, frames, 30.0, **opts)
        sources[name] = (tmp_path / name).read_bytes()
    rng = random.Random(1234)
    paths, kinds = [], []
    for k in range(CASES):
        name = list(sources)[k % len(sources)]
        kind, data = corrupt(sources[name], rng)
        p = tmp_path / f"case{k:03d}{Path(name).suffix}"
        p.write_bytes(data)
        paths.append(p)
        kinds.append(f"{kind} {name}")
    outcome = run_children(paths)
    bad = {f"{k} ({kinds[k]})": v for k, v in outcome.items() if not v.startswith("DONE")}
    assert not bad, bad
    decoded = sum(v == "DONE decoded" for v in outcome.values())
    assert len(outcome) == CASES and 0 < decoded < CASES  # both outcomes occur
