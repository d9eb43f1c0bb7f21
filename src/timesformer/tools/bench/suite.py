"""Benchmark runs: one case end to end, a training step with and without checkpointing, the
standard set of `make bench` with its goals, and the empty report they fill."""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .cases import HF_ATTENTION_TYPES, IMPLS, Case, make_runner
from .cost import cost_sweep, cost_table, model_cost, plot_sweep
from .machine import machine_info
from .measure import (
    MiB,
    matmul_peak,
    measure_in_subprocess,
    paired_ratio,
    spread_warning,
    summarize,
    time_alternating,
)
from .sdpa import attention_choices, sdpa_kernels_used, sdpa_report


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
    cost = model_cost(cfg)
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
        # and what the "auto" attention kernel chose per shape (timing both during that step)
        result["attention_choices"] = attention_choices()
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
        warn = spread_warning(result)
        result["spread_warning"] = warn  # None: steady runs
        if warn:
            log(f"[{case.label}] warning: {warn}")
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
    ours = result["impls"]["ours"]
    for other, key, whats in (
        ("hf", "", ("time", "memory")),
        ("baseline", "_vs_baseline", ("memory",)),
    ):
        if other not in result["impls"]:
            continue
        for what in whats:  # the time ratio of timed runs is paired (above); else of medians
            ratio = _ratio(ours, result["impls"][other], what)
            if ratio is not None and what + key not in result["ratios"]:
                result["ratios"][what + key] = ratio
    return result


def run_train_case(
    case: Case, compare: tuple[str, ...] = (), repeats: int = 3, **options: Any
) -> dict[str, Any]:
    """A training step with and without gradient checkpointing: time, activation memory, and
    whether logits and gradients are equal. options: `run_case`'s warmup, memory, peaks, log
    (both steps are timed)."""
    base = Case.from_dict({**case.to_dict(), "train": True, "grad_checkpointing": False})
    ckpt = Case.from_dict({**base.to_dict(), "grad_checkpointing": True})
    r0 = run_case(base, compare, repeats, time_it=True, **options)
    r1 = run_case(ckpt, compare, repeats, time_it=True, **options)
    (options.get("log") or (lambda s: None))(
        f"[{base.label}] gradient checkpointing: equal outputs and gradients?"
    )
    res: dict[str, Any] = {
        "label": base.label.replace(" train", " train step"),
        "without_checkpointing": r0,
        "with_checkpointing": r1,
        "equality": check_grad_checkpointing(base),
        "ratios": {},
    }
    for impl in r0["impls"]:
        for what, name in (("memory", "activation_memory"), ("time", "time")):
            ratio = _ratio(r1["impls"].get(impl, {}), r0["impls"][impl], what)
            if ratio is not None:
                res["ratios"][f"{impl}_{name}_ckpt"] = ratio
    return res


def _ratio(a: dict[str, Any], b: dict[str, Any], what: str) -> float | None:
    """a / b of two implementations' entries: median latency ("time") or peak MB ("memory");
    None where either is missing or zero."""
    path = ("latency_s", "median") if what == "time" else ("memory", "peak_mb")
    x, y = a.get(path[0], {}).get(path[1]), b.get(path[0], {}).get(path[1])
    return x / y if x is not None and y else None


def apply_peaks(result: dict[str, Any], peaks: dict[str, float]) -> None:
    """Set each implementation's achieved fraction of the matmul peak of the case's dtype."""
    peak = peaks.get(result["case"]["dtype"])
    for entry in result["impls"].values():
        if peak and "tflops" in entry:
            entry["peak_fraction"] = entry["tflops"] * 1e12 / peak


def finish_peaks(report: dict[str, Any]) -> None:
    """Recompute every fraction of peak with the run's best (final) matmul peaks."""
    peaks = report.get("matmul_peak_flops", {})
    for r in report.get("cases", []) + report.get("train_steps", []):
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


# ---------------------------------------------------------------------------------------------
# The standard set (`make bench`), goals and the report


@dataclass
class Goal:
    """A target on one measured ratio (ours / Hugging Face unless said otherwise)."""

    name: str
    label: str  # the case (or train case) label it reads
    ratio: str  # key in that result's "ratios"
    target: float
    at_least: bool = False  # met when measured >= target (a fraction of peak), else <=


