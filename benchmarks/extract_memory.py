"""Peak memory of `extract --mode windows` against the video's length (it must stay flat).

Renders small H.264 videos (default 1 and 15 minutes, 96 x 64 at 30 fps, streamed to the
encoder so the renderer itself stays small), then runs the extraction of each in a fresh
process with a tiny model and reports windows, time and that process's peak RSS
(`ru_maxrss`; decoding workers, when asked for, are reported separately).

    PYTHONPATH=src python benchmarks/extract_memory.py [--minutes 1 15] [--workers 0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
from timesformer.engine.extract import extract
from timesformer.models import TimeSformer, TimeSformerConfig
torch.manual_seed(0)
cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=4, embed_dim=64, depth=2,
                        num_heads=2, num_classes=4)
model = TimeSformer(cfg).eval()
t = time.perf_counter()
(r,) = extract(model, sys.argv[1], mode="windows", sampling_rate=8, batch_size=16,
               workers=int(sys.argv[2]))
sec = time.perf_counter() - t
assert r.ok, r.error
print(json.dumps({"windows": len(r.windows), "seconds": sec, "duration": r.duration,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def render(path: Path, minutes: float, fps: int = 30, size: tuple[int, int] = (96, 64)) -> None:
    """A moving box over a slowly changing background, encoded frame by frame."""
    import av
    import numpy as np

    w, h = size
    n = int(minutes * 60 * fps)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "veryfast", "crf": "23"}
        frame = np.zeros((h, w, 3), np.uint8)
        for t in range(n):
            frame[:] = (t // fps) % 200 + 20
            x = (2 * t) % (w - 16)
            frame[20:36, x : x + 16] = (230, 40, 40)
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 15])
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.minutes:
            video = Path(tmp) / f"{m:g}min.mp4"
            t = time.perf_counter()
            render(video, m)
            made = time.perf_counter() - t
            out = subprocess.run([sys.executable, "-c", CHILD, str(video), str(args.workers)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r.update(minutes=m, render_s=made, mb=video.stat().st_size / 1e6)
            rows.append(r)
            print(json.dumps(r), file=sys.stderr)
    print("| video | windows | time | peak RSS (main) | peak RSS (workers) |")
    print("|---|---|---|---|---|")
    for r in rows:
        wk = f"{r['workers_rss_mb']:.0f} MB" if args.workers else "-"
        print(f"| {r['minutes']:g} min | {r['windows']} | {r['seconds']:.1f} s | "
              f"{r['rss_mb']:.0f} MB | {wk} |")  # fmt: skip


if __name__ == "__main__":
    main()
