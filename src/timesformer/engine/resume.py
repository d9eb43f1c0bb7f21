"""Resuming a run: the stored training config against the new one, and where to continue.

A resume restores the optimizer (its lr, weight decay, momentum), the schedule position and the
mid-epoch sample position of the run that wrote the checkpoint. When the new config differs,
doing that silently trains with the old hyperparameters, so `resume_state` refuses with every
difference listed (`ConfigChangedError`), unless `allow_config_change`: then the new
hyperparameters go into the optimizer's param groups, the LR schedule is the new one (epochs,
steps per epoch) set to where the run is, and a changed global batch or world size skips the
samples (not steps) the old run had consumed in its epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import read_training_checkpoint, restore_training_state

# keys that change nothing about the optimisation: logging, devices, outputs, evaluation
IGNORED_KEYS = frozenset(
    {
        "output_dir",
        "model.pretrained",  # a resume starts from the checkpoint, not these weights
        "data.num_workers",
        "data.val_list",
        "data.test_list",
        "data.test_views",
        "data.val_views",
        "data.root",
        "train.device",
        "train.progress",
        "train.log_every",
        "train.tensorboard",
        "train.eval_every",
        "train.save_every",
        "train.resume",
        "train.compile",  # the same step, fused: results differ by float rounding only
        "train.compile_mode",
    }
)
# optimizer param-group entries that follow the config (the rest is optimizer state)
_GROUP_HYPER = ("lr", "initial_lr", "weight_decay", "momentum", "nesterov", "betas", "dampening")

HOW_ON = (
    "start fresh with train.resume=false (or --fresh), or keep the trained state with the new "
    "hyperparameters with --allow-config-change"
)


class ConfigChangedError(ValueError):
    """The config of a resumed run differs from the one stored in its checkpoint."""


class ResumeReadError(ValueError):
    """The checkpoint to resume from cannot be read (corrupt, truncated, not ours)."""


@dataclass
class ResumeState:
    """Where a resumed run continues, and what changed."""

    path: Path
    start_epoch: int
    step: int  # optimizer steps (in the new schedule's units)
    skip_steps: int  # optimizer steps of `start_epoch` already done (new global batch)
    best: float | None
    history: list[dict[str, Any]]
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings for the log
    epoch_sums: dict[str, float] | None = None  # loss / accuracy sums of the part-done epoch


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def config_changes(
    old: dict[str, Any], new: dict[str, Any], ignored: frozenset[str] = IGNORED_KEYS
) -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every compared key whose value differs, sorted by key."""
    a, b = flatten(old), flatten(new)
    keys = sorted((set(a) | set(b)) - ignored)
    return [(k, a.get(k), b.get(k)) for k in keys if k in a and k in b and a[k] != b[k]]


def format_changes(changes: list[tuple[str, Any, Any]]) -> str:
    return "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changes)


def resume_state(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    sched: Any,
    scaler: Any,
    new_config: dict[str, Any],
    global_batch: int,
    steps_per_epoch: int,
    world_size: int,
    rank: int,
    allow_config_change: bool = False,
) -> ResumeState:
    """Restore the training state of checkpoint `path` into model / optimizer / sched / scaler.

    `global_batch` is the new run's clips per optimizer step (batch x processes x accumulation).
    Raises ResumeReadError for an unreadable checkpoint and ConfigChangedError (listing every
    difference) when the config changed and `allow_config_change` is off.
    """
    try:
        ck = read_training_checkpoint(path)
    except (ValueError, OSError, RuntimeError) as e:
        raise ResumeReadError(
            f"cannot resume: {e}. To go on: start fresh with train.resume=false (or --fresh), "
            "or point --resume at another checkpoint (or model.pretrained / --checkpoint at "
            "weights to start from)"
        ) from None
    stored = ck.get("train_config")
    changes = config_changes(stored, new_config) if isinstance(stored, dict) else []
    old_world = int(ck.get("world_size", world_size))
    old_global = int(ck.get("global_batch", 0)) or _global_batch(stored, old_world) or global_batch
    if old_global != global_batch and not any(k.startswith("train.") for k, _, _ in changes):
        changes.append(("global batch (clips per step)", old_global, global_batch))
    if changes and not allow_config_change:
        raise ConfigChangedError(
            f"{path}: the config differs from the one this run was trained with: "
            f"{format_changes(changes)}. To go on: {HOW_ON}"
        )
    fresh = [{k: g[k] for k in _GROUP_HYPER if k in g} for g in optimizer.param_groups]
    st = ResumeState(
        path=path,
        start_epoch=int(ck.get("epoch", 0)),
        step=int(ck.get("step", 0)),
        skip_steps=int(ck.get("batch_in_epoch", 0)),
        best=ck.get("best_metric"),
        history=list(ck.get("history", [])),
        changes=changes,
        epoch_sums=_sums(ck.get("epoch_sums")),
    )
    if not changes:
        restore_training_state(
            ck, model, optimizer=optimizer, scheduler=sched, scaler=scaler, rank=rank,
            source=str(path),
        )  # fmt: skip
        return st
    # the override: trained weights and optimizer moments, the new hyperparameters
    optim_ck = ck.get("optimizer")
    ck = {k: v for k, v in ck.items() if k not in ("optimizer", "scheduler")}
    restore_training_state(ck, model, scaler=scaler, rank=rank, source=str(path))
    same_kind = _optimizer_kind(optim_ck) == type(optimizer).__name__
    if optim_ck is not None and same_kind:
        try:
            optimizer.load_state_dict(optim_ck)
        except ValueError as e:  # another parameter grouping
            st.notes.append(f"optimizer state not restored ({e}); it starts fresh")
    elif optim_ck is not None:
        st.notes.append("optimizer type changed: its state (moments) starts fresh")
    for g, hyper in zip(optimizer.param_groups, fresh):
        g.update(hyper)
    # the position in samples, mapped onto the new global batch and schedule
    samples = int(ck.get("samples_in_epoch", st.skip_steps * old_global))
    st.skip_steps, rest = divmod(samples, global_batch)
    if rest:
        st.notes.append(
            f"the old run had done {samples} clips of epoch {st.start_epoch + 1}, not a whole "
            f"number of new global batches ({global_batch}); {rest} clips are seen again"
        )
    st.skip_steps = min(st.skip_steps, steps_per_epoch)
    st.step = st.start_epoch * steps_per_epoch + st.skip_steps
    sched.set_step(st.step)
    st.notes.insert(
        0, f"config changed, applied (--allow-config-change): {format_changes(changes)}"
    )
    return st


def _global_batch(stored: Any, world: int) -> int:
    """Clips per optimizer step of a stored train config (0 when unknown)."""
    if not isinstance(stored, dict):
        return 0
    t = stored.get("train") or {}
    if t.get("global_batch_size"):
        return int(t["global_batch_size"])
    return int(t.get("batch_size") or 0) * world


def _optimizer_kind(state: Any) -> str:
    """ "SGD" or "AdamW" from a stored optimizer state dict (by its group keys)."""
    if not isinstance(state, dict) or not state.get("param_groups"):
        return ""
    g = state["param_groups"][0]
    return "AdamW" if "betas" in g else "SGD"


def _sums(d: Any) -> dict[str, float] | None:
    """The stored sums of a part-done epoch, numbers only (None when absent or malformed)."""
    if not isinstance(d, dict):
        return None
    out = {k: float(v) for k, v in d.items() if isinstance(k, str) and isinstance(v, (int, float))}
    return out or None
