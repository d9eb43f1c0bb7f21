"""The GPU benchmark of `benchmarks/gpu.sh`: one Markdown table in a few minutes on one card.

What it measures (ours and Hugging Face's, same process, alternating):
- bf16 inference throughput (weights cast to bf16 once, both) at batch 1, 32, 64, eager and
  `torch.compile`, with the SDPA kernel that ran and the MFU (model FLOPs over the card's
  dense bf16 peak: `KNOWN_PEAKS` by device name, else the measured matmul peak);
- training clips/s (forward + backward + AdamW, bf16 autocast) of timesformer_base 8x224;
- the largest inference batch that fits (binary search, out-of-memory caught, capped) for
  divided 96x224 and joint 32x224;
- the data loader's clips/s with N workers on rendered Kinetics-like files.

Every function runs on the CPU too (tiny models, tiny caps): the tests cover each code path.
A time budget skips what would not fit (marked "skipped: time budget").

    python -m timesformer.tools.bench.gpu --out gpu.md [--json gpu.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ...files import atomic_write_text
from .cases import Case, make_runner
from .cost import model_cost
from .machine import machine_info
from .measure import matmul_peak, spread, time_alternating
from .sdpa import sdpa_kernels_used

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), by a substring of the device name;
# the first match wins, so more specific names come first.
KNOWN_PEAKS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100", 989.0),  # SXM
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
)


def known_peak(name: str) -> float | None:
    """The card's dense bf16 peak in FLOP/s from `KNOWN_PEAKS`, or None when unknown."""
    for key, tflops in KNOWN_PEAKS:
        if key.lower() in name.lower():
            return tflops * 1e12
    return None


def device_peak(device: str) -> tuple[float, str]:
    """(bf16 peak FLOP/s, where it came from): the table for known cards, else measured."""
    if torch.device(device).type == "cuda":
        name = torch.cuda.get_device_name(torch.device(device))
        peak = known_peak(name)
        if peak is not None:
            return peak, f"{name}: dense bf16 peak {peak / 1e12:.0f} TFLOP/s (data sheet)"
    peak = matmul_peak("bf16", device)
    return peak, f"measured bf16 matmul peak {peak / 1e12:.2f} TFLOP/s"


def is_oom(e: BaseException) -> bool:
    """Whether an exception is an out-of-memory error (CUDA or CPU allocator)."""
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def largest_batch(fits: Callable[[int], bool], cap: int) -> int:
    """The largest b in [1, cap] with fits(b) (fits assumed monotone: true up to a point), by
    doubling then bisecting; 0 when even batch 1 does not fit."""
    if not fits(1):
        return 0
    lo, hi = 1, None  # lo fits; hi (when known) does not
    while hi is None:
        nxt = min(lo * 2, cap)
        if nxt == lo:
            return lo
        if fits(nxt):
            lo = nxt
        else:
            hi = nxt
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def step_fits(case: Case, impl: str) -> Callable[[int], bool]:
    """fits(b): whether one step of `case` at batch b runs for `impl` without running out of
    memory (other errors propagate)."""

    def fits(b: int) -> bool:
        runner = None
        try:
            runner = make_runner(Case.from_dict({**case.to_dict(), "batch_size": b}), impl)
            runner.step()
            if runner.device.type == "cuda":
                torch.cuda.synchronize(runner.device)
            return True
        except (RuntimeError, torch.OutOfMemoryError) as e:
            if not is_oom(e):
                raise
            return False
        finally:
            del runner
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    return fits


