"""Pictures and files of an `Explanation`: heat maps over the frames, a frame grid, a GIF, the
per-frame relevance plot, and the folder `timesformer explain` writes (see `save_explanation`).

The maps themselves are computed in `timesformer.tools.explain`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..files import atomic_write, atomic_write_text
from .explain import Explanation


def denormalize(
    video: Tensor, mean: Sequence[float] = (0.45, 0.45, 0.45), std: Sequence[float] = (0.225,) * 3
) -> np.ndarray:
    """Normalised (3, T, H, W) or (1, 3, T, H, W) float video -> uint8 frames (T, H, W, 3)."""
    if video.ndim == 5:
        video = video[0]
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)
    x = (video.detach().float().cpu() * s + m).clamp(0, 1) * 255.0
    return x.round().to(torch.uint8).permute(1, 2, 3, 0).numpy()  # (T, H, W, 3)


def _as_frames(frames: np.ndarray | Tensor, maps: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, 3), checked against the maps."""
    if isinstance(frames, Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) uint8; got shape {frames.shape}")
    if frames.dtype != np.uint8:
        frames = np.clip(frames * (255.0 if frames.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if frames.shape[:3] != maps.shape:
        raise ValueError(f"frames {frames.shape[:3]} and maps {maps.shape} differ in T, H or W")
    return frames


def overlay(frames: np.ndarray, maps: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Heat maps blended over the frames: uint8 (T, H, W, 3).

    One colour scale for the whole clip (0 to the clip's largest pixel), so frames that matter
    less look cooler.
    """
    from matplotlib import colormaps

    frames = _as_frames(frames, maps)
    peak = float(maps.max())
    heat = maps / peak if peak > 0 else maps
    rgb = colormaps["jet"](heat)[..., :3]  # (T, H, W, 3) in [0, 1]
    a = alpha * (0.6 + 0.8 * heat[..., None])  # a tint everywhere, stronger where relevant
    out = (1 - a) * frames.astype(np.float32) / 255.0 + a * rgb
    return (out.clip(0, 1) * 255).round().astype(np.uint8)


def _display_scale(h: int, w: int, target: int = 160) -> int:
    return max(1, math.ceil(target / max(h, w)))


def save_grid(
    path: Path,
    over: np.ndarray,
    maps: np.ndarray,
    relevance: np.ndarray,
    title: str,
    cols: int = 8,
) -> None:
    """PNG grid: per frame, the overlay above the bare heat map (one colour scale for the clip),
    titled with the frame's index and relevance share."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    T = over.shape[0]
    cols = min(cols, T)
    rows = math.ceil(T / cols)
    fig = Figure(figsize=(2.0 * cols, 4.2 * rows + 0.4))
    FigureCanvasAgg(fig)
    peak = float(maps.max()) or 1.0
    for t in range(rows * cols):
        r, c = divmod(t, cols)
        top = fig.add_subplot(2 * rows, cols, 2 * r * cols + c + 1)
        bottom = fig.add_subplot(2 * rows, cols, (2 * r + 1) * cols + c + 1)
        top.axis("off")
        bottom.axis("off")
        if t < T:
            top.imshow(over[t], interpolation="nearest")
            top.set_title(f"t={t}  {100 * relevance[t]:.1f}%", fontsize=8)
            bottom.imshow(maps[t], cmap="jet", vmin=0.0, vmax=peak, interpolation="nearest")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def save_gif(path: Path, over: np.ndarray, fps: float = 4.0) -> None:
    """Animated GIF of the overlaid frames (Pillow), enlarged for small inputs."""
    from PIL import Image

    k = _display_scale(*over.shape[1:3])
    images = [
        Image.fromarray(f).resize((f.shape[1] * k, f.shape[0] * k), Image.Resampling.NEAREST)
        for f in over
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def save_relevance_plot(
    path: Path, relevance: np.ndarray, times: Sequence[float] | None = None, title: str = ""
) -> None:
    """Bar chart of each frame's share of the relevance, with the uniform share marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    T = len(relevance)
    fig = Figure(figsize=(max(4.0, 0.35 * T + 2), 3.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(T)
    ax.bar(x, relevance, color="tab:red")
    ax.axhline(1.0 / T, color="gray", linestyle="--", linewidth=1, label="uniform")
    if times is not None:
        ax.set_xticks(x, [f"{t:.2f}" for t in times], rotation=45, fontsize=7)
        ax.set_xlabel("time in the video (s)")
    else:
        ax.set_xticks(x)
        ax.set_xlabel("sampled frame")
    ax.set_ylabel("share of relevance")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def save_explanation(
    result: Explanation,
    frames: np.ndarray | Tensor,
    out_dir: str | Path,
    extra: dict[str, Any] | None = None,
    times: Sequence[float] | None = None,
) -> dict[str, Path]:
    """Write grid.png, overlay.gif, relevance.png, maps.npy and summary.json to `out_dir`.

    frames: the sampled frames as shown to the model, uint8 (T, H, W, 3) at the maps'
    resolution (`denormalize` rebuilds them from the model input). extra: more summary fields
    (video path, frame indices, ...). times: seconds of each frame, for the plot's axis.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    over = overlay(frames, result.maps)
    paths = {
        "grid": out / "grid.png",
        "gif": out / "overlay.gif",
        "plot": out / "relevance.png",
        "maps": out / "maps.npy",
        "summary": out / "summary.json",
    }
    title = (
        f"{result.method} ({result.attention_type}): predicted {result.label(result.predicted)}"
        f" p={result.probability:.3f}"
    )
    if result.target != result.predicted:
        title += f"; target {result.label(result.target)} p={result.target_probability:.3f}"
    # each file whole or not at all (a full disk names the file; earlier files stay)
    grid = paths["grid"]
    atomic_write(
        grid, lambda p: save_grid(p, over, result.maps, result.frame_relevance, title), False
    )
    atomic_write(paths["gif"], lambda p: save_gif(p, over), durable=False)
    plot = paths["plot"]
    atomic_write(
        plot, lambda p: save_relevance_plot(p, result.frame_relevance, times, title), False
    )
    atomic_write(paths["maps"], lambda p: np.save(p, result.maps.astype(np.float32)), False)
    summary = result.to_dict()
    summary.update(extra or {})
    summary["files"] = {k: p.name for k, p in paths.items()}
    atomic_write_text(paths["summary"], json.dumps(summary, indent=2) + "\n")
    return paths
