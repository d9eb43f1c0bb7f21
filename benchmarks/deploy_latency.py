"""Latency of the deployable forms against eager PyTorch, and what request batching buys.

    python benchmarks/deploy_latency.py [--model timesformer_small] [--threads 2]

Part 1: one clip (batch 1, fp32, random weights) through eager PyTorch (our fast path),
onnxruntime on the ONNX export and the torch.export program, median of interleaved runs.
Part 2: the HTTP service under 8 concurrent clients (24 requests, 1x1 views, a tiny model so
decoding and HTTP are part of the cost) with --max-batch 1 against --max-batch 8.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def part1(model_name: str, repeats: int) -> None:
    import timesformer
    from timesformer.deploy.export import export_model, load_export

    model = timesformer.create_model(model_name, num_classes=400).eval()
    x = torch.randn(1, 3, model.config.num_frames, 224, 224)
    tmp = Path(tempfile.mkdtemp())
    runners = {"eager": lambda: model(x)}
    for fmt, name in (("onnx", "m.onnx"), ("exported-program", "m.pt2")):
        t0 = time.perf_counter()
        rep = export_model(model, tmp / name, fmt)
        print(f"{fmt}: exported and verified in {time.perf_counter() - t0:.0f} s, "
              f"max |diff| {max(rep.max_abs_diff.values()):.1e}")  # fmt: skip
        run = load_export(tmp / name)
        arg = x.numpy() if fmt == "onnx" else x
        runners[fmt] = lambda run=run, arg=arg: run(arg)
    times: dict[str, list[float]] = {k: [] for k in runners}
    with torch.no_grad():
        for fn in runners.values():
            fn()  # warm-up
        for _ in range(repeats):
            for k, fn in runners.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    base = statistics.median(times["eager"])
    print(
        f"\n{model_name} 8x224 batch 1 fp32, {torch.get_num_threads()} threads, median of {repeats}:"
    )
    for k, ts in times.items():
        m = statistics.median(ts)
        print(
            f"  {k:<17} {1000 * m:7.0f} ms  ({m / base:.2f}x eager; spread {min(ts) * 1000:.0f}-{max(ts) * 1000:.0f})"
        )


def part2() -> None:
    import httpx
    import uvicorn
    from deploy.conftest import free_port, render, tiny_model

    from timesformer.deploy.export import contract_of
    from timesformer.deploy.serve import ServeOptions, _settings_from, create_app

    video = render(Path(tempfile.mkdtemp()) / "v.mp4").read_bytes()
    model = tiny_model(depth=4)
    pre = contract_of(model)
    for max_batch in (1, 8):
        app = create_app(
            model,
            _settings_from(model, pre),
            pre,
            ServeOptions(max_batch=max_batch, max_wait_ms=10),
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                httpx.get(url + "/healthz")
                break
            except httpx.HTTPError:
                time.sleep(0.1)

        def one(_: int, url: str = url) -> float:
            t0 = time.perf_counter()
            r = httpx.post(
                url + "/v1/predict",
                files={"file": ("v.mp4", video)},
                data={"views": "1x1"},
                timeout=60,
            )
            assert r.status_code == 200
            return time.perf_counter() - t0

        with cf.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(8)))
            t0 = time.perf_counter()
            lat = sorted(pool.map(one, range(24)))
            wall = time.perf_counter() - t0
        stats = httpx.get(url + "/v1/model").json()["batching"]
        print(
            f"max_batch {max_batch}: {24 / wall:5.1f} req/s, p50 {1000 * lat[11]:.0f} ms, "
            f"p99 {1000 * lat[-1]:.0f} ms, mean batch {stats['mean_batch']:.1f}"
        )
        server.should_exit = True
        th.join(timeout=10)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="timesformer_small")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    part1(args.model, args.repeats)
    part2()
