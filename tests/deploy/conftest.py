"""A tiny checkpoint, rendered videos and a real server process on 127.0.0.1 for the deploy tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from timesformer.data import write_video
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint

NAMES = ["left", "right", "up"]


def tiny_model(attention_type: str = "divided_space_time", depth: int = 1) -> TimeSformer:
    cfg = TimeSformerConfig(
        img_size=32, patch_size=16, num_frames=4, embed_dim=64, depth=depth, num_heads=2,
        num_classes=3, drop_path_rate=0.0, labels=NAMES, attention_type=attention_type,
    )  # fmt: skip
    torch.manual_seed(0)
    model = TimeSformer(cfg)
    with torch.no_grad():  # non-zero temporal parameters, so every path matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(tiny_model(), path)
    return path


def render(
    path: Path, seconds: float = 2.0, fps: int = 15, size: tuple[int, int] = (48, 64)
) -> Path:
    rng = np.random.default_rng(0)
    T, (H, W) = int(seconds * fps), size
    frames = rng.integers(0, 60, (T, H, W, 3), dtype=np.uint8)
    for t in range(T):
        x = (t * 2) % (W - 12)
        frames[t, 18:30, x : x + 12] = (220, 40, 40)
    write_video(path, frames, fps=fps)
    return path


@pytest.fixture(scope="session")
def video(tmp_path_factory) -> Path:
    return render(tmp_path_factory.mktemp("vid") / "clip.mp4")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    checkpoint: Path, *extra: str, env: dict | None = None
) -> tuple[subprocess.Popen, str]:
    """`timesformer serve` in a child process; returns (process, base URL) once /healthz answers.

    Its stderr (the access log) goes to a file, `proc.stderr_path`: a pipe nobody reads would
    fill up and stall the server."""
    port = free_port()
    cmd = [sys.executable, "-m", "timesformer.cli", "serve", "-c", str(checkpoint),
           "--port", str(port), *extra]  # fmt: skip
    log = Path(tempfile.mkdtemp(prefix="serve-log-")) / "stderr.txt"
    with open(log, "w") as err:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                stderr=err, text=True)  # fmt: skip
    proc.stderr_path = log  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start in 60 s")


@pytest.fixture(scope="session")
def server(checkpoint) -> Iterator[tuple[subprocess.Popen, str]]:
    proc, url = start_server(checkpoint, "--max-upload-mb", "1", "--max-duration", "30")
    yield proc, url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
