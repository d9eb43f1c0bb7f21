"""Counted cost (no big runs): parameters and MACs per clip, and the paper's Figure 3 sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...models.config import ATTENTION_TYPES, TimeSformerConfig, get_config
from ...models.factory import count_flops
from ...models.timesformer import TimeSformer
from .cases import _SHORT


def model_cost(cfg: TimeSformerConfig) -> dict[str, Any]:
    """`count_flops` of a model of `cfg` built on the meta device (no memory, no time)."""
    with torch.device("meta"):
        meta = TimeSformer(cfg)
    return count_flops(meta)


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
            cost = model_cost(cfg)
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


def cost_table(
    model: str = "timesformer_base", overrides: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Parameters and GMACs per clip of `model` under every attention type (counted on meta)."""
    rows = []
    for att in ATTENTION_TYPES:
        cfg = get_config(model, **{**(overrides or {}), "attention_type": att})
        cost = model_cost(cfg)
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
