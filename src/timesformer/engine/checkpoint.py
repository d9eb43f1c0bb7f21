"""Training checkpoints: save and restore the whole training state, atomically.

The file is our agreed checkpoint format (a `torch.save` dict)::

    {"format": "timesformer", "version": 1, "config": model.config.to_dict(),
     "model": state_dict, "optimizer", "scheduler", "scaler", "epoch", "step",
     "batch_in_epoch", "rng", "train_config", "best_metric"}

so `timesformer.from_pretrained` loads it like any other checkpoint. `epoch` counts finished
epochs; `batch_in_epoch` > 0 marks a checkpoint written mid-epoch (on SIGINT/SIGTERM), which a
resume continues from that batch. The dict itself is written by `models.weights.save_checkpoint`
(the one writer of our format), through a temporary file renamed over the target.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..files import atomic_write
from ..models.factory import unwrap_model

FORMAT = "timesformer"
VERSION = 1
LAST = "last.pt"
BEST = "best.pt"


unwrap = unwrap_model  # the bare model inside DDP / torch.compile wrappers (one helper)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save `obj` through the package's one atomic, durable writer (files.atomic_write)."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp), durable=True)


# ------------------------------------------------------------------------------------ RNG


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states, as tensors and plain types only
    (so the checkpoint loads with `weights_only=True`)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def _tuples(x: Any) -> Any:
    """random.setstate wants nested tuples; serialisation may hand back lists."""
    if isinstance(x, (list, tuple)):
        return tuple(_tuples(v) for v in x)
    return x


# ----------------------------------------------------------------------------- save / load


def save_training_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    epoch: int = 0,
    step: int = 0,
    batch_in_epoch: int = 0,
    rng: list[dict[str, Any]] | dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    best_metric: float | None = None,
    **extra: Any,
) -> Path:
    """Write the training state in our checkpoint format, atomically. Returns `path`.

    `rng` is one state per rank (from `rng_state`, gathered), so that every rank of a DDP job
    resumes its own generators; `train_config` is the resolved RunConfig as a dict.
    """
    from ..models.weights import save_checkpoint

    state: dict[str, Any] = {
        "epoch": int(epoch),
        "step": int(step),
        "batch_in_epoch": int(batch_in_epoch),
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    if rng is not None:
        state["rng"] = rng
    if train_config is not None:
        state["train_config"] = train_config
    if best_metric is not None:
        state["best_metric"] = float(best_metric)
    state.update(extra)
    # the one writer of our checkpoint dict ({"format", "version", "config", "model", ...})
    return save_checkpoint(unwrap_model(model), path, **state)


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load one of our training checkpoints (onto the CPU), checking its format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    from ..models.checkpoint_io import torch_load
    from ..models.integrity import CheckpointError, check_finite

    try:
        obj = torch_load(path)  # the safe unpickler; the payload hash verified
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - report any unpickling problem as one line
        raise ValueError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "model" not in obj:
        raise ValueError(
            f"{path}: not a timesformer training checkpoint (expected a dict with "
            "format='timesformer' and 'model'); to start from other weights use model.pretrained"
        )
    if int(obj.get("version", 0)) > VERSION:
        raise ValueError(f"{path}: checkpoint version {obj['version']} is newer than {VERSION}")
    check_finite(obj["model"], str(path))
    return obj


def restore_training_state(
    ckpt: dict[str, Any],
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    rank: int = 0,
    source: str = "checkpoint",
) -> None:
    """Load model, optimizer, scheduler, scaler and this rank's RNG states from `ckpt`."""
    m = unwrap_model(model)
    stored = ckpt.get("config", {})
    current = m.config.to_dict()
    diff = sorted(k for k in current if k != "labels" and stored.get(k, current[k]) != current[k])
    if diff:
        pairs = ", ".join(f"{k}: {stored[k]!r} vs {current[k]!r}" for k in diff[:6])
        raise ValueError(f"{source}: the checkpoint's model differs from the config ({pairs})")
    m.load_state_dict(ckpt["model"])
    if optimizer is not None and "optimizer" in ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None and "scheduler" in ckpt:
        scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and "scaler" in ckpt:
        scaler.load_state_dict(ckpt["scaler"])
    rng = ckpt.get("rng")
    if isinstance(rng, dict):
        rng = [rng]
    if rng:
        set_rng_state(rng[rank] if rank < len(rng) else rng[0])


def find_last(output_dir: str | Path) -> Path | None:
    """`output_dir/last.pt` when it exists (what an automatic resume picks up)."""
    p = Path(output_dir) / LAST
    return p if p.is_file() else None
