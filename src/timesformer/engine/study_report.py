"""`timesformer study` outputs: results.json, report.md (tables beside the paper's numbers,
findings computed from the measured numbers) and PNG plots.

Every verdict in the report is computed here from the rows, with the threshold it uses printed
beside it: nothing about the miniature's outcome is written in advance.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ..files import atomic_write, atomic_write_text

# Paper, Table 1 (PAPER.md): params (ViT-B, K400 head, millions), K400 and SSv2 top-1.
PAPER_TABLE1: dict[str, tuple[float, float, float]] = {
    "space_only": (85.9, 76.9, 36.6),
    "joint_space_time": (85.9, 77.4, 58.5),
    "divided_space_time": (121.4, 78.0, 59.5),
    "sparse_local_global": (121.4, 75.9, 56.3),
    "axial": (156.8, 73.5, 56.2),
}
# Paper, Table 4 (as recalled from the paper): K400 and SSv2 top-1, divided attention.
PAPER_TABLE4: dict[str, tuple[float, float]] = {
    "none": (75.4, 45.8),
    "space": (77.8, 52.5),
    "space_time": (78.0, 59.5),
}
LABELS = {
    "divided_space_time": "Divided Space-Time (T+S)",
    "space_only": "Space (S)",
    "joint_space_time": "Joint Space-Time (ST)",
    "sparse_local_global": "Sparse Local Global (L+G)",
    "axial": "Axial (T+W+H)",
    "none": "None",
    "space": "Space",
    "space_time": "Space-Time",
}
# thresholds of the verdicts (top-1 points)
NEAR_CHANCE = 10.0  # "near chance": within this many points of chance
COMPETITIVE = 5.0  # "competitive": within this many points of the best scheme
FAR_ABOVE = 15.0  # "far above": at least this many points higher
RISES = 2.0  # "rises": the largest setting beats the smallest by more than this


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _cell(r: dict[str, Any]) -> str:
    if r["top1_mean"] is None:
        return "not run"
    sd = f" ± {100 * r['top1_std']:.1f}" if r["seeds"] > 1 else ""
    return f"{_pct(r['top1_mean'])}{sd}"


def _find(rows: list[dict[str, Any]], study: str, **match: Any) -> dict[str, Any] | None:
    for r in rows:
        if r["study"] == study and all(r[k] == v for k, v in match.items()):
            return r
    return None


def _pts(r: dict[str, Any] | None) -> float | None:
    return None if r is None or r["top1_mean"] is None else 100 * r["top1_mean"]


def _sd(r: dict[str, Any]) -> float:
    return 100 * (r["top1_std"] or 0.0)


def mean_std(scores: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one score)."""
    m = statistics.fmean(scores)
    return m, statistics.stdev(scores) if len(scores) > 1 else 0.0


