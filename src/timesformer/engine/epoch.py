"""One epoch of training and the clip-level validation run between epochs.

`train_one_epoch` runs the optimizer steps of one epoch (AMP, gradient accumulation, DDP sync
on the last micro-batch, clipping, the LR schedule per step, a metrics line every
`train.log_every` steps) and stops after a whole step when a signal arrives or the loss stops
being finite; `validate` scores single clips. `engine.train` wires them into a run.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from . import distributed as D
from .config import TrainSection
from .loaders import mark_reported, timed_batches, unpack_batch
from .optim import LRSchedule
from .progress import progress_bar
from .runtime import StopFlag, autocast

# the EpochStats sums a mid-epoch checkpoint keeps, so a resumed epoch reports the whole epoch
SUM_KEYS = ("loss_sum", "correct", "seen", "failures", "data_wait_s")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the run stops before saving such weights."""


@dataclass
class EpochStats:
    """What `train_one_epoch` did: sums over this rank's clips, and where it stopped."""

    loss_sum: float = 0.0
    correct: float = 0.0
    seen: float = 0.0
    failures: float = 0.0
    step: int = 0  # optimizer steps of the whole run after this epoch
    done_in_epoch: int = 0  # optimizer steps of this epoch done (resumed ones included)
    stopped: bool = False  # a signal arrived (on any rank)
    data_wait_s: float = 0.0  # seconds this epoch waited for batches (see timed_batches)
    nonfinite: float | None = None  # the first NaN / infinite loss of this rank, if any
    diverged: bool = False  # a loss was not finite (on any rank)

    def sums(self) -> dict[str, float]:
        """The sums a mid-epoch checkpoint keeps (this rank's)."""
        return {k: float(getattr(self, k)) for k in SUM_KEYS}


@torch.no_grad()
def validate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    amp: str = "off",
) -> dict[str, float]:
    """Clip-level loss, top-1 and top-5 over `loader`, summed over all ranks.

    Items whose video failed to decode (`error` set) are left out and counted.
    """
    model.eval()
    loss_sum = top1 = top5 = n = failed = 0.0
    classes = 0
    for batch in loader:
        video, label, _, bad = unpack_batch(batch)
        if bad is not None and bad.any():
            mark_reported(loader, batch)
            failed += float(bad.sum())
            keep = ~bad
            video, label = video[keep], label[keep]
            if len(label) == 0:
                continue
        video, label = video.to(device, non_blocking=True), label.to(device)
        with autocast(device, amp, fp16_on_cpu=True):
            logits = model(video)
        logits = logits.float()  # (B, C)
        loss_sum += float(F.cross_entropy(logits, label, reduction="sum"))
        classes = logits.shape[1]
        k = min(5, classes)
        top = logits.topk(k, dim=1).indices  # (B, k)
        hit = top == label[:, None]
        top1 += float(hit[:, 0].sum())
        top5 += float(hit.any(dim=1).sum())
        n += len(label)
    loss_sum, top1, top5, n, failed = D.all_reduce_sum([loss_sum, top1, top5, n, failed], device)
    model.train()
    n_safe = max(n, 1.0)
    return {
        "val_clip_loss": loss_sum / n_safe,
        "val_clip_top1": top1 / n_safe,
        "val_clip_top5": top5 / n_safe,
        "val_clips": int(n),
        "val_failed": int(failed),
        "val_classes": int(classes),  # top-5 of 5 classes or fewer counts every clip
    }


# ----------------------------------------------------------------------------- one epoch


def train_one_epoch(
    net: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    sched: LRSchedule,
    scaler: torch.amp.GradScaler,
    *,
    t: TrainSection,
    clip_grad: float | None,
    device: torch.device,
    epoch: int,
    step: int,
    start: int,
    steps_per_epoch: int,
    accum: int,
    info: D.DistInfo,
    stop: StopFlag,
    write_metrics: Callable[[dict[str, Any]], None],
    resumed_sums: dict[str, float] | None = None,
) -> EpochStats:
    """One epoch of optimizer steps (from step `start` of it to `steps_per_epoch`).

    Each optimizer step accumulates `accum` micro-batches (DDP syncs only on the last); AMP
    with a grad scaler, optional gradient clipping, the LR schedule advanced per step; a
    metrics line every `t.log_every` steps. Stops early, after a whole step, when a signal
    arrives or a loss is not finite on any rank. `resumed_sums`: the sums of the part of this
    epoch done before a resume (`EpochStats.sums`, all ranks together; given on one rank).
    """
    st = EpochStats(step=step, done_in_epoch=start)
    for k, v in (resumed_sums or {}).items():
        if k in SUM_KEYS:
            setattr(st, k, float(v))
    world = info.world_size
    t_log, seen_log, wait_log = time.time(), 0.0, 0.0
    bar = progress_bar(
        steps_per_epoch, start, f"epoch {epoch + 1}/{t.epochs}", info.is_main and t.progress
    )
    micro = 0
    optimizer.zero_grad(set_to_none=True)
    for batch, waited in timed_batches(loader):
        if st.done_in_epoch >= steps_per_epoch:
            break
        st.data_wait_s += waited
        video, label, n_fail, _ = unpack_batch(batch)
        st.failures += n_fail
        if n_fail:
            mark_reported(loader, batch)
        video = video.to(device, non_blocking=True)  # (B, 3, T, H, W)
        label = label.to(device, non_blocking=True)  # (B,)
        micro += 1
        last_micro = micro % accum == 0
        sync = contextlib.nullcontext()
        if info.distributed and not last_micro:
            sync = net.no_sync()
        with sync:
            with autocast(device, t.amp, fp16_on_cpu=True):
                logits = net(video)  # (B, C)
            loss = F.cross_entropy(logits.float(), label, label_smoothing=t.label_smoothing)
            scaler.scale(loss / accum).backward()
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value) and st.nonfinite is None:
            st.nonfinite = loss_value
        st.loss_sum += loss_value * len(label)
        st.correct += float((logits.detach().argmax(1) == label).sum())
        st.seen += len(label)
        if not last_micro:
            continue
        if clip_grad:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(net.parameters(), clip_grad)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        lr = sched.get_last_lr()[0]
        st.step += 1
        st.done_in_epoch += 1
        sched.step()
        if st.step % t.log_every == 0 or bar is not None:
            now = time.time()
            rate = (st.seen - seen_log) * world / max(now - t_log, 1e-9)
            # share of the wall time since the last log spent waiting for batches
            wait = min(1.0, (st.data_wait_s - wait_log) / max(now - t_log, 1e-9))
            if bar is not None:
                bar.set_postfix(
                    loss=f"{st.loss_sum / max(st.seen, 1):.4f}",
                    lr=f"{lr:.2e}",
                    clips_s=f"{rate:.1f}",
                    data=f"{wait:.0%}",
                    refresh=False,
                )
                bar.update(1)
            if st.step % t.log_every == 0:
                write_metrics(
                    {
                        "kind": "step",
                        "epoch": epoch + st.done_in_epoch / steps_per_epoch,
                        "step": st.step,
                        "loss": st.loss_sum / max(st.seen, 1),
                        "lr": lr,
                        "clips_per_s": rate,
                        "data_wait": wait,  # share of the time waiting for data
                    }
                )
                t_log, seen_log, wait_log = now, st.seen, st.data_wait_s
        if D.any_rank(stop.signal is not None or st.nonfinite is not None, device):
            break
    if bar is not None:
        bar.close()
    st.stopped = D.any_rank(stop.signal is not None, device)
    st.diverged = D.any_rank(st.nonfinite is not None, device)
    return st