def throughput(case: Case, impls: tuple[str, ...], repeats: int, peak: float) -> dict[str, Any]:
    """Clips/s, MFU, spread and the SDPA kernels of each implementation on `case`, timed
    alternating in one process."""
    runners = {k: make_runner(case, k) for k in impls}
    kernels = sdpa_kernels_used(runners["ours"].step) if not case.compile else []
    times = time_alternating(
        {k: r.step for k, r in runners.items()}, repeats=repeats, warmup=2, device=case.device
    )
    flops = 2 * model_cost(case.config())["macs"] * case.batch_size * (3 if case.train else 1)
    out: dict[str, Any] = {"label": case.label, "sdpa_kernels": kernels, "impls": {}}
    for k, t in times.items():
        med = statistics.median(t["wall"])
        out["impls"][k] = {
            "clips_per_s": case.batch_size / med,
            "mfu": flops / med / peak,
            "spread": spread(t["wall"]),
        }
    if "hf" in out["impls"]:
        out["speedup_vs_hf"] = (
            out["impls"]["ours"]["clips_per_s"] / out["impls"]["hf"]["clips_per_s"]
        )
    del runners
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def loader_throughput(workers: int, videos: int, clips: int, cache: Path) -> dict[str, Any]:
    """The training DataLoader's clips/s (8 x rate 32, to 224) with `workers` workers on
    rendered Kinetics-like files (see `bench.data`)."""
    from ...data.datasets import VideoDataset
    from .data import loader_rate, make_videos

    paths = make_videos(cache, videos)
    samples = [(str(p), 0) for p in paths]
    count = max(clips, 4 * max(workers, 1))
    kw = dict(num_frames=8, sampling_rate=32, crop_size=224, num_classes=1)
    ds = VideoDataset(samples * (count // len(samples) + 2), mode="train", **kw)
    return {"workers": workers, "videos": videos, "clips_per_s": loader_rate(ds, workers, count)}


def run_gpu_bench(
    device: str = "cuda",
    model: str = "timesformer_base",
    overrides: dict[str, Any] | None = None,
    batches: tuple[int, ...] = (1, 32, 64),
    compile_batches: tuple[int, ...] = (1, 32, 64),
    train_batch: int = 16,
    batch_cap: int = 256,
    workers: int = 16,
    videos: int = 8,
    repeats: int = 5,
    budget_s: float = 420.0,
    cache: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every measurement of the GPU table; steps that would start after `budget_s` seconds are
    recorded as skipped."""
    log = log or (lambda s: None)
    t0 = time.perf_counter()
    over = dict(overrides or {})
    peak, peak_src = device_peak(device)
    rep: dict[str, Any] = {"machine": machine_info(device), "peak_flops": peak,
                           "peak_source": peak_src, "inference": [], "train": None,
                           "max_batch": [], "loader": None, "skipped": []}  # fmt: skip

    def time_left(what: str) -> bool:
        if time.perf_counter() - t0 < budget_s:
            log(f"[gpu bench {time.perf_counter() - t0:.0f} s] {what}")
            return True
        rep["skipped"].append(what)
        return False

    base = {"model": model, "device": device, "overrides": over}
    for comp, bs in ((False, batches), (True, compile_batches)):
        for b in bs:
            what = f"inference b{b}" + (" compile" if comp else "")
            if time_left(what):
                c = Case(**base, batch_size=b, dtype="bf16", cast_weights=True, compile=comp)
                rep["inference"].append(throughput(c, ("ours", "hf"), repeats, peak))
    if time_left(f"training b{train_batch}"):
        c = Case(**base, batch_size=train_batch, dtype="bf16", train=True, optimizer=True)
        rep["train"] = throughput(c, ("ours", "hf"), max(2, repeats // 2), peak)
    for att, frames in (("divided_space_time", 96), ("joint_space_time", 32)):
        for impl in ("ours", "hf"):
            what = f"largest batch {att} {frames} frames, {impl}"
            if time_left(what):
                c = Case(**base, attention_type=att, frames=frames, dtype="bf16", cast_weights=True)
                n = largest_batch(step_fits(c, impl), batch_cap)
                rep["max_batch"].append(
                    {"case": c.label, "impl": impl, "batch": n, "cap": batch_cap}
                )
    cache = cache or Path.home() / ".cache" / "timesformer" / "bench_videos"
    if time_left(f"loader, {workers} workers"):
        rep["loader"] = loader_throughput(workers, videos, 8 * max(workers, 1), cache)
    rep["seconds"] = time.perf_counter() - t0
    return rep


def to_markdown(rep: dict[str, Any]) -> str:
    """The GPU report as one Markdown section."""
    m = rep["machine"]
    out = [f"Device: {m.get('gpu') or m['device']}; torch {m['torch']}, transformers "
           f"{m['transformers']}; {rep['peak_source']}; {rep['seconds']:.0f} s.", "",
           "| case | ours clips/s | hf clips/s | ours / hf | MFU ours | MFU hf | SDPA kernel | spread |",
           "|---|---:|---:|---:|---:|---:|---|---:|"]  # fmt: skip
    rows = rep["inference"] + ([rep["train"]] if rep["train"] else [])
    for r in rows:
        o, h = r["impls"]["ours"], r["impls"].get("hf", {})
        sp = max(e["spread"] for e in r["impls"].values())
        out.append(
            f"| {r['label']} | {o['clips_per_s']:.1f} | {h.get('clips_per_s', float('nan')):.1f} "
            f"| {r.get('speedup_vs_hf', float('nan')):.2f}x | {100 * o['mfu']:.0f}% "
            f"| {100 * h.get('mfu', float('nan')):.0f}% | {', '.join(r['sdpa_kernels']) or '-'} "
            f"| {100 * sp:.0f}%{' busy' if sp > 0.2 else ''} |"
        )
    if rep["max_batch"]:
        out += ["", "| largest batch that fits (bf16 inference) | impl | batch |", "|---|---|---:|"]
        for r in rep["max_batch"]:
            cap = f" (cap {r['cap']})" if r["batch"] >= r["cap"] else ""
            out.append(f"| {r['case']} | {r['impl']} | {r['batch']}{cap} |")
    if rep["loader"]:
        lo = rep["loader"]
        out += ["", f"Data loader (8 x rate 32 to 224, {lo['workers']} workers, {lo['videos']} "
                f"rendered 10 s 340x256 H.264 files): {lo['clips_per_s']:.1f} clips/s."]  # fmt: skip
    for s in rep["skipped"]:
        out.append(f"Skipped (time budget): {s}.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m timesformer.tools.bench.gpu`: run the GPU table, print and write it."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default="timesformer_base")
    ap.add_argument("--depth", type=int, default=None, help="fewer blocks (quick checks)")
    ap.add_argument("--img-size", type=int, default=None, help="model frame size (quick checks)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32, 64])
    ap.add_argument("--compile-batches", type=int, nargs="*", default=[1, 32, 64])
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--batch-cap", type=int, default=256)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=420.0, help="skip steps starting later")
    ap.add_argument("--cache", default=None, help="where rendered videos are kept")
    ap.add_argument("--out", default=None, help="write the Markdown table here")
    ap.add_argument("--json", default=None, help="write the numbers as JSON here")
    args = ap.parse_args(argv)
    over = {k: v for k, v in (("depth", args.depth), ("img_size", args.img_size)) if v}
    rep = run_gpu_bench(
        args.device, args.model, over,
        tuple(args.batches), tuple(args.compile_batches), args.train_batch, args.batch_cap,
        args.workers, args.videos, args.repeats, args.budget_s,
        Path(args.cache) if args.cache else None,
        log=lambda s: print(s, file=sys.stderr, flush=True),
    )  # fmt: skip
    md = to_markdown(rep)
    print(md, end="")
    if args.out:
        atomic_write_text(args.out, md)
    if args.json:
        from .report import json_safe

        atomic_write_text(args.json, json.dumps(json_safe(rep), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
