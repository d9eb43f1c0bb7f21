"""Measuring one step: alternating timings, paired ratios, the matmul peak, peak memory.

Latency: repeated runs after warm-up, implementations alternating in one process so that both
see the same machine load. Peak memory of one step: in a fresh subprocess (`python -c` calling
`_worker_main`). CPU: growth of the resident set (Linux high-water mark reset through
/proc/self/clear_refs, big allocations forced through mmap so that freed memory leaves the
resident set); GPU: max_memory_allocated.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from .cases import DTYPES, Case, make_runner

_WORKER_MARK = "@@bench-result@@"
MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Time


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_alternating(
    steps: dict[str, Callable[[], Any]],
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, list[float]]]:
    """Wall-clock and process CPU seconds per call of each step: {name: {"wall", "cpu"}}.

    Calls alternate (A B, then B A, ...) so that changing machine load hits all steps alike;
    run i of every step lies next to run i of the others (see `paired_ratio`).
    """
    device = torch.device(device)
    names = list(steps)
    for _ in range(warmup):
        for k in names:
            steps[k]()
    times: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in names}
    for r in range(repeats):
        for k in names if r % 2 == 0 else names[::-1]:
            _sync(device)
            c0, t0 = time.process_time(), time.perf_counter()
            steps[k]()
            _sync(device)
            times[k]["wall"].append(time.perf_counter() - t0)
            times[k]["cpu"].append(time.process_time() - c0)
    return times


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over i of a[i] / b[i]: each pair ran back to back, under the same load."""
    return statistics.median(x / y for x, y in zip(a, b))


# runs of one case varying by more than this (max - min over median): the machine was busy
SPREAD_WARN = 0.20


def spread(seconds: list[float]) -> float:
    """(max - min) / median of a case's runs: 0 for identical runs; one run gives 0."""
    med = statistics.median(seconds)
    return (max(seconds) - min(seconds)) / med if med > 0 else 0.0


def summarize(seconds: list[float]) -> dict[str, Any]:
    """Median, min, max and spread of a list of timings (seconds); `busy` when the spread is
    over SPREAD_WARN (the machine's load changed during the runs: ratios are less sure)."""
    sp = spread(seconds)
    return {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
        "spread": sp,
        "busy": len(seconds) > 1 and sp > SPREAD_WARN,
        "runs": [round(s, 7) for s in seconds],
    }


def spread_warning(result: dict[str, Any]) -> str | None:
    """One line naming the implementations of a case result whose runs varied by more than
    SPREAD_WARN, or None when all were steady."""
    busy = {
        k: e["latency_s"]["spread"]
        for k, e in result.get("impls", {}).items()
        if e.get("latency_s", {}).get("busy")
    }
    if not busy:
        return None
    parts = ", ".join(f"{k} {100 * v:.0f}%" for k, v in busy.items())
    return (
        f"runs varied by more than {100 * SPREAD_WARN:.0f}% ({parts}; max - min over median): "
        "the machine was busy, the ratio is less sure"
    )


def matmul_peak(
    dtype: str = "fp32",
    device: str = "cpu",
    max_n: int = 4096,
    repeats: int = 5,
    budget_s: float = 2.0,
) -> float:
    """This machine's matmul FLOP/s for `dtype`: the best of `repeats` (n x n) @ (n x n)^T.

    The layout is a Linear's (x @ W^T). n doubles from 256 while one product takes under a
    tenth of `budget_s` (so that slow dtypes, e.g. bf16 without hardware support, stay quick),
    up to `max_n`.
    """
    dev = torch.device(device)
    n = 256
    while True:
        a = torch.randn(n, n, device=dev).to(DTYPES[dtype])
        b = torch.randn(n, n, device=dev).to(DTYPES[dtype])
        best = _best_time(lambda a=a, b=b: torch.mm(a, b.t()), dev, 1)
        if n >= max_n or best * 8 > budget_s / 10:  # the next size costs 8x
            break
        n *= 2
    best = min(best, _best_time(lambda: torch.mm(a, b.t()), dev, repeats))
    return 2 * n**3 / best


def _best_time(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


# ---------------------------------------------------------------------------------------------
# Memory


def _proc_status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def _reset_hwm() -> bool:
    """Reset the resident-set high-water mark (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_bytes() -> int:
    try:
        return _proc_status_kb("VmRSS") * 1024
    except (OSError, RuntimeError):  # not Linux: the peak so far is all we have
        return _maxrss_bytes()


def _maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def peak_memory(fn: Callable[[], Any], device: torch.device | str = "cpu") -> dict[str, Any]:
    """Run `fn` once; return its peak memory growth in bytes and its duration.

    CPU: the resident set's high-water mark during `fn` minus the resident set before it (run in
    a fresh process: see `measure_in_subprocess`). GPU: max_memory_allocated minus the memory
    allocated before.
    """
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated(device) - base
        return {"peak_bytes": int(peak), "baseline_bytes": int(base), "seconds": seconds,
                "method": "cuda max_memory_allocated"}  # fmt: skip
    base = _rss_bytes()
    if _reset_hwm():
        method = "rss high-water mark"
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        hwm = _proc_status_kb("VmHWM") * 1024
    else:  # ru_maxrss cannot be reset: valid only when fn's peak is the process's peak
        method = "ru_maxrss"
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        hwm = _maxrss_bytes()
    return {"peak_bytes": max(0, hwm - base), "baseline_bytes": base, "seconds": seconds,
            "method": method}  # fmt: skip


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    # Fixed thresholds: every allocation >= 64 KiB is mmap-ed and returned on free, so the
    # resident set follows live memory (glibc otherwise keeps freed heap blocks up to 32 MiB).
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(64 * 1024))
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(128 * 1024))
    src = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def measure_in_subprocess(spec: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run one memory measurement in a fresh Python process and return its result.

    spec: {"kind": "case", "case": Case.to_dict(), "impl": "ours"|"hf", "warmup": int} or
    {"kind": "alloc", "bytes": n} (allocate and touch n bytes: a known answer, for tests).
    """
    spec = {"threads": torch.get_num_threads(), **spec}
    cmd = [
        sys.executable,
        "-c",
        "from timesformer.tools.bench.measure import _worker_main\n"
        "raise SystemExit(_worker_main())",
    ]
    proc = subprocess.run(
        cmd,
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=_worker_env(),
        timeout=timeout,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_WORKER_MARK):
            return json.loads(line[len(_WORKER_MARK) :])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"memory worker failed (exit {proc.returncode}): {tail}")


def _worker_main() -> int:
    """Entry point of the memory subprocess: read a spec on stdin, print one result line."""
    spec = json.loads(sys.stdin.read())
    torch.set_num_threads(int(spec.get("threads", torch.get_num_threads())))
    out: dict[str, Any]
    if spec["kind"] == "alloc":
        n = int(spec["bytes"])

        def fn() -> None:
            t = torch.ones(n // 4, dtype=torch.float32)  # touches every page
            del t

        out = peak_memory(fn, "cpu")
    elif spec["kind"] == "case":
        case = Case.from_dict(spec["case"])
        runner = make_runner(case, spec["impl"])
        for _ in range(int(spec.get("warmup", 1))):
            runner.step()
        out = peak_memory(runner.step, runner.device)
    else:
        raise ValueError(f"unknown worker kind {spec['kind']!r}")
    print(_WORKER_MARK + json.dumps(out), flush=True)
    return 0


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (None: leave as is)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
