"""Fuzz through `timesformer predict`: corrupted videos in one run of the command.

Every file either gets a prediction or one `error:` line naming it; the process never shows a
traceback, never crashes, never hangs (the whole run is bounded), and exits 1 when any failed.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import torch
from _video_helpers import index_frames
from test_reader_fuzz import SOURCES, corrupt

from timesformer.data.synthetic import write_video
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint

CASES = 120


def test_predict_survives_corrupted_videos(tmp_path: Path) -> None:
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=2, embed_dim=16, depth=1,
                            num_heads=1, num_classes=3)  # fmt: skip
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(TimeSformer(cfg).eval(), ckpt)
    rng = random.Random(11)
    originals = {}
    for name, kw in SOURCES.items():
        write_video(tmp_path / f"src_{name}", index_frames(24, 48, 64), fps=24, **kw)
        originals[name] = (tmp_path / f"src_{name}").read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(CASES):
        name = rng.choice(sorted(originals))
        _, data = corrupt(originals[name], rng)
        (bad / f"c{i:03d}_{name}").write_bytes(data)
    cmd = [sys.executable, "-m", "timesformer.cli", "predict", str(bad), "-c", str(ckpt),
           "--views", "1x1", "--no-progress", "--json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    import json

    out = json.loads(proc.stdout)
    seen = {Path(r["path"]).name for r in out["predictions"]}
    seen |= {Path(e["path"]).name for e in out["errors"]}
    assert len(seen) == CASES, "every file is predicted or named as failed"
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == len(out["errors"])
    assert all(line.startswith("timesformer predict: error:") for line in errors)
    assert proc.returncode == (1 if out["errors"] else 0)
    assert torch.isfinite(torch.tensor([r["prob"] for r in out["predictions"]])).all()