def machine() -> dict[str, Any]:
    """CPU model, cores, torch and Python versions: the report's 'machine' line."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 1,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }


# ------------------------------------------------------------------------------ tables


def table1_md(rows: list[dict[str, Any]]) -> str:
    out = [
        "| attention | params (appearance / motion) | MACs per clip | appearance top-1 | "
        "motion top-1 | paper params | paper K400 | paper SSv2 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for att, (p_params, k400, ssv2) in PAPER_TABLE1.items():
        a = _find(rows, "table1", attention_type=att, dataset="appearance")
        m = _find(rows, "table1", attention_type=att, dataset="motion")
        if a is None or m is None:
            continue
        out.append(
            f"| {LABELS[att]} | {a['params'] / 1e3:.1f}k / {m['params'] / 1e3:.1f}k | "
            f"{m['macs'] / 1e6:.1f}M | {_cell(a)} | {_cell(m)} | {p_params}M | {k400} | {ssv2} |"
        )
    return "\n".join(out)


def table4_md(rows: list[dict[str, Any]]) -> str:
    out = [
        "| position embedding | appearance top-1 | motion top-1 | paper K400 | paper SSv2 |",
        "|---|---|---|---|---|",
    ]
    for pe, (k400, ssv2) in PAPER_TABLE4.items():
        a = _find(rows, "table4", pos_embed=pe, dataset="appearance")
        m = _find(rows, "table4", pos_embed=pe, dataset="motion")
        if a is None or m is None:
            continue
        out.append(f"| {LABELS[pe]} | {_cell(a)} | {_cell(m)} | {k400} | {ssv2} |")
    return "\n".join(out)


def fig5_md(rows: list[dict[str, Any]]) -> str:
    out = ["| axis | frames | size (px) | tokens per clip | MACs per clip | motion top-1 |"]
    out.append("|---|---|---|---|---|---|")
    for r in rows:
        if r["study"] != "fig5":
            continue
        tokens = r["num_frames"] * (r["img_size"] // r.get("patch_size", 8)) ** 2
        out.append(
            f"| {r['axis']} | {r['num_frames']} | {r['img_size']} | {tokens} | "
            f"{r['macs'] / 1e6:.1f}M | {_cell(r)} |"
        )
    return "\n".join(out)


# ------------------------------------------------------------------------------ findings


def findings(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(what the paper found, what the miniature measured, verdict) for every claim whose
    cells were run."""
    out: list[tuple[str, str, str]] = []

    def verdict(ok: bool) -> str:
        return "agrees" if ok else "**does not agree**"

    so_m = _find(rows, "table1", attention_type="space_only", dataset="motion")
    so_a = _find(rows, "table1", attention_type="space_only", dataset="appearance")
    if _pts(so_m) is not None:
        chance = 100 * so_m["chance"]
        gap = _pts(so_m) - chance
        out.append((
            "Space-only attention cannot relate frames: far behind on SSv2 (36.6 against 59.5); "
            "where the order of frames is the only cue, that means chance",
            f"space-only on motion: {_pts(so_m):.1f}% against chance {chance:.0f}% "
            f"({gap:+.1f} points; near chance = within {NEAR_CHANCE:.0f})",
            verdict(abs(gap) <= NEAR_CHANCE),
        ))  # fmt: skip
    t1a = [r for r in rows if r["study"] == "table1" and r["dataset"] == "appearance"]
    if _pts(so_a) is not None and all(_pts(r) is not None for r in t1a):
        best = max(t1a, key=lambda r: r["top1_mean"])
        gap = _pts(best) - _pts(so_a)
        out.append((
            "Space-only is competitive on K400 (76.9 against the best 78.0)",
            f"space-only on appearance: {_pts(so_a):.1f}%, {gap:.1f} points below the best "
            f"({LABELS[best['attention_type']]}, {_pts(best):.1f}%; competitive = within "
            f"{COMPETITIVE:.0f})",
            verdict(gap <= COMPETITIVE),
        ))  # fmt: skip
    t1m = [r for r in rows if r["study"] == "table1" and r["dataset"] == "motion"]
    if _pts(so_m) is not None:
        for r in t1m:
            if r["attention_type"] == "space_only" or _pts(r) is None:
                continue
            d = _pts(r) - _pts(so_m)
            paper = PAPER_TABLE1[r["attention_type"]][2] - PAPER_TABLE1["space_only"][2]
            out.append((
                f"{LABELS[r['attention_type']]} is far above space-only on SSv2 "
                f"(+{paper:.1f} points)",
                f"motion: {_pts(r):.1f} ± {_sd(r):.1f}% against {_pts(so_m):.1f}%, "
                f"{d:+.1f} points (far above = at least +{FAR_ABOVE:.0f})",
                verdict(d >= FAR_ABOVE),
            ))  # fmt: skip
    for ds, name, col in (("appearance", "K400", 1), ("motion", "SSv2", 2)):
        group = [r for r in rows if r["study"] == "table1" and r["dataset"] == ds]
        div = _find(rows, "table1", attention_type="divided_space_time", dataset=ds)
        if len(group) < 2 or div is None or any(_pts(r) is None for r in group):
            continue
        best = max(group, key=lambda r: r["top1_mean"])
        tol = max(1.0, _sd(div), _sd(best))
        ranked = sorted(group, key=lambda r: -r["top1_mean"])
        order = " > ".join(f"{LABELS[r['attention_type']].split(' (')[0]}" for r in ranked)
        out.append((
            f"Divided space-time is the best scheme on {name} ({PAPER_TABLE1['divided_space_time'][col]})",
            f"{ds}: divided {_pts(div):.1f}%, best {LABELS[best['attention_type']]} "
            f"{_pts(best):.1f}% (tie = within {tol:.1f} points, the larger std or 1); order: {order}",
            verdict(_pts(best) - _pts(div) <= tol),
        ))  # fmt: skip
    drops = {}
    for ds in ("appearance", "motion"):
        st = _find(rows, "table4", pos_embed="space_time", dataset=ds)
        no = _find(rows, "table4", pos_embed="none", dataset=ds)
        if _pts(st) is not None and _pts(no) is not None:
            drops[ds] = _pts(st) - _pts(no)
    if len(drops) == 2:
        out.append((
            "No position embedding hurts SSv2 most (-13.7 points) and K400 little (-2.6)",
            f"space-time minus none: motion {drops['motion']:+.1f}, appearance "
            f"{drops['appearance']:+.1f} points",
            verdict(drops["motion"] > drops["appearance"]),
        ))  # fmt: skip
    st = _find(rows, "table4", pos_embed="space_time", dataset="motion")
    sp = _find(rows, "table4", pos_embed="space", dataset="motion")
    if _pts(st) is not None and _pts(sp) is not None:
        d = _pts(st) - _pts(sp)
        out.append((
            "A time embedding on top of the spatial one helps SSv2 (+7.0 points)",
            f"motion: space-time {_pts(st):.1f}% vs space {_pts(sp):.1f}% ({d:+.1f} points; "
            f"helps = more than +{RISES:.0f})",
            verdict(d > RISES),
        ))  # fmt: skip
    for axis, key, what in (("frames", "num_frames", "frames"), ("resolution", "img_size", "px")):
        pts = sorted(
            (r[key], _pts(r)) for r in rows
            if r["study"] == "fig5" and r["axis"] == axis and _pts(r) is not None
        )  # fmt: skip
        if len(pts) >= 2:
            (x0, y0), (x1, y1) = pts[0], pts[-1]
            curve = ", ".join(f"{x} {what}: {y:.1f}%" for x, y in pts)
            out.append((
                f"More tokens along {axis} raise accuracy (Figure 5)",
                f"motion: {curve} ({y1 - y0:+.1f} points from {x0} to {x1}; rises = more "
                f"than +{RISES:.0f})",
                verdict(y1 - y0 > RISES),
            ))  # fmt: skip
    return out


