"""Fixtures for the data tests: small videos whose frames encode their own index."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: make _video_helpers importable

from _video_helpers import CODEC_CASES, NUM_FRAMES, index_frames  # noqa: E402

from timesformer.data.synthetic import write_video  # noqa: E402


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def index_videos(video_dir) -> dict[str, Path]:
    """One 120-frame index video per codec case, plus a variable-frame-rate H.264 mp4."""
    frames = index_frames(NUM_FRAMES)
    paths = {}
    for name, opts in CODEC_CASES.items():
        paths[name] = video_dir / name
        write_video(paths[name], frames, 30.0, **opts)
    return paths


@pytest.fixture(scope="session")
def vfr_video(video_dir) -> tuple[Path, list[int]]:
    """A variable-frame-rate mp4 (steps of 1-4 ticks of 1/60 s) and its timestamps."""
    rng = np.random.default_rng(5)
    pts = np.concatenate([[0], np.cumsum(rng.integers(1, 5, NUM_FRAMES - 1))]).tolist()
    path = video_dir / "vfr.mp4"
    write_video(path, index_frames(NUM_FRAMES), 30.0, gop=30, bframes=2, pts=pts,
                time_base=(1, 60))  # fmt: skip
    return path, pts
