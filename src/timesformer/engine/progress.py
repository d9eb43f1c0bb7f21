"""What a training run shows and draws: the progress bar, the epoch line, the curves PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def progress_bar(total: int, initial: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar over optimizer steps (None when disabled: other ranks, `train.progress` off,
    or stderr not a terminal, e.g. a log file, where bar frames would only fill it up)."""
    import sys

    interactive = sys.stderr.isatty() or "ipykernel" in sys.modules  # a notebook draws widgets
    if not enabled or not interactive:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, unit="step", leave=False, dynamic_ncols=True
    )


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """The one log line of a finished epoch (train loss and top-1, clip-level validation)."""
    s = (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} "
        f"top-1 {100 * row['train_top1']:.1f}%"
    )
    if "val_clip_top1" in row:
        s += (
            f" | val (clip-level) loss {row['val_clip_loss']:.4f} "
            f"top-1 {100 * row['val_clip_top1']:.1f}%"
        )
        if row.get("val_classes", 6) > 5:  # with 5 classes or fewer every clip is in the top 5
            s += f" top-5 {100 * row['val_clip_top5']:.1f}%"
        if row.get("val_failed"):
            s += f" ({row['val_failed']} undecodable)"
        if row.get("best"):
            s += " -> best.pt"
    elif row.get("val_level"):  # validated, but no clip decoded
        s += f" | val: none of {row.get('val_failed', 0)} clips decoded"
    s += f" | lr {row['lr']:.2e} | bad files {row['bad_files']} | {row['epoch_seconds']:.0f}s"
    return s


def plot_curves(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Loss and accuracy per epoch (train and clip-level validation) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [r["train_loss"] for r in history], "o-", label="train")
    a2.plot(ep, [100 * r["train_top1"] for r in history], "o-", label="train")
    val = [r for r in history if "val_clip_top1" in r]
    if val:
        a1.plot(
            [r["epoch"] for r in val], [r["val_clip_loss"] for r in val], "s-", label="val (clip)"
        )
        a2.plot(
            [r["epoch"] for r in val],
            [100 * r["val_clip_top1"] for r in val],
            "s-",
            label="val top-1 (clip)",
        )
    a1.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    a2.set(xlabel="epoch", ylabel="%", title="accuracy", ylim=(0, 100))
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
