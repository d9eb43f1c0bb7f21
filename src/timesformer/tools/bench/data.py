"""Data-loading throughput: exact seek-and-decode (VideoReader) against the naive way.

Renders Kinetics-like videos itself (10 s, 30 fps, 340 x 256, H.264 with B-frames, a keyframe
every 2 s, a panning texture with moving shapes; cached), then measures clips per second for

* training clips (8 frames at rate 32, random start), centred test clips (8 at rate 32) and
  short training clips (8 at rate 4), decoding only, in this process (one "worker"), with the
  CPU time per clip;
* a DataLoader over VideoDataset (decode + scale/crop/flip + normalise to 224) with N workers;

* the model's clips/s for the same clip geometry (8 x 224, a training step or inference;
  `--model none` skips it), next to the loader's, naming which of the two bounds training;

each against the naive way in the same run (decode and convert every frame, then index, as
``torchvision.io.read_video``-style loaders do), interleaved clip by clip or run by run so both
see the same machine load. Prints a Markdown table; ``--out`` writes the numbers as JSON::

    timesformer bench --data                    # defaults below
    python benchmarks/data_throughput.py --workers 0 2 --out bench_data.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import NoReturn

import av
import numpy as np
import torch

from ...data.datasets import VideoDataset
from ...data.sampling import test_clip_indices, train_clip_indices
from ...data.synthetic import write_video
from ...data.video import VideoReader
from ...files import atomic_write_text


# ------------------------------------------------------------------------------ videos
def render_kinetics_like(path: Path, seed: int, seconds: float = 10.0, fps: int = 30) -> None:
    """A 340 x 256 H.264 video: a smooth texture panning under a few moving discs."""
    rng = np.random.default_rng(seed)
    h, w, t = 256, 340, int(seconds * fps)
    coarse = rng.integers(0, 256, (h // 4 + 2, (w + t * 2) // 4 + 2, 3)).astype(np.float32)
    texture = (
        torch.nn.functional.interpolate(
            torch.from_numpy(coarse).permute(2, 0, 1)[None], scale_factor=4, mode="bicubic"
        )[0]
        .permute(1, 2, 0)
        .clamp(0, 255)
        .numpy()
        .astype(np.uint8)
    )  # (H', W', 3) smooth
    yy, xx = np.mgrid[0:h, 0:w]
    discs = [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(-4, 4), rng.uniform(-3, 3),
              rng.uniform(15, 40), rng.integers(0, 256, 3)) for _ in range(4)]  # fmt: skip
    frames = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        f = texture[:h, i * 2 : i * 2 + w].copy()
        for x, y, vx, vy, r, colour in discs:
            cx, cy = (x + vx * i) % w, (y + vy * i) % h
            f[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = colour
        frames[i] = f
    write_video(path, frames, fps, codec="h264", crf=23, gop=2 * fps, bframes=3)


def make_videos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        p = folder / f"kinetics_like_{k}.mp4"
        if not p.is_file():
            render_kinetics_like(p, seed=k)
        paths.append(p)
    return paths


# ------------------------------------------------------------------------------ readers
def naive_frames(path: Path, indices: list[int]) -> torch.Tensor:
    """Decode and convert every frame, then index: uint8 (T, H, W, 3)."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return torch.from_numpy(np.stack([frames[min(i, len(frames) - 1)] for i in indices]))


def naive_num_frames(path: Path) -> tuple[int, float]:
    with av.open(str(path)) as container:
        s = container.streams.video[0]
        return s.frames, float(s.average_rate)


class NaiveDataset(VideoDataset):
    """VideoDataset whose decoding is the naive one (same sampling and transforms)."""

    def _train_item(self, i: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch * 1009 + i)
        path, label = self.samples[i]
        n, fps = naive_num_frames(Path(path))
        idx = train_clip_indices(n, self.num_frames, self.sampling_rate, fps, generator=g)
        video = self.train_transform(naive_frames(Path(path), idx), g)
        return {"video": video, "label": label, "index": i, "view": 0, "path": path,
                "error": "", "failures": 0}  # fmt: skip


def interleaved(ours, naive, count: int) -> dict[str, float]:
    """Run ``ours(k)`` and ``naive(k)`` alternately so both see the same machine load; return
    clips/s (wall) and CPU milliseconds per clip (this process) for each."""
    wall = {"ours": 0.0, "naive": 0.0}
    cpu = {"ours": 0.0, "naive": 0.0}
    for k in range(count):
        for name, fn in (("ours", ours), ("naive", naive)):
            w, c = time.perf_counter(), time.process_time()
            fn(k)
            wall[name] += time.perf_counter() - w
            cpu[name] += time.process_time() - c
    return {
        "ours": count / wall["ours"], "naive": count / wall["naive"],
        "ours_cpu_ms": 1000 * cpu["ours"] / count, "naive_cpu_ms": 1000 * cpu["naive"] / count,
    }  # fmt: skip