# ------------------------------------------------------------------------------ plots


def _plot_bars(rows: list[dict[str, Any]], study: str, key: str, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = [r for r in rows if r["study"] == study and r["top1_mean"] is not None]
    if not sel:
        return None
    names = list(dict.fromkeys(r[key] for r in sel))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.38
    for j, ds in enumerate(("appearance", "motion")):
        rs = {r[key]: r for r in sel if r["dataset"] == ds}
        xs = [i + (j - 0.5) * width for i, n in enumerate(names) if n in rs]
        ys = [100 * rs[n]["top1_mean"] for n in names if n in rs]
        es = [100 * rs[n]["top1_std"] for n in names if n in rs]
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=ds)
        if rs:
            chance = 100 * next(iter(rs.values()))["chance"]
            ax.axhline(chance, ls=":", lw=1, color=f"C{j}", label=f"chance ({ds})")
    ax.set_xticks(range(len(names)), [LABELS[n].split(" (")[0] for n in names], fontsize=8)
    ax.set(ylabel="top-1 (%)", ylim=(0, 105), title=f"{study}: mean ± std over seeds")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=100, format="png"), durable=False)
    plt.close(fig)
    return path


def _plot_fig5(rows: list[dict[str, Any]], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = [r for r in rows if r["study"] == "fig5" and r["top1_mean"] is not None]
    if not sel:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, axis, key, label in (
        (axes[0], "frames", "num_frames", "frames per clip"),
        (axes[1], "resolution", "img_size", "frame size (px)"),
    ):
        rs = sorted((r for r in sel if r["axis"] == axis), key=lambda r: r[key])
        if rs:
            ax.errorbar(
                [r[key] for r in rs],
                [100 * r["top1_mean"] for r in rs],
                yerr=[100 * r["top1_std"] for r in rs],
                marker="o",
                capsize=3,
            )
            ax.axhline(100 * rs[0]["chance"], ls=":", color="grey", label="chance")
        ax.set(xlabel=label, ylabel="motion top-1 (%)", ylim=(0, 105))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("fig5: top-1 against tokens (motion dataset, divided attention)")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=100, format="png"), durable=False)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ outputs