def standard_cases(device: str = "cpu") -> tuple[list[dict[str, Any]], list[Case], list[Goal]]:
    """The cases of `make bench`, as run_case keyword sets, training cases, and the goals.

    "extra": implementations compared in that case besides the run's `compare` (the A/B
    baseline: ours with the inference fast path off).
    """
    base = {"model": "timesformer_base", "device": device}
    runs = [
        {"case": Case(**base, dtype="fp32"), "repeats": 5, "extra": ("baseline",)},
        {"case": Case(**base, dtype="bf16"), "repeats": 3},
        # bf16 weights cast once (both implementations), no autocast
        {"case": Case(**base, dtype="bf16", cast_weights=True), "repeats": 3},
        {"case": Case(**base, attention_type="space_only"), "repeats": 3},
        {"case": Case(**base, attention_type="joint_space_time", frames=16), "repeats": 3},
        # TimeSformer-L geometry: one measured run per implementation, in its own process
        {"case": Case(**base, frames=96), "time_it": False, "extra": ("baseline",)},
        {"case": Case("timesformer_small", batch_size=4, device=device), "repeats": 3},
    ]
    train = [Case("timesformer_small", device=device)]
    small4 = {"model": "timesformer_small", "batch_size": 4, "device": device, "train": True}
    steps = [  # forward + backward + AdamW, fp32 and bf16 (autocast)
        {"case": Case(**small4, optimizer=True), "repeats": 3, "section": "train_steps"},
        {
            "case": Case(**small4, optimizer=True, dtype="bf16"),
            "repeats": 3,
            "section": "train_steps",
        },
    ]
    runs += steps
    bf16w = runs[2]["case"].label
    goals = [
        Goal("base 8x224 divided, fp32, batch 1: time", runs[0]["case"].label, "time", 0.85),
        Goal(
            "base 8x224 divided, bf16 autocast, batch 1: time", runs[1]["case"].label, "time", 0.70
        ),
        Goal("base 8x224 divided, bf16 weights, batch 1: time", bf16w, "time", 0.70),
        Goal(
            "same, bf16 weights: fraction of the bf16 matmul peak (ours)",
            bf16w,
            "ours_peak_fraction",
            0.65,
            at_least=True,
        ),  # fmt: skip
        Goal("joint 16x224: time", runs[4]["case"].label, "time", 0.60),
        Goal("joint 16x224: peak memory", runs[4]["case"].label, "memory", 0.50),
        Goal("divided 96x224: peak memory", runs[5]["case"].label, "memory", 0.60),
        Goal("small b4 train step + AdamW, fp32: time", steps[0]["case"].label, "time", 0.80),
        Goal("same: peak memory", steps[0]["case"].label, "memory", 1.00),
        Goal("small b4 train step + AdamW, bf16: time", steps[1]["case"].label, "time", 0.80),
        Goal("same, bf16: peak memory", steps[1]["case"].label, "memory", 1.00),
        Goal(
            "small train step: activation memory with / without checkpointing (ours)",
            train[0].label.replace(" fp32", " fp32 train step").replace("  ", " "),
            "ours_activation_memory_ckpt",
            0.50,
        ),
    ]
    return runs, train, goals


def evaluate_goals(report: dict[str, Any], goals: list[Goal]) -> list[dict[str, Any]]:
    """Each goal with its measured ratio and whether it is met."""
    results = report.get("cases", []) + report.get("train", []) + report.get("train_steps", [])
    by_label = {r["label"]: r for r in results}
    out = []
    for g in goals:
        r = by_label.get(g.label, {})
        value = r.get("ratios", {}).get(g.ratio)
        if g.ratio == "ours_peak_fraction":
            value = r.get("impls", {}).get("ours", {}).get("peak_fraction")
        met = None if value is None else (value >= g.target if g.at_least else value <= g.target)
        subs = [r] + [r[k] for k in ("without_checkpointing", "with_checkpointing") if k in r]
        busy = next((s["spread_warning"] for s in subs if s.get("spread_warning")), None)
        out.append(
            {
                "goal": g.name,
                "case": g.label,
                "ratio": g.ratio,
                "target": g.target,
                "at_least": g.at_least,
                "measured": value,
                "met": met,
                "busy": "busy: runs varied by over 20%" if busy else None,
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
        kw = {k: v for k, v in r.items() if k not in ("case", "extra", "section")}
        both = tuple(dict.fromkeys(compare + tuple(r.get("extra", ()))))
        report[r.get("section", "cases")].append(
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
        "train_steps": [],
        "sweep": [],
        "goals": [],
    }