def loader_rate(ds, workers: int, count: int) -> float:
    """Clips/s of a DataLoader over ``ds`` (batch 1), timed after the workers started."""
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=workers, shuffle=False)
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    for _ in range(count):
        next(it)
    rate = count / (time.perf_counter() - start)
    del it
    return rate


def model_rate(
    preset: str, mode: str = "train", depth: int | None = None, threads: int = 1, runs: int = 3
) -> dict:
    """The model's clips/s on 8 x 224 clips, batch 1 (median of `runs` after one warm-up):
    a training step (forward + backward) or inference; for comparison with the loader."""
    from ...models.factory import create_model

    over = {"num_frames": 8, "img_size": 224, "num_classes": 400}
    if depth is not None:
        over["depth"] = depth
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = create_model(preset, **over).train(mode == "train")
        x = torch.randn(1, 3, 8, 224, 224)  # (B, C, T, H, W)

        def step() -> None:
            if mode == "train":
                model.zero_grad(set_to_none=False)
                model(x).logsumexp(-1).mean().backward()
            else:
                with torch.no_grad():
                    model(x)

        step()
        ts = []
        for _ in range(max(runs, 1)):
            t0 = time.perf_counter()
            step()
            ts.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    return {"model": preset, "mode": mode, "depth": depth, "threads": threads,
            "clips_per_s": 1.0 / statistics.median(ts)}  # fmt: skip


