"""Cost, speed and memory of TimeSformer models, side by side with Hugging Face transformers.

What is measured, and how:
- parameters and multiply-accumulates (MACs) per clip: `count_flops` on the meta device;
- latency: median of repeated runs after warm-up, ours and theirs alternating in one process
  (so that both see the same machine load); throughput = batch / latency;
- peak memory of one forward (or training) step: in a fresh subprocess per case. CPU: growth of
  the resident set (Linux high-water mark reset through /proc/self/clear_refs, big allocations
  forced through mmap so that freed memory leaves the resident set); GPU: max_memory_allocated;
- achieved FLOP/s as a fraction of this machine's matmul peak for the same dtype, measured in
  the same run;
- which SDPA kernel runs (flash / memory-efficient / cudnn / math), read from the profiler.
`cost_sweep` reproduces the paper's Figure 3 (joint vs divided cost against size and frames) by
counting, without running the big cases.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.config import ATTENTION_TYPES, TimeSformerConfig, _pair, get_config
from ..models.factory import count_flops
from ..models.timesformer import TimeSformer

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
HF_ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")
# ours; Hugging Face transformers; ours with the inference fast path off (the model before the
# speed work: the A/B baseline of docs/performance.md)
IMPLS = ("ours", "hf", "baseline")
_WORKER_MARK = "@@bench-result@@"
MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    """One benchmark case: a model geometry, a dtype and a mode (inference or training step)."""

    model: str = "timesformer_base"
    attention_type: str | None = None  # None: the preset's
    frames: int | None = None  # None: the preset's
    img_size: int | None = None  # None: the preset's
    batch_size: int = 1
    dtype: str = "fp32"
    compile: bool = False
    train: bool = False
    grad_checkpointing: bool = False
    device: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {self.batch_size}")
        self.config()  # validates model name, attention type and overrides

    def config(self) -> TimeSformerConfig:
        """The model configuration of this case (preset + geometry + overrides)."""
        over = dict(self.overrides)
        if self.attention_type:
            over["attention_type"] = self.attention_type
        if self.frames:
            over["num_frames"] = self.frames
        if self.img_size:
            over["img_size"] = self.img_size
        return get_config(self.model, **over)

    @property
    def label(self) -> str:
        cfg = self.config()
        h, w = _pair(cfg.img_size)
        size = f"{h}" if h == w else f"{h}x{w}"
        parts = [
            self.model.removeprefix("timesformer_"),
            _SHORT[cfg.attention_type],
            f"{cfg.num_frames}x{size}",
            f"b{self.batch_size}",
            self.dtype,
        ]
        if self.compile:
            parts.append("compile")
        if self.train:
            parts.append("train+ckpt" if self.grad_checkpointing else "train")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Case:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


_SHORT = {
    "divided_space_time": "divided",
    "joint_space_time": "joint",
    "space_only": "space",
    "sparse_local_global": "local-global",
    "axial": "axial",
}


def build_hf_model(cfg: TimeSformerConfig) -> nn.Module:
    """Hugging Face `TimesformerForVideoClassification` with the geometry of `cfg`, random weights.

    Its input layout is (B, T, C, H, W); its divided layers read frames and size from its config.
    """
    try:
        from transformers import TimesformerConfig, TimesformerForVideoClassification
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "--compare hf needs Hugging Face transformers: pip install 'transformers>=4.40'"
        ) from e
    if cfg.attention_type not in HF_ATTENTION_TYPES:
        raise ValueError(
            f"transformers' Timesformer has no attention_type={cfg.attention_type!r}; "
            f"it has {', '.join(HF_ATTENTION_TYPES)}"
        )
    h, w = _pair(cfg.img_size)
    if h != w:
        raise ValueError(f"transformers' Timesformer needs square frames; got img_size={h}x{w}")
    hcfg = TimesformerConfig(
        image_size=h,
        patch_size=cfg.patch_size,
        num_channels=cfg.in_chans,
        num_frames=cfg.num_frames,
        hidden_size=cfg.embed_dim,
        num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads,
        intermediate_size=int(cfg.embed_dim * cfg.mlp_ratio),
        hidden_act="gelu",
        hidden_dropout_prob=cfg.drop_rate,
        attention_probs_dropout_prob=cfg.attn_drop_rate,
        layer_norm_eps=cfg.layer_norm_eps,
        qkv_bias=cfg.qkv_bias,
        attention_type=cfg.attention_type,
        num_labels=max(cfg.num_classes, 1),
    )
    # transformers 5.x types drop_path_rate as int and rejects 0.1: set it past the validator
    object.__setattr__(hcfg, "drop_path_rate", float(cfg.drop_path_rate))
    return TimesformerForVideoClassification(hcfg)


@dataclass
class Runner:
    """A built model and a zero-argument `step` running one forward (or training) step."""

    impl: str
    model: nn.Module
    step: Callable[[], Tensor]
    params: int
    device: torch.device


def _autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def make_runner(case: Case, impl: str, seed: int = 0) -> Runner:
    """Build `impl` (see IMPLS) for `case` with random weights and a random input clip."""
    if impl not in IMPLS:
        raise ValueError(f"unknown implementation {impl!r}; expected one of {IMPLS}")
    device = torch.device(case.device)
    cfg = case.config()
    torch.manual_seed(seed)
    if impl in ("ours", "baseline"):
        model: nn.Module = TimeSformer(cfg)
        if case.grad_checkpointing:
            model.set_grad_checkpointing(True)
        if impl == "baseline":
            model.set_inference_options(fast=False)
    else:
        model = build_hf_model(cfg)
        if case.grad_checkpointing:
            enable = getattr(model, "activation_checkpointing_enable", None)
            (enable or model.gradient_checkpointing_enable)()
    model.to(device).train(case.train)
    h, w = _pair(cfg.img_size)
    x = torch.randn(case.batch_size, cfg.in_chans, cfg.num_frames, h, w, device=device)
    if impl == "hf":
        x = x.transpose(1, 2).contiguous()  # (B, T, C, H, W)
    fn = torch.compile(model) if case.compile else model
    params = sum(p.numel() for p in model.parameters())

    def forward() -> Tensor:
        with _autocast(device, case.dtype):
            return fn(pixel_values=x).logits if impl == "hf" else fn(x)

    def infer() -> Tensor:
        with torch.no_grad():
            return forward()

    def train_step() -> Tensor:
        # keep the gradient buffers between steps, so that a step's memory growth is activations
        model.zero_grad(set_to_none=False)
        logits = forward()
        loss = logits.float().logsumexp(-1).mean()  # any scalar of the logits
        loss.backward()
        return logits.detach()

    return Runner(impl, model, train_step if case.train else infer, params, device)


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


def summarize(seconds: list[float]) -> dict[str, Any]:
    """Median, min and max of a list of timings (seconds)."""
    return {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
        "runs": [round(s, 7) for s in seconds],
    }


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
    src = str(Path(__file__).resolve().parents[2])
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
        "from timesformer.tools.bench import _worker_main; raise SystemExit(_worker_main())",
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


# ---------------------------------------------------------------------------------------------
# SDPA kernels and gradient checkpointing checks


_SDPA_KERNELS = (
    ("flash", "flash"),
    ("efficient", "memory-efficient"),
    ("cudnn", "cudnn"),
    ("math", "math"),
)


def sdpa_kernels_used(fn: Callable[[], Any]) -> list[str]:
    """Names of the SDPA kernels that ran during `fn` (flash / memory-efficient / cudnn / math).

    Counts the calls of `scaled_dot_product_attention` and the fused aten kernels they reached at
    the dispatcher; calls that reached none ran the math path (plain matmul and softmax ops).
    """
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    calls = [0]
    fused: dict[str, int] = {}

    class Calls(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is F.scaled_dot_product_attention:
                calls[0] += 1
            return func(*args, **(kwargs or {}))

    class Kernels(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.name()
            if "scaled_dot_product" in name and "backward" not in name:
                fused[name] = fused.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    with Calls(), Kernels():
        fn()
    found = [label for key, label in _SDPA_KERNELS[:-1] if any(key in n for n in fused)]
    if calls[0] > sum(fused.values()):
        found.append("math")
    return found


def sdpa_backends_available(
    shape: tuple[int, int, int, int], dtype: str = "fp32", device: str = "cpu"
) -> dict[str, bool]:
    """Which SDPA backends accept q, k, v of `shape` (B, heads, L, head_dim) here."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "memory-efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }
    q = torch.randn(shape, device=device, dtype=DTYPES[dtype])
    out: dict[str, bool] = {}
    for name, backend in backends.items():
        try:
            with sdpa_kernel([backend]):
                F.scaled_dot_product_attention(q, q, q)
            out[name] = True
        except RuntimeError:
            out[name] = False
    return out


