"""From per-window class scores to the actions of a long video: segments, a per-second CSV, a
timeline PNG.

The input is what `predict --long` (or `extract --mode windows` plus a head) gives: one row of
softmax probabilities per window, and each window's [start, end] in seconds. Then:

1. Smoothing: each class's probability is averaged over a centred run of `smooth` windows (at
   the ends, over the windows that exist), so a single odd window does not split an action.
2. Labels: each window takes the top class of the smoothed scores; a window whose top smoothed
   score is below `min_score` is left unlabelled (a gap, no segment).
3. Merging: consecutive windows with the same label form one segment. A segment shorter than
   `min_windows` windows is given to the neighbour whose class scores higher over it, and the
   runs are merged again.
4. Times: a segment starts where its first window's share starts and ends where its last
   window's share ends; the boundary between windows j and j+1 is (end_j + start_j+1) / 2,
   the shared edge for consecutive windows and the midpoint of the centres for overlapping ones.
5. Score: the mean raw (unsmoothed) probability of the segment's class over its windows: how
   sure the model was, per window, of that class inside the segment.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Segment:
    """One action: [start, end] seconds, its class and score (mean window probability)."""

    start: float
    end: float
    label: str
    score: float
    windows: int  # windows merged into it

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready {"start", "end", "label", "score"}."""
        d = asdict(self)
        del d["windows"]
        return d


def _check(probs: Any, bounds: Sequence[Sequence[float]], names: Sequence[str]) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != len(bounds) or p.shape[1] != len(names):
        raise ValueError(
            f"scores of shape {p.shape}: expected (windows={len(bounds)}, classes={len(names)})"
        )
    return p


def smooth_scores(probs: Any, smooth: int = 3) -> np.ndarray:
    """Centred moving average of each class over `smooth` windows (edges: the windows there)."""
    p = np.asarray(probs, dtype=np.float64)  # (J, C)
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1 windows; got {smooth}")
    if smooth == 1 or len(p) < 2:
        return p.copy()
    half = smooth // 2
    csum = np.concatenate([np.zeros((1, p.shape[1])), np.cumsum(p, axis=0)])  # (J+1, C)
    j = np.arange(len(p))
    lo, hi = np.clip(j - half, 0, len(p)), np.clip(j + (smooth - half), 0, len(p))
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None]  # (J, C)


def window_edges(bounds: Sequence[Sequence[float]]) -> np.ndarray:
    """(J + 1,) times: window j owns [edges[j], edges[j + 1]] (see the module doc)."""
    b = np.asarray(bounds, dtype=np.float64).reshape(-1, 2)
    inner = (b[:-1, 1] + b[1:, 0]) / 2  # (J-1,)
    return np.concatenate([b[:1, 0], inner, b[-1:, 1]])


def find_segments(
    probs: Any,
    bounds: Sequence[Sequence[float]],
    names: Sequence[str],
    *,
    smooth: int = 3,
    min_windows: int = 1,
    min_score: float = 0.0,
) -> list[Segment]:
    """Segments of a video from per-window probabilities `probs` (J, C) and window `bounds`
    [(start_s, end_s)] * J; `names` are the C class names. See the module doc for the steps."""
    if len(bounds) == 0:
        return []
    p = _check(probs, bounds, names)
    if min_windows < 1:
        raise ValueError(f"min_windows must be >= 1; got {min_windows}")
    sm = smooth_scores(p, smooth)  # (J, C)
    labels = sm.argmax(1)
    labels = np.where(sm.max(1) >= min_score, labels, -1)  # -1: no label
    runs = _runs(labels)
    while len(runs) > 1:
        short = [k for k, (c, a, b) in enumerate(runs) if c >= 0 and b - a < min_windows]
        if not short:
            break
        k = min(short, key=lambda k: (runs[k][2] - runs[k][1], k))  # shortest first
        c, a, b = runs[k]
        near = [runs[i][0] for i in (k - 1, k + 1) if 0 <= i < len(runs) and runs[i][0] >= 0]
        if not near:
            break
        best = max(near, key=lambda n: (sm[a:b, n].mean(), -n))
        labels[a:b] = best
        runs = _runs(labels)
    edges = window_edges(bounds)
    out = []
    for c, a, b in runs:
        if c < 0:
            continue
        score = float(p[a:b, c].mean())
        out.append(Segment(float(edges[a]), float(edges[b]), names[c], score, b - a))
    return out


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(label, first, end) of each run of equal labels."""
    out: list[tuple[int, int, int]] = []
    start = 0
    for j in range(1, len(labels) + 1):
        if j == len(labels) or labels[j] != labels[start]:
            out.append((int(labels[start]), start, j))
            start = j
    return out


def per_second_scores(probs: Any, bounds: Sequence[Sequence[float]], duration: float) -> np.ndarray:
    """(ceil(duration), C): each second's class scores, the windows' probabilities weighted by
    how much of that second each window's share covers."""
    p = np.asarray(probs, dtype=np.float64)
    edges = window_edges(bounds)
    n = max(1, math.ceil(duration - 1e-9))
    out = np.zeros((n, p.shape[1]))
    for s in range(n):
        lo, hi = s, min(s + 1.0, max(duration, edges[-1]))
        w = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None)  # (J,)
        if w.sum() <= 0:  # past the last window: the last window's scores
            w = np.zeros(len(p))
            w[-1] = 1.0
        out[s] = (w[:, None] * p).sum(0) / w.sum()
    return out