# ------------------------------------------------------------------------------ main
class _Parser(argparse.ArgumentParser):
    """argparse with the package's one-line usage error (exit status 2)."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        from ...commands import usage_line

        self.exit(2, usage_line(self.prog, " ".join(message.split())) + "\n")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the benchmark with command-line style arguments; returns an exit code. Every
    option is checked before anything is rendered or measured."""
    from ...commands.common import non_negative_int, positive_int
    from ...files import check_output_file, ensure_dir
    from ...models.config import PRESETS

    ap = _Parser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=positive_int, default=6,
                    help="distinct videos rendered (default 6)")  # fmt: skip
    ap.add_argument("--clips", type=positive_int, default=12,
                    help="clips per measurement (default 12)")  # fmt: skip
    ap.add_argument(
        "--runs", type=positive_int, default=3, help="runs per measurement; median kept"
    )
    ap.add_argument("--workers", type=non_negative_int, nargs="+", default=[0, 2],
                    help="DataLoader worker counts (default 0 2)")  # fmt: skip
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache",
                    "timesformer", "bench_videos"), help="where the rendered videos are kept")  # fmt: skip
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--model", default="timesformer_base",
                    help="preset whose clips/s on the same 8 x 224 clips is shown next to the "
                    "loader's (default timesformer_base; 'none': skip)")  # fmt: skip
    ap.add_argument("--model-mode", default="train", choices=["train", "infer"],
                    help="a training step (forward + backward, default) or inference")  # fmt: skip
    ap.add_argument("--model-depth", type=positive_int, default=None,
                    help="blocks (default: preset)")  # fmt: skip
    ap.add_argument("--model-threads", type=positive_int, default=None,
                    help="torch threads for the model (default: all cores)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.model != "none" and args.model not in PRESETS:
        ap.error(
            f"argument --model: {args.model!r} is not 'none' or a preset ({', '.join(PRESETS)})"
        )
    if args.out:
        check_output_file(args.out, "--out file")
    ensure_dir(args.cache, "--cache folder")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    paths = make_videos(Path(args.cache), args.videos)
    render_s = time.perf_counter() - t0
    with VideoReader(paths[0]) as r:
        meta = {"frames": r.num_frames, "fps": r.fps, "size": f"{r.width}x{r.height}",
                "codec": r.codec, "keyframes": len(r._keys), "mb": paths[0].stat().st_size / 1e6}  # fmt: skip
    rng = np.random.default_rng(0)
    starts = [rng.random() for _ in range(1000)]

    def train_idx(n: int, fps: float, k: int) -> list[int]:
        g = torch.Generator().manual_seed(int(starts[k % 1000] * 1e9))
        return train_clip_indices(n, 8, 32, fps, generator=g)

    def ours_train(k: int) -> None:
        with VideoReader(paths[k % len(paths)]) as r:
            r.get_frames(train_idx(r.num_frames, r.fps, k))

    def naive_train(k: int) -> None:
        p = paths[k % len(paths)]
        n, fps = naive_num_frames(p)
        naive_frames(p, train_idx(n, fps, k))

    def ours_test(k: int) -> None:
        with VideoReader(paths[k % len(paths)]) as r:
            r.get_frames(test_clip_indices(r.num_frames, 8, 32, r.fps))

    def naive_test(k: int) -> None:
        p = paths[k % len(paths)]
        n, fps = naive_num_frames(p)
        naive_frames(p, test_clip_indices(n, 8, 32, fps))

    def ours_dense(k: int) -> None:  # 8 frames at rate 4: a clip spanning 1 s of the 10 s
        with VideoReader(paths[k % len(paths)]) as r:
            g = torch.Generator().manual_seed(k)
            r.get_frames(train_clip_indices(r.num_frames, 8, 4, r.fps, generator=g))

    def naive_dense(k: int) -> None:
        p = paths[k % len(paths)]
        n, fps = naive_num_frames(p)
        naive_frames(
            p, train_clip_indices(n, 8, 4, fps, generator=torch.Generator().manual_seed(k))
        )

    rows = []
    for name, ours, naive in [
        ("train clip, 8 x rate 32 (decode only)", ours_train, naive_train),
        ("test clip, centred 8 x rate 32 (decode only)", ours_test, naive_test),
        ("train clip, 8 x rate 4 (decode only)", ours_dense, naive_dense),
    ]:
        r = interleaved(ours, naive, args.clips * args.runs)
        rows.append({"case": name, "workers": "1 process", **r})
        print(f"{name}: ours {r['ours']:.2f} clips/s ({r['ours_cpu_ms']:.0f} ms CPU), naive "
              f"{r['naive']:.2f} clips/s ({r['naive_cpu_ms']:.0f} ms CPU)", flush=True)  # fmt: skip

    samples = [(str(p), 0) for p in paths]
    kw = dict(num_frames=8, sampling_rate=32, crop_size=224, num_classes=1)
    for workers in args.workers:
        count = max(args.clips, 4 * max(workers, 1))
        results: dict[str, list[float]] = {"ours": [], "naive": []}
        for _ in range(args.runs):  # alternate so both see the same load; keep the median
            for label, cls in (("ours", VideoDataset), ("naive", NaiveDataset)):
                ds = cls(samples * (count // len(samples) + 2), mode="train", **kw)
                results[label].append(loader_rate(ds, workers, count))
        r = {k: statistics.median(v) for k, v in results.items()}
        name = "train clip 8 x rate 32, full pipeline to 224 (DataLoader)"
        rows.append({"case": name, "workers": workers, **r})
        print(f"{name}, {workers} workers: ours {r['ours']:.2f}, naive {r['naive']:.2f} clips/s",
              flush=True)  # fmt: skip

    model_row = None
    if args.model != "none":
        threads = args.model_threads or os.cpu_count() or 1
        model_row = model_rate(args.model, args.model_mode, args.model_depth, threads, args.runs)
        print(f"model {model_row['model']} ({model_row['mode']}, 8 x 224, batch 1, "
              f"{threads} threads): {model_row['clips_per_s']:.2f} clips/s", flush=True)  # fmt: skip
        loaders = [r for r in rows if r["workers"] != "1 process"]
        for r in loaders:
            r["bound_by"] = "data" if r["ours"] < model_row["clips_per_s"] else "model"
    env = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "torch": torch.__version__, "av": av.__version__, "video": meta,
           "render_s": round(render_s, 1)}  # fmt: skip
    print(
        "\n| case | workers | ours clips/s | naive clips/s | wall ratio | CPU ms/clip ours / naive |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        cpu = (f"{r['ours_cpu_ms']:.0f} / {r['naive_cpu_ms']:.0f} "
               f"({r['naive_cpu_ms'] / r['ours_cpu_ms']:.1f}x)") if "ours_cpu_ms" in r else "-"  # fmt: skip
        print(f"| {r['case']} | {r['workers']} | {r['ours']:.2f} | {r['naive']:.2f} | "
              f"{r['ours'] / r['naive']:.1f}x | {cpu} |")  # fmt: skip
    if model_row is not None:
        print(f"\nmodel vs loader (same 8 x 224 clips): {model_row['model']} "
              f"{model_row['mode']} {model_row['clips_per_s']:.2f} clips/s; "
              + "; ".join(f"{r['workers']} workers: loader {r['ours']:.2f} clips/s, "
                          f"bound by the {r['bound_by']}" for r in rows if "bound_by" in r))  # fmt: skip
    print(
        f"\nvideos: {json.dumps(meta)}; {env['cores']} cores, torch {env['torch']}, av {env['av']}"
    )
    if args.out:
        out = {"env": env, "rows": rows, "model": model_row}
        atomic_write_text(args.out, json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