def sdpa_report(dtypes: set[str], device: str) -> dict[str, dict[str, bool]]:
    """For each dtype: which SDPA backends accept the base model's spatial-attention shape."""
    return {d: sdpa_backends_available((8, 12, 197, 64), d, device) for d in sorted(dtypes)}


def check_grad_checkpointing(case: Case, atol: float = 1e-5) -> dict[str, Any]:
    """One training step with and without gradient checkpointing: same logits and gradients?"""
    results = []
    for ckpt in (False, True):
        runner = make_runner(Case.from_dict({**case.to_dict(), "grad_checkpointing": ckpt}), "ours")
        torch.manual_seed(1)  # same drop-path draws in both runs
        logits = runner.step()
        grads = {n: p.grad.detach().clone() for n, p in runner.model.named_parameters()}
        results.append((logits, grads))
    (l0, g0), (l1, g1) = results
    dl = (l0 - l1).abs().max().item()
    dg = max((g0[n] - g1[n]).abs().max().item() for n in g0)
    return {"max_abs_diff_logits": dl, "max_abs_diff_grads": dg, "equal": dl <= atol and dg <= atol}


# ---------------------------------------------------------------------------------------------
# One case, end to end


def _cost(cfg: TimeSformerConfig) -> dict[str, Any]:
    with torch.device("meta"):
        meta = TimeSformer(cfg)
    return count_flops(meta)


