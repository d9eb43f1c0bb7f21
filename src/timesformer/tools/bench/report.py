"""The benchmark report for people (Markdown tables) and for files (JSON without NaN)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...files import atomic_write_text
from ...files import json_safe as json_safe

# ---------------------------------------------------------------------------------------------
# Markdown


def _f(v: Any, fmt: str = ".2f") -> str:
    return "–" if v is None else format(v, fmt)


def _mb(v: float | None) -> str:
    """Megabytes with the digits a small model needs (0.31, not 0)."""
    if v is None:
        return "–"
    return format(v, ".0f" if abs(v) >= 10 else ".1f" if abs(v) >= 1 else ".2f")


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
            f"| {_mb(e.get('memory', {}).get('peak_mb'))} "
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
    if what == "time" and result.get("spread_warning"):
        text += " " + busy_mark(result)
    return ("ours/baseline " if impl == "baseline" else "") + text


def busy_mark(result: dict[str, Any]) -> str:
    """'busy (spread 35%)': the largest spread of a case whose runs varied by over 20%."""
    sp = max(e.get("latency_s", {}).get("spread", 0.0) for e in result["impls"].values())
    return f"**busy** (spread {100 * sp:.0f}%)"


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
            if g.get("busy"):
                met += f" ({g['busy']})"
            op = ">=" if g.get("at_least") else "<="
            out.append(f"| {g['goal']} | {_f(g['measured'])} | {op} {g['target']:.2f} | {met} |")
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
        choices = sorted({c for r in report["cases"] for c in r.get("attention_choices", [])})
        if choices:
            out.append(f"Attention kernel per shape ('auto', ours): {'; '.join(choices)}.")
        if any(r.get("spread_warning") for r in report["cases"]):
            out.append(
                "**busy**: that case's runs varied by more than 20% (max - min over median): "
                "the machine's load changed during it; its ratio is less sure."
            )
        for n in notes:
            out.append(f"Note: {n}.")
    if report.get("train") or report.get("train_steps"):
        out += ["", "### Training step (forward + backward)", "", _CASE_HEAD]
        for t in report.get("train", []):
            for key in ("without_checkpointing", "with_checkpointing"):
                out += _impl_rows(t[key])
        for r in report.get("train_steps", []):  # + AdamW: the whole optimizer step
            out += _impl_rows(r)
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
    atomic_write_text(path, text)
    return path