def write_outputs(
    rows: list[dict[str, Any]],
    out: Path,
    *,
    studies: list[str],
    scale: Any,
    seeds: int,
    command: str,
    workers: int,
    threads: int,
    seconds: float,
    runs: list[dict[str, Any]],
) -> dict[str, str]:
    """Write results.json, report.md and the plots into `out`; return {name: path}."""
    for r in rows:
        r["patch_size"] = scale.patch_size
    mach = machine()
    compute = sum(r["seconds"] for r in runs)
    cpu = sum(r.get("cpu_seconds", 0.0) for r in runs)
    meta = {
        "studies": studies, "scale": scale.name, "recipe": scale.recipe(), "seeds": seeds,
        "command": command, "machine": mach, "workers": workers, "threads_per_worker": threads,
        "wall_seconds": round(seconds, 1), "run_seconds_total": round(compute, 1),
        "cpu_seconds_total": round(cpu, 1), "load_average": _load(),
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }  # fmt: skip
    files = {"results": str(atomic_write_text(out / "results.json", json.dumps(
        {"rows": rows, **meta}, indent=1)))}  # fmt: skip
    plots = {
        "table1": _plot_bars(rows, "table1", "attention_type", out / "table1.png"),
        "table4": _plot_bars(rows, "table4", "pos_embed", out / "table4.png"),
        "fig5": _plot_fig5(rows, out / "fig5.png"),
    }
    files.update({k: str(v) for k, v in plots.items() if v is not None})
    md = _report(rows, meta, plots, runs)
    files["report"] = str(atomic_write_text(out / "report.md", md))
    return files


def _load() -> str:
    import os

    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _report(
    rows: list[dict[str, Any]], meta: dict[str, Any], plots: dict[str, Path | None], runs: list
) -> str:
    m, rc = meta["machine"], meta["recipe"]
    secs = [r["seconds"] for r in runs]
    lines = [
        "# TimeSformer's ablations in miniature (`timesformer study`)",
        "",
        f"- command: `{meta['command'] or 'run_study(...)'}`",
        f"- machine: {m['cpu']}, {m['cores']} cores; torch {m['torch']}, Python {m['python']}; "
        + (
            f"this invocation: {meta['workers']} worker(s) x {meta['threads_per_worker']} thread(s)"
            if meta["workers"]
            else "this invocation computed no run (every run was stored)"
        ),
        f"- wall time of this invocation: {meta['wall_seconds'] / 60:.1f} min; all stored runs "
        f"together: {meta['run_seconds_total'] / 60:.1f} min of run time "
        f"({len(runs)} runs, {statistics.fmean(secs) if secs else 0:.0f} s each on average), "
        f"{meta['cpu_seconds_total'] / 60:.1f} min of CPU time; load average at the end "
        f"{meta['load_average']} (other processes share the machine: wall time grows with it)",
        f"- scale `{meta['scale']}`: {rc['num_train']} training and {rc['num_val']} held-out "
        f"videos per dataset and seed; model D {rc['embed_dim']}, depth {rc['depth']}, "
        f"{rc['num_heads']} heads, patch {rc['patch_size']}; AdamW lr {rc['lr']}, cosine, "
        f"{rc['epochs']} epochs, batch {rc['batch_size']}; {meta['seeds']} seed(s) per cell",
        f"- finished {meta['finished_at']}",
        "",
        "Top-1 in %, mean ± sample std over seeds, on the centre clip of held-out videos after "
        "the last epoch. Datasets (docs/study.md): *appearance* (9 classes, colour x shape, "
        "chance 11.1%: any one frame decides) stands in for Kinetics-400; *motion* (approach vs "
        "recede, chance 50%: only the order of the frames decides; the two classes have exactly "
        "the same frames) stands in for Something-Something v2. Paper columns: the paper's "
        "ViT-Base models on the real datasets; only the pattern is comparable, not the numbers.",
        "",
    ]
    for study, title, table, plot in (
        ("table1", "Table 1: attention schemes", table1_md, "table1"),
        ("table4", "Table 4: position embeddings (divided attention)", table4_md, "table4"),
        ("fig5", "Figure 5: tokens (frames and resolution), motion dataset", fig5_md, "fig5"),
    ):
        if study not in meta["studies"]:
            continue
        lines += [f"## {title}", "", table(rows), ""]
        if plots.get(plot) is not None:
            lines += [f"![{study}]({plot}.png)", ""]
    lines += ["## Where the miniature agrees with the paper, and where it does not", ""]
    lines += ["| the paper | the miniature | verdict |", "|---|---|---|"]
    found = findings(rows)
    lines += [f"| {a} | {b} | {c} |" for a, b, c in found]
    agree = sum(c == "agrees" for _, _, c in found)
    lines += [
        "",
        f"{agree} of {len(found)} findings agree. Verdicts are computed from the numbers above "
        "with the thresholds stated in each row; a seed count of 1 gives no spread.",
        "",
    ]
    return "\n".join(lines)