def run_case(
    case: Case,
    compare: tuple[str, ...] = (),
    repeats: int = 5,
    warmup: int = 1,
    memory: bool = True,
    time_it: bool = True,
    peaks: dict[str, float] | None = None,
    log: Callable[[str], None] | None = None,
    memory_warmup: int = 1,
) -> dict[str, Any]:
    """Measure `case` for ours (and each of `compare`): cost, latency, throughput, memory, ratios.

    peaks: matmul FLOP/s per dtype (from `matmul_peak`), for the achieved fraction of peak.
    With `time_it=False` (big cases), the time of the single measured memory run is reported.
    """
    log = log or (lambda s: None)
    cfg = case.config()
    cost = _cost(cfg)
    h, w = cost["img_size"]
    result: dict[str, Any] = {
        "label": case.label,
        "case": case.to_dict(),
        "geometry": {
            "attention_type": cfg.attention_type,
            "frames": cfg.num_frames,
            "img_size": [h, w],
            "tokens": 1 + cfg.num_frames * (h // cfg.patch_size) * (w // cfg.patch_size),
            "embed_dim": cfg.embed_dim,
            "depth": cfg.depth,
            "heads": cfg.num_heads,
        },
        "params": cost["params"],
        "gmacs_per_clip": cost["gmacs"],
        "impls": {},
        "ratios": {},
        "notes": [],
    }
    impls = ["ours"]
    for other in compare:
        if other not in IMPLS[1:]:
            raise ValueError(f"--compare {other!r}: expected one of {', '.join(IMPLS[1:])}")
        if other == "baseline":
            if case.train:  # the fast path is for inference only: the baseline is ours
                continue
            impls.append(other)
            continue
        if cfg.attention_type not in HF_ATTENTION_TYPES:
            result["notes"].append(f"transformers' Timesformer has no {cfg.attention_type}")
            continue
        impls.append("hf")
        if cfg.attention_type == "space_only":
            result["notes"].append(
                "hf space_only returns one row of logits per frame (B*T rows); ours averages "
                "the frames' tokens and returns B rows"
            )
    # work per step: forward = MACs; training step (forward + backward) = 3x forward
    flops_per_step = 2 * cost["macs"] * case.batch_size * (3 if case.train else 1)
    device = torch.device(case.device)

    if time_it:
        log(f"[{case.label}] building {', '.join(impls)}")
        runners = {k: make_runner(case, k) for k in impls}
        for k, r in runners.items():
            result["impls"][k] = {"params": r.params}
        # the first (warm-up) step of ours, under the profiler: which SDPA kernel runs
        result["sdpa_kernels"] = sdpa_kernels_used(runners["ours"].step)
        if peaks is not None:  # the peak again, under this case's load; the best one counts
            peaks[case.dtype] = max(
                peaks.get(case.dtype, 0.0), matmul_peak(case.dtype, case.device)
            )
        log(f"[{case.label}] timing: {warmup} warm-up + {repeats} alternating runs")
        out: dict[str, Tensor] = {}

        def keep(k: str) -> Callable[[], None]:
            def step() -> None:
                out[k] = runners[k].step()

            return step

        times = time_alternating(
            {k: keep(k) for k in runners}, repeats=repeats, warmup=warmup, device=device
        )
        for k, ts in times.items():
            result["impls"][k]["latency_s"] = summarize(ts["wall"])
            result["impls"][k]["cpu_s"] = summarize(ts["cpu"])
        for other, key in (("hf", ""), ("baseline", "_vs_baseline")):
            if other in times:
                a, b = times["ours"], times[other]
                result["ratios"]["time" + key] = paired_ratio(a["wall"], b["wall"])
                result["ratios"]["cpu_time" + key] = paired_ratio(a["cpu"], b["cpu"])
        for k, o in out.items():
            result["impls"][k]["logits_shape"] = list(o.shape)
            result["impls"][k]["finite"] = bool(torch.isfinite(o.float()).all())
        del runners, out
        gc.collect()

    if memory:
        for k in impls:
            log(f"[{case.label}] peak memory of {k} (fresh process)")
            mw = max(memory_warmup, 1) if case.train else memory_warmup  # train: grads exist
            spec = {"kind": "case", "case": case.to_dict(), "impl": k, "warmup": mw}
            mem = measure_in_subprocess(spec)
            entry = result["impls"].setdefault(k, {})
            entry["memory"] = {
                "peak_mb": mem["peak_bytes"] / MiB,
                "baseline_mb": mem["baseline_bytes"] / MiB,
                "method": mem["method"],
            }
            if not time_it:
                entry["latency_s"] = summarize([mem["seconds"]])
                entry["latency_s"]["single_run"] = True

    for entry in result["impls"].values():
        lat = entry.get("latency_s", {}).get("median")
        if lat:
            entry["clips_per_s"] = case.batch_size / lat
            entry["tflops"] = flops_per_step / lat / 1e12
    apply_peaks(result, peaks or {})
    if "hf" in result["impls"]:
        ours, hf = result["impls"]["ours"], result["impls"]["hf"]
        if "latency_s" in ours and "latency_s" in hf and "time" not in result["ratios"]:
            result["ratios"]["time"] = ours["latency_s"]["median"] / hf["latency_s"]["median"]
        if "memory" in ours and "memory" in hf and hf["memory"]["peak_mb"] > 0:
            result["ratios"]["memory"] = ours["memory"]["peak_mb"] / hf["memory"]["peak_mb"]
    if "baseline" in result["impls"]:
        ours, ref = result["impls"]["ours"], result["impls"]["baseline"]
        if "memory" in ours and "memory" in ref and ref["memory"]["peak_mb"] > 0:
            m = ours["memory"]["peak_mb"] / ref["memory"]["peak_mb"]
            result["ratios"]["memory_vs_baseline"] = m
    return result


def run_train_case(
    case: Case,
    compare: tuple[str, ...] = (),
    repeats: int = 3,
    warmup: int = 1,
    memory: bool = True,
    peaks: dict[str, float] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """A training step with and without gradient checkpointing: time, activation memory, and
    whether logits and gradients are equal."""
    base = Case.from_dict({**case.to_dict(), "train": True, "grad_checkpointing": False})
    ckpt = Case.from_dict({**base.to_dict(), "grad_checkpointing": True})
    r0 = run_case(base, compare, repeats, warmup, memory, True, peaks, log)
    r1 = run_case(ckpt, compare, repeats, warmup, memory, True, peaks, log)
    log(f"[{base.label}] gradient checkpointing: equal outputs and gradients?")
    res: dict[str, Any] = {
        "label": base.label.replace(" train", " train step"),
        "without_checkpointing": r0,
        "with_checkpointing": r1,
        "equality": check_grad_checkpointing(base),
        "ratios": {},
    }
    for impl in r0["impls"]:
        m0 = r0["impls"][impl].get("memory", {}).get("peak_mb")
        m1 = r1["impls"].get(impl, {}).get("memory", {}).get("peak_mb")
        if m0 and m1:
            res["ratios"][f"{impl}_activation_memory_ckpt"] = m1 / m0
        t0 = r0["impls"][impl].get("latency_s", {}).get("median")
        t1 = r1["impls"].get(impl, {}).get("latency_s", {}).get("median")
        if t0 and t1:
            res["ratios"][f"{impl}_time_ckpt"] = t1 / t0
    return res


# ---------------------------------------------------------------------------------------------
# Figure 3: joint vs divided cost, counted


def attention_matrix_bytes(
    attention_type: str, frames: int, grid: tuple[int, int], heads: int, bytes_per: int = 4
) -> int:
    """Size of the largest attention-score tensor of one block, batch 1, for an implementation
    that materialises it (as Hugging Face and the official code do; SDPA does not).

    joint: heads * (1 + T*N)^2; divided: max(temporal heads*N*T^2, spatial heads*T*(1+N)^2);
    space_only: heads*T*(1+N)^2. An explicit softmax holds about two such tensors at once.
    """
    N = grid[0] * grid[1]
    T = frames
    if attention_type == "joint_space_time":
        elems = heads * (1 + T * N) ** 2
    elif attention_type == "divided_space_time":
        elems = max(heads * N * T * T, heads * T * (1 + N) ** 2)
    elif attention_type == "space_only":
        elems = heads * T * (1 + N) ** 2
    else:
        raise ValueError(f"attention_matrix_bytes: no formula for {attention_type!r}")
    return elems * bytes_per


def cost_sweep(
    model: str = "timesformer_base",
    sizes: tuple[int, ...] = (224, 336, 448, 560),
    frames: tuple[int, ...] = (8, 32, 64, 96),
    attention_types: tuple[str, ...] = ("joint_space_time", "divided_space_time"),
    base_frames: int = 8,
    base_size: int = 224,
    overrides: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The paper's Figure 3, counted: MACs and attention-matrix memory of each attention type
    against frame size (at `base_frames`) and against frames (at `base_size`)."""
    rows = []
    geoms = [("size", base_frames, s) for s in sizes] + [("frames", f, base_size) for f in frames]
    for sweep, T, S in geoms:
        for att in attention_types:
            over = {**(overrides or {}), "attention_type": att, "num_frames": T, "img_size": S}
            cfg = get_config(model, **over)
            cost = _cost(cfg)
            grid = cfg.grid_size
            rows.append(
                {
                    "sweep": sweep,
                    "attention_type": att,
                    "frames": T,
                    "img_size": S,
                    "tokens": 1 + T * grid[0] * grid[1],
                    "gmacs": cost["gmacs"],
                    "attn_matrix_gb": attention_matrix_bytes(att, T, grid, cfg.num_heads) / 1e9,
                    # training keeps every block's softmax output for the backward pass
                    "train_attn_gb": cfg.depth
                    * attention_matrix_bytes(att, T, grid, cfg.num_heads)
                    / 1e9,
                }
            )
    return rows


def plot_sweep(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Figure 3 as a PNG: TMACs and attention-matrix memory, vs size and vs frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for col, (sweep, key, xlabel) in enumerate(
        [("size", "img_size", "frame size (px), 8 frames"), ("frames", "frames", "frames, 224 px")]
    ):
        for att in sorted({r["attention_type"] for r in rows}):
            sel = [r for r in rows if r["sweep"] == sweep and r["attention_type"] == att]
            xs = [r[key] for r in sel]
            axes[0, col].plot(xs, [r["gmacs"] / 1e3 for r in sel], "o-", label=_SHORT[att])
            axes[1, col].plot(xs, [r["train_attn_gb"] for r in sel], "o-", label=_SHORT[att])
        axes[0, col].set_ylabel("TMACs per clip")
        axes[1, col].set_ylabel("attention matrices kept for backward,\n1 clip, fp32 (GB)")
        axes[1, col].axhline(32, color="grey", ls="--", lw=0.8, label="32 GB (V100)")
        for ax in axes[:, col]:
            ax.set_xlabel(xlabel)
            ax.set_xticks(sorted({r[key] for r in rows if r["sweep"] == sweep}))
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend()
    fig.suptitle("TimeSformer-B cost: joint vs divided space-time attention (paper Figure 3)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Machine


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """CPU, cores, threads, accelerator and library versions of this run."""
    import numpy

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
        have = (
            set(text.split("flags", 1)[1].split("\n", 1)[0].split()) if "flags" in text else set()
        )
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in have)
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "device": device,
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    from .. import __version__

    info["timesformer"] = __version__
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def apply_peaks(result: dict[str, Any], peaks: dict[str, float]) -> None:
    """Set each implementation's achieved fraction of the matmul peak of the case's dtype."""
    peak = peaks.get(result["case"]["dtype"])
    for entry in result["impls"].values():
        if peak and "tflops" in entry:
            entry["peak_fraction"] = entry["tflops"] * 1e12 / peak


def finish_peaks(report: dict[str, Any]) -> None:
    """Recompute every fraction of peak with the run's best (final) matmul peaks."""
    peaks = report.get("matmul_peak_flops", {})
    for r in report.get("cases", []):
        apply_peaks(r, peaks)
    for t in report.get("train", []):
        for key in ("without_checkpointing", "with_checkpointing"):
            apply_peaks(t[key], peaks)


def peaks_for(dtypes: set[str], device: str, log: Callable[[str], None] | None = None) -> dict:
    """Matmul peak FLOP/s per dtype on `device`, measured now."""
    out = {}
    for d in sorted(dtypes):
        if log:
            log(f"matmul peak {d}")
        out[d] = matmul_peak(d, device)
    return out


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


# ---------------------------------------------------------------------------------------------
# The standard set (`make bench`), goals and the report


@dataclass
class Goal:
    """A target on one measured ratio (ours / Hugging Face unless said otherwise)."""

    name: str
    label: str  # the case (or train case) label it reads
    ratio: str  # key in that result's "ratios"
    target: float


def standard_cases(device: str = "cpu") -> tuple[list[dict[str, Any]], list[Case], list[Goal]]:
    """The cases of `make bench`, as run_case keyword sets, training cases, and the goals.

    "extra": implementations compared in that case besides the run's `compare` (the A/B
    baseline: ours with the inference fast path off).
    """
    base = {"model": "timesformer_base", "device": device}
    runs = [
        {"case": Case(**base, dtype="fp32"), "repeats": 5, "extra": ("baseline",)},
        {"case": Case(**base, dtype="bf16"), "repeats": 3},
        {"case": Case(**base, attention_type="space_only"), "repeats": 3},
        {"case": Case(**base, attention_type="joint_space_time", frames=16), "repeats": 3},
        # TimeSformer-L geometry: one measured run per implementation, in its own process
        {"case": Case(**base, frames=96), "time_it": False, "extra": ("baseline",)},
        {"case": Case("timesformer_small", batch_size=4, device=device), "repeats": 3},
    ]
    train = [Case("timesformer_small", device=device)]
    goals = [
        Goal("base 8x224 divided, fp32, batch 1: time", runs[0]["case"].label, "time", 1.00),
        Goal("base 8x224 divided, bf16, batch 1: time", runs[1]["case"].label, "time", 0.92),
        Goal("joint 16x224: time", runs[3]["case"].label, "time", 0.60),
        Goal("joint 16x224: peak memory", runs[3]["case"].label, "memory", 0.50),
        Goal("divided 96x224: peak memory", runs[4]["case"].label, "memory", 0.60),
        Goal(
            "small train step: activation memory with / without checkpointing (ours)",
            train[0].label.replace(" fp32", " fp32 train step").replace("  ", " "),
            "ours_activation_memory_ckpt",
            0.50,
        ),
    ]
    return runs, train, goals


def cost_table(
    model: str = "timesformer_base", overrides: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Parameters and GMACs per clip of `model` under every attention type (counted on meta)."""
    rows = []
    for att in ATTENTION_TYPES:
        cfg = get_config(model, **{**(overrides or {}), "attention_type": att})
        cost = _cost(cfg)
        rows.append(
            {
                "model": model,
                "attention_type": att,
                "frames": cfg.num_frames,
                "img_size": cost["img_size"][0],
                "params_m": cost["params"] / 1e6,
                "gmacs": cost["gmacs"],
            }
        )
    return rows


def evaluate_goals(report: dict[str, Any], goals: list[Goal]) -> list[dict[str, Any]]:
    """Each goal with its measured ratio and whether it is met."""
    by_label = {r["label"]: r for r in report.get("cases", []) + report.get("train", [])}
    out = []
    for g in goals:
        value = by_label.get(g.label, {}).get("ratios", {}).get(g.ratio)
        out.append(
            {
                "goal": g.name,
                "case": g.label,
                "ratio": g.ratio,
                "target": g.target,
                "measured": value,
                "met": None if value is None else value <= g.target,
            }
        )
    return out


def run_standard(
    device: str = "cpu",
    compare: tuple[str, ...] = ("hf",),
    sweep_png: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The full standard benchmark: peaks, every standard case, training, Figure 3, goals."""
    runs, train, goals = standard_cases(device)
    report = new_report(device)
    dtypes = {r["case"].dtype for r in runs} | {c.dtype for c in train}
    report["matmul_peak_flops"] = peaks_for(dtypes, device, log)
    report["cost"] = cost_table("timesformer_base")
    for r in runs:
        kw = {k: v for k, v in r.items() if k not in ("case", "extra")}
        both = tuple(dict.fromkeys(compare + tuple(r.get("extra", ()))))
        report["cases"].append(
            run_case(r["case"], both, peaks=report["matmul_peak_flops"], log=log, **kw)
        )
    for c in train:
        report["train"].append(
            run_train_case(c, compare, peaks=report["matmul_peak_flops"], log=log)
        )
    report["sweep"] = cost_sweep()
    if sweep_png:
        report["sweep_png"] = str(plot_sweep(report["sweep"], sweep_png))
    report["sdpa_backends"] = sdpa_report(dtypes, device)
    report["goals"] = evaluate_goals(report, goals)
    finish_peaks(report)
    return report


def new_report(device: str = "cpu") -> dict[str, Any]:
    """An empty report with the machine and the time."""
    return {
        "command": "timesformer " + " ".join(sys.argv[1:]) if sys.argv else "",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(device),
        "matmul_peak_flops": {},
        "cost": [],
        "cases": [],
        "train": [],
        "sweep": [],
        "goals": [],
    }


# ---------------------------------------------------------------------------------------------
# Markdown


def _f(v: Any, fmt: str = ".2f") -> str:
    return "–" if v is None else format(v, fmt)


def _impl_rows(result: dict[str, Any], label: str | None = None) -> list[str]:
    rows = []
    for impl, e in result["impls"].items():
        lat = e.get("latency_s", {})
        single = " (1 run)" if lat.get("single_run") else ""
        ms = lat.get("median")
        rows.append(
            f"| {label or result['label']} | {impl} | {_f(e.get('params', result['params']) / 1e6, '.1f')} "
            f"| {_f(result['gmacs_per_clip'], '.1f')} "
            f"| {_f(ms * 1e3 if ms else None, '.0f')}{single} "
            f"| {_f(e.get('clips_per_s'), '.2f')} "
            f"| {_f(e.get('memory', {}).get('peak_mb'), '.0f')} "
            f"| {_f(100 * e['peak_fraction'] if 'peak_fraction' in e else None, '.0f')} "
            f"| {_ratio_cell(result, impl, 'time')} | {_ratio_cell(result, impl, 'memory')} |"
        )
    return rows


def _ratio_cell(result: dict[str, Any], impl: str, what: str) -> str:
    key = {"ours": "", "baseline": "_vs_baseline"}.get(impl) if "hf" in result["impls"] else None
    if impl == "baseline":  # ours / ours with the fast path off
        key = "_vs_baseline"
    if key is None or what + key not in result["ratios"]:
        return ""
    text = _f(result["ratios"][what + key])
    if what == "time" and "cpu_time" + key in result["ratios"]:
        text += f" (cpu {result['ratios']['cpu_time' + key]:.2f})"
    return ("ours/baseline " if impl == "baseline" else "") + text


_CASE_HEAD = (
    "| case | impl | params (M) | GMAC/clip | median ms | clips/s | peak MB | % matmul peak "
    "| time ours/hf | memory ours/hf |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables for people."""
    m = report["machine"]
    out = [
        f"Command: `{report.get('command', '')}` ({report.get('date', '')})",
        "",
        f"Machine: {m['cpu']} ({m.get('cpu_flags', '')}), {m['cores']} cores, "
        f"{m['torch_threads']} torch threads, device {m['device']}"
        + (f" ({m['gpu']})" if m.get("gpu") else "")
        + f"; {m['platform']}.",
        f"Versions: python {m['python']}, torch {m['torch']}, transformers {m['transformers']}, "
        f"numpy {m['numpy']}, timesformer {m['timesformer']}.",
    ]
    peaks = report.get("matmul_peak_flops", {})
    if peaks:
        out.append(
            "Matmul peak (x @ W^T, best measurement of this run): "
            + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in sorted(peaks.items()))
            + "."
        )
    if report.get("goals"):
        out += ["", "### Goals (ratios ours / Hugging Face, same run)", ""]
        out += ["| goal | measured | target | met |", "|---|---:|---:|---|"]
        for g in report["goals"]:
            met = {True: "yes", False: "**no**", None: "not measured"}[g["met"]]
            out.append(f"| {g['goal']} | {_f(g['measured'])} | <= {g['target']:.2f} | {met} |")
    for r in report.get("cases", []):
        fr = {k: e["peak_fraction"] for k, e in r["impls"].items() if "peak_fraction" in e}
        if r["geometry"]["attention_type"] == "divided_space_time" and fr:
            out.append("")
            out.append(
                f"Achieved fraction of the {r['case']['dtype']} matmul peak, {r['label']}: "
                + ", ".join(f"{k} {100 * v:.0f}%" for k, v in fr.items())
                + " (model FLOPs = 2 x the paper's MACs)."
            )
            break
    if report.get("cases"):
        out += ["", "### Inference: latency, throughput, peak memory", "", _CASE_HEAD]
        for r in report["cases"]:
            out += _impl_rows(r)
        notes = sorted({n for r in report["cases"] for n in r.get("notes", [])})
        kernels = sorted({k for r in report["cases"] for k in r.get("sdpa_kernels", [])})
        out.append("")
        out.append(
            "Latency: median after warm-up, ours and theirs alternating in one process; "
            "'(1 run)': the single run of the memory measurement (a process whose allocator "
            "maps every big buffer afresh: slower than usual for both). Time ratio: median "
            "over back-to-back pairs of runs (wall clock; cpu: process CPU time). Peak MB: growth of the "
            "resident set (CPU) or of max_memory_allocated (GPU) during one step, in a fresh "
            "process per case. % matmul peak: model FLOPs (2 x MACs) per second over this "
            "run's matmul peak for the same dtype."
        )
        if kernels:
            out.append(f"SDPA kernels that ran (ours): {', '.join(kernels)}.")
        for n in notes:
            out.append(f"Note: {n}.")
    if report.get("train"):
        out += ["", "### Training step (forward + backward)", "", _CASE_HEAD]
        for t in report["train"]:
            for key in ("without_checkpointing", "with_checkpointing"):
                out += _impl_rows(t[key])
        out.append("")
        for t in report["train"]:
            eq = t["equality"]
            r = t["ratios"]
            parts = [
                f"{impl}: activation memory {_f(r.get(f'{impl}_activation_memory_ckpt'))}x, "
                f"step time {_f(r.get(f'{impl}_time_ckpt'))}x"
                for impl in t["without_checkpointing"]["impls"]
            ]
            out.append(
                f"{t['label']}, gradient checkpointing vs none: {'; '.join(parts)} (time: "
                f"ratio of medians). Logits and gradients with vs without: max |diff| "
                f"{eq['max_abs_diff_logits']:.1e} and {eq['max_abs_diff_grads']:.1e} "
                f"({'equal' if eq['equal'] else 'NOT equal'})."
            )
        out.append(
            "Peak MB of a training step is its activation memory: parameters and gradient "
            "buffers exist before the measured step. % matmul peak counts 3x forward FLOPs."
        )
    if report.get("cost"):
        out += ["", "### Cost per clip of every attention scheme (counted)", ""]
        out += ["| model | attention | frames x size | params (M) | GMAC/clip |"]
        out += ["|---|---|---|---:|---:|"]
        for c in report["cost"]:
            out.append(
                f"| {c['model']} | {c['attention_type']} | {c['frames']}x{c['img_size']} "
                f"| {c['params_m']:.1f} | {c['gmacs']:.1f} |"
            )
    if report.get("sweep"):
        out += ["", "### Figure 3: joint vs divided space-time attention, counted", ""]
        out += [
            "| frames x size | tokens | joint GMAC | divided GMAC | joint / divided MACs "
            "| joint attn GB | divided attn GB | joint train GB | divided train GB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        rows = report["sweep"]
        seen = set()
        for r in rows:
            key = (r["frames"], r["img_size"])
            if key in seen:
                continue
            seen.add(key)
            pair = {x["attention_type"]: x for x in rows if (x["frames"], x["img_size"]) == key}
            j, d = pair.get("joint_space_time"), pair.get("divided_space_time")
            if not (j and d):
                continue
            out.append(
                f"| {key[0]}x{key[1]} | {r['tokens']} | {j['gmacs']:.0f} | {d['gmacs']:.0f} "
                f"| {j['gmacs'] / d['gmacs']:.2f} "
                f"| {j['attn_matrix_gb']:.2f} | {d['attn_matrix_gb']:.2f} "
                f"| {j['train_attn_gb']:.1f} | {d['train_attn_gb']:.1f} |"
            )
        out.append("")
        out.append(
            "attn GB: the largest attention-score tensor of one block for one clip in fp32, as "
            "an implementation that materialises it (Hugging Face, the official code) holds it; "
            "an explicit softmax holds about two at once. train GB: one such tensor per block, "
            "kept for the backward pass of one clip. At 448 px or 32 frames joint attention "
            "needs 22.7 GB for these alone, which with the other activations, the weights, "
            "gradients and optimizer state leaves nothing of a 32 GB V100 (the paper reports "
            "joint attention running out of memory there); divided needs under 3 GB. Ours "
            "calls SDPA, which never builds these tensors."
        )
        if report.get("sweep_png"):
            out.append(f"\n![Figure 3]({Path(report['sweep_png']).name})")
    if report.get("sdpa_backends"):
        out.append("")
        for dtype, backends in sorted(report["sdpa_backends"].items()):
            ok = [k for k, v in backends.items() if v]
            out.append(
                f"SDPA backends that accept the base spatial-attention shape (8 x 12 heads x "
                f"197 x 64) in {dtype} here: {', '.join(ok)}."
            )
    return "\n".join(out) + "\n"


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def write_markdown(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report into `path` between the bench markers, keeping the text around them
    (the hand-written analysis); a file without markers gets them appended."""
    path = Path(path)
    body = f"{BEGIN}\n{to_markdown(report)}{END}\n"
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1].lstrip("\n")
            text = head + body + ("\n" + tail if tail else "")
        else:
            text = text.rstrip("\n") + "\n\n## Latest `make bench` run\n\n" + body
    else:
        text = "# Performance\n\n## Latest `make bench` run\n\n" + body
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