def write_scores_csv(
    path: str | Path,
    probs: Any,
    bounds: Sequence[Sequence[float]],
    names: Sequence[str],
    duration: float,
    segments: Sequence[Segment] = (),
) -> Path:
    """Per-second CSV: second, start_s, end_s, segment (the segment covering most of that second,
    or empty),
    top_label, top_score, then one column per class."""
    from ..files import atomic_write

    p = _check(probs, bounds, names)
    rows = per_second_scores(p, bounds, duration)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["second", "start_s", "end_s", "segment", "top_label", "top_score",
                        *names])  # fmt: skip
            for s, row in enumerate(rows):
                seg = _segment_at(segments, s, min(s + 1.0, max(duration, s + 1e-6)))
                top = int(row.argmax())
                w.writerow([s, s, min(s + 1, duration), seg, names[top], f"{row[top]:.6f}",
                            *(f"{v:.6f}" for v in row)])  # fmt: skip

    return atomic_write(path, write, durable=False)


def _segment_at(segments: Sequence[Segment], lo: float, hi: float) -> str:
    """Label of the segment covering most of [lo, hi) (the first on a tie), or ""."""
    best, label = 0.0, ""
    for g in segments:
        cover = min(g.end, hi) - max(g.start, lo)
        if cover > best + 1e-9:
            best, label = cover, g.label
    return label


def plot_timeline(
    path: str | Path,
    probs: Any,
    bounds: Sequence[Sequence[float]],
    names: Sequence[str],
    segments: Sequence[Segment],
    *,
    title: str = "",
    max_classes: int = 8,
) -> Path:
    """Timeline PNG: the classes' window scores over time (those in segments, then the best
    others, at most `max_classes`) above a bar of the segments coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_write

    p = _check(probs, bounds, names)
    centres = np.asarray(bounds, dtype=np.float64).mean(1)  # (J,)
    shown: list[int] = []
    for g in segments:
        i = list(names).index(g.label)
        if i not in shown:
            shown.append(i)
    for i in np.argsort(-p.max(0)):
        if len(shown) >= max_classes:
            break
        if int(i) not in shown:
            shown.append(int(i))
    shown = shown[:max_classes]
    colours = {c: plt.cm.tab10(k % 10) for k, c in enumerate(shown)}
    fig, (ax, bar) = plt.subplots(2, 1, figsize=(10, 4), sharex=True,
                                  gridspec_kw={"height_ratios": [4, 1]})  # fmt: skip
    for c in shown:
        ax.plot(centres, p[:, c], "-", color=colours[c], label=names[c], lw=1.5)
    ax.set(ylabel="window probability", ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, ncol=2)
    for g in segments:
        c = list(names).index(g.label)
        bar.barh(0, g.end - g.start, left=g.start, color=colours.get(c, "grey"), edgecolor="k")
        bar.text((g.start + g.end) / 2, 0, g.label, ha="center", va="center", fontsize=8)
    bar.set(yticks=[], xlabel="time (s)")
    fig.tight_layout()

    def write(tmp: Path) -> None:
        fig.savefig(tmp, dpi=100, format="png")

    try:
        return atomic_write(path, write, durable=False)
    finally:
        plt.close(fig)


def prediction_segments(
    pred: Any, names: Sequence[str], *, smooth: int = 3, min_windows: int = 1,
    min_score: float = 0.0,
) -> list[Segment]:  # fmt: skip
    """Segments of a long-mode `Prediction` (its per-clip probabilities and clip times)."""
    if pred.clips is None or pred.clip_probs is None:
        raise ValueError(f"{pred.path}: segments need the long-video timeline (predict --long)")
    bounds = [(c.start, c.end) for c in pred.clips]
    return find_segments(pred.clip_probs.numpy(), bounds, names, smooth=smooth,
                         min_windows=min_windows, min_score=min_score)  # fmt: skip


def write_prediction_outputs(
    out_dir: str | Path, stem: str, pred: Any, names: Sequence[str], segments: Sequence[Segment]
) -> dict[str, str]:
    """OUT/<stem>.scores.csv (per second) and OUT/<stem>.timeline.png; returns their paths."""
    out = Path(out_dir)
    bounds = [(c.start, c.end) for c in pred.clips]
    probs = pred.clip_probs.numpy()
    csv_path = write_scores_csv(out / f"{stem}.scores.csv", probs, bounds, names, pred.duration,
                                segments)  # fmt: skip
    png = plot_timeline(out / f"{stem}.timeline.png", probs, bounds, names, segments,
                        title=Path(pred.path).name)  # fmt: skip
    return {"scores_csv": str(csv_path), "timeline_png": str(png)}
