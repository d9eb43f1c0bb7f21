"""Cost of one clip against the video's length, and against an official-style reader.

Renders (once, cached in --dir) two Kinetics-like H.264 videos that differ only in length:
10 seconds and 10 minutes, 340 x 256, 30 fps, B-frames, a keyframe every 2 s. Then measures,
interleaved so that both sides see the same machine load, the median time of

* one clip from a fresh ``VideoReader`` (open + locate + decode + convert): a dense clip
  (8 frames at rate 8) and a sparse one (8 at rate 32), the same clip (same frames, a random
  start in the first 10 s) from the short and the long file, with the packet index scanned on every open ("cold", what every open cost before
  the index cache) and reused from the per-process cache ("warm", a DataLoader worker that has
  opened the file before) or from an on-disk index folder ("disk", a new process);
* the same clips read the official way (seek 1024 ticks before the clip, decode the span,
  convert every decoded frame to RGB, then pick the frames), on the short file.

Wall time and CPU time (``time.process_time``) are both reported: on a shared machine the CPU
time is the steadier one.

    python benchmarks/clip_cost.py                 # prints a Markdown table
    python benchmarks/clip_cost.py --reps 40 --json clip_cost.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from timesformer.data import index as packet_index
from timesformer.data.sampling import train_clip_indices
from timesformer.data.video import VideoReader


def render(path: Path, seconds: float, seed: int = 0, fps: int = 30) -> None:
    """A 340 x 256 H.264 file (crf 23, B-frames, keyframe every 2 s): a panning texture under
    moving discs, encoded frame by frame (a 10-minute clip never sits in memory)."""
    rng = np.random.default_rng(seed)
    h, w, t = 256, 340, int(seconds * fps)
    coarse = rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, 3)).astype(np.float32)
    texture = (
        torch.nn.functional.interpolate(
            torch.from_numpy(coarse).permute(2, 0, 1)[None], scale_factor=4, mode="bicubic"
        )[0]
        .permute(1, 2, 0)
        .clamp(0, 255)
        .numpy()
        .astype(np.uint8)
    )  # (H', W', 3) smooth
    texture = np.concatenate([texture, texture[:, ::-1]], axis=1)  # tiles seamlessly
    yy, xx = np.mgrid[0:h, 0:w]
    discs = [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(-4, 4), rng.uniform(-3, 3),
              rng.uniform(15, 40), rng.integers(0, 256, 3)) for _ in range(4)]  # fmt: skip
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "23", "g": str(2 * fps), "bf": "3", "sc_threshold": "0"}
        period = texture.shape[1]
        for i in range(t):
            x0 = (i * 2) % period
            f = np.take(texture[:h], np.arange(x0, x0 + w) % period, axis=1)
            for x, y, vx, vy, r, colour in discs:
                cx, cy = (x + vx * i) % w, (y + vy * i) % h
                f[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = colour
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    tmp.rename(path)


def official_style(path: Path, indices: list[int]) -> np.ndarray:
    """The official way: seek 1024 ticks before the first frame, decode through the last,
    convert every decoded frame, then index. uint8 (T, H, W, 3)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        ticks = s.duration / s.frames  # timestamp ticks per frame, as the official code has it
        start, end = int(indices[0] * ticks), int(indices[-1] * ticks)
        c.seek(max(start - 1024, 0), any_frame=False, backward=True, stream=s)
        frames = {}
        for frame in c.decode(s):
            if frame.pts < start:
                continue
            frames[frame.pts] = frame
            if frame.pts > end:
                break
        rgb = [frames[p].to_rgb().to_ndarray() for p in sorted(frames)]
    first = indices[0]
    return np.stack([rgb[min(i - first, len(rgb) - 1)] for i in indices])


def ours(path: Path, indices: list[int], **kw) -> torch.Tensor:
    with VideoReader(path, **kw) as r:
        return r.get_frames(indices)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "timesformer_clip_cost"))
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--long-seconds", type=float, default=600.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"10 s": folder / "short_10s.mp4",
             f"{args.long_seconds / 60:g} min": folder / f"long_{int(args.long_seconds)}s.mp4"}  # fmt: skip
    for (name, p), sec in zip(files.items(), (10.0, args.long_seconds)):
        if not p.is_file():
            print(f"rendering the {name} file (once) ...", flush=True)
            render(p, sec)
    disk = Path(tempfile.mkdtemp(prefix="tsidx_", dir=folder))
    meta = {}
    for name, p in files.items():
        with VideoReader(p, index_dir=disk) as r:  # fills the memory cache and the disk folder
            meta[name] = r.num_frames
    g = torch.Generator().manual_seed(0)
    clips = {"dense 8x8": (8, 8), "sparse 8x32": (8, 32)}
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}

    def timed(key: str, fn, *args, **kw) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        fn(*args, **kw)
        times.setdefault(key, []).append(time.perf_counter() - t0)
        cpu.setdefault(key, []).append(time.process_time() - c0)

    for _ in range(args.reps):
        for cname, (n, rate) in clips.items():
            idx = train_clip_indices(min(meta.values()), n, rate, 30, generator=g)
            for fname, p in files.items():
                timed(f"{cname} | {fname} | cold", ours, p, idx, cache_index=False)
                packet_index.MEMORY_CACHE.clear()  # as in a new process
                timed(f"{cname} | {fname} | disk", ours, p, idx, index_dir=disk)
                timed(f"{cname} | {fname} | warm", ours, p, idx)  # the disk read cached it
                if fname == "10 s":
                    timed(f"{cname} | {fname} | official-style", official_style, p, idx)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    med_cpu = {k: statistics.median(v) * 1000 for k, v in cpu.items()}
    short, long_ = files
    print(f"median of {args.reps} clips, wall ms (CPU ms)")
    print(f"| clip | reader | {short} | {long_} | long / short (CPU) |")
    print("|---|---|---|---|---|")
    for cname in clips:
        for mode in ("cold", "warm", "disk"):
            ka, kb = f"{cname} | {short} | {mode}", f"{cname} | {long_} | {mode}"
            a, b, ca, cb = med[ka], med[kb], med_cpu[ka], med_cpu[kb]
            print(f"| {cname} | ours, index {mode} | {a:.1f} ({ca:.1f}) | {b:.1f} ({cb:.1f}) | "
                  f"{b / a:.2f} ({cb / ca:.2f}) |")  # fmt: skip
        ko, kw = f"{cname} | {short} | official-style", f"{cname} | {short} | warm"
        print(f"| {cname} | official-style | {med[ko]:.1f} ({med_cpu[ko]:.1f}) | | ours warm / "
              f"official: {med[kw] / med[ko]:.2f} ({med_cpu[kw] / med_cpu[ko]:.2f}) |")  # fmt: skip
    if args.json:
        out = {"median_ms": med, "median_cpu_ms": med_cpu, "frames": meta}
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
