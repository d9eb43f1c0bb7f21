"""The training loop: AMP, gradient accumulation, DDP, schedules, checkpoints, resume, logging.

`train(cfg)` runs a whole training job from a `RunConfig` (engine.config) and returns a
`TrainResult`. The same call works in one process and under `torchrun` (DDP: gloo on CPU, NCCL
on GPU); only rank 0 writes. What lands in `cfg.output_dir`::

    config.yaml      the resolved configuration
    metrics.jsonl    one line per logging step ({"kind": "step"}) and per epoch ({"kind": "epoch"})
    last.pt          every `train.save_every` epochs, and on SIGINT/SIGTERM (mid-epoch)
    best.pt          the epoch with the best clip-level validation top-1
    curves.png       loss and accuracy per epoch, at the end
    tb/              TensorBoard events when `train.tensorboard` is on

Validation during training scores single clips (`data.val_views`, default one centre clip per
video), not videos: the metric keys say `clip`. Video-level accuracy with multi-view testing is
what `timesformer eval` (engine.evaluate) computes.

Reproducibility: the sample order is a function of (seed, epoch) (a DistributedSampler reseeded
per epoch), the dataset is reseeded per epoch (`set_epoch`), DataLoader workers get seeds from a
generator seeded per (seed, epoch, rank), and checkpoints carry every rank's RNG states, so two
epochs straight and one epoch + resume + one epoch give the same weights on the CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from . import distributed as D
from .checkpoint import (
    BEST,
    LAST,
    find_last,
    read_training_checkpoint,
    restore_training_state,
    rng_state,
    save_training_checkpoint,
    unwrap,
)
from .config import OptimSection, RunConfig, model_overrides, parse_views, resolve, save_config

Log = Callable[[str], None]


# ----------------------------------------------------------------------------- schedule


class LRSchedule:
    """Learning rate per optimizer step: linear warm-up, then step decay or cosine.

    Epochs may be fractional: at optimizer step s the position is e = s / steps_per_epoch.
    Warm-up rises linearly from `lr * warmup_start_factor` to `lr` over `warmup_epochs`;
    "steps" multiplies by `gamma` at each epoch in `steps` (e >= milestone); "cosine" falls
    from `lr` to `min_lr` between the end of warm-up and the last epoch; "constant" stays.
    Every param group keeps its own base lr in `initial_lr`.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        cfg: OptimSection,
        epochs: int,
        steps_per_epoch: int,
    ) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.epochs = epochs
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.last_step = 0
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.set_step(0)

    def factor(self, step: int) -> float:
        """Multiplier of the base lr at optimizer step `step` (0-based)."""
        c = self.cfg
        e = step / self.steps_per_epoch
        if c.warmup_epochs > 0 and e < c.warmup_epochs:
            f0 = c.warmup_start_factor
            return f0 + (1.0 - f0) * e / c.warmup_epochs
        if c.schedule == "steps":
            return c.gamma ** sum(e >= m for m in c.steps)
        if c.schedule == "cosine":
            span = max(self.epochs - c.warmup_epochs, 1e-8)
            p = min(max((e - c.warmup_epochs) / span, 0.0), 1.0)
            floor = c.min_lr / c.lr if c.lr > 0 else 0.0
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))
        return 1.0

    def set_step(self, step: int) -> None:
        """Set every group's lr for optimizer step `step`."""
        self.last_step = step
        f = self.factor(step)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f

    def step(self) -> None:
        """Advance one optimizer step."""
        self.set_step(self.last_step + 1)

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"last_step": self.last_step, "steps_per_epoch": self.steps_per_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.set_step(int(state["last_step"]))


# ----------------------------------------------------------------------------- optimizer


def param_groups(
    model: nn.Module, weight_decay: float, no_decay_norm_bias_embed: bool
) -> list[dict[str, Any]]:
    """Parameter groups; with `no_decay_norm_bias_embed`, norms, biases and embeddings (the
    model's `no_weight_decay()` names and every 1-D tensor) get no weight decay."""
    if not no_decay_norm_bias_embed:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    skip = set(getattr(unwrap(model), "no_weight_decay", lambda: set())())
    decay, no_decay = [], []
    for name, p in unwrap(model).named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name in skip or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimSection) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW over `param_groups`."""
    groups = param_groups(model, cfg.weight_decay, cfg.no_decay_norm_bias_embed)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
    )


# ----------------------------------------------------------------------------- model / data


def build_model(cfg: RunConfig, log: Log = print) -> nn.Module:
    """The TimeSformer of `cfg.model` (resolved), with pretrained weights when asked.

    A pretrained head of another size is replaced by a fresh one, and the log says so.
    """
    from ..models import create_model

    m = cfg.model
    model = create_model(m.name, **model_overrides(m))
    if m.pretrained:
        from ..models.weights import load_into, read_checkpoint

        ck = read_checkpoint(m.pretrained)
        head = ck.num_classes
        reset = (not ck.is_image) and head != model.config.num_classes
        load_into(model, m.pretrained, reset_head=reset)
        what = f"{ck.format} checkpoint {m.pretrained}"
        if ck.is_image:
            log(f"initialised from {what} (image weights; new head of {m.num_classes} classes)")
        elif reset:
            log(
                f"initialised from {what}; its head has {head} classes, the model "
                f"{model.config.num_classes}: the head is re-initialised"
            )
        else:
            log(f"initialised from {what}")
    elif m.time_embed_init_std and getattr(model, "time_embed", None) is not None:
        with torch.no_grad():
            std = m.time_embed_init_std
            nn.init.trunc_normal_(model.time_embed, std=std, a=-2 * std, b=2 * std)
        log(f"time_embed initialised from a truncated normal, std {std} (not the zero init)")
    if m.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model


def _label_names(cfg: RunConfig) -> list[str] | None:
    if not cfg.data.labels:
        return None
    from ..data import load_label_names

    return load_label_names(cfg.data.labels, cfg.model.num_classes)


def build_dataset(cfg: RunConfig, split: str, mode: str | None = None) -> Dataset:
    """The VideoDataset of `data.{split}_list` ("train", "val" or "test")."""
    from ..data import VideoDataset

    d, m = cfg.data, cfg.model
    source = getattr(d, f"{split}_list")
    if not source:
        raise ValueError(f"data.{split}_list is not set: give a list file or a class folder")
    mode = mode or ("train" if split == "train" else "val")
    views = parse_views(d.val_views if split == "val" else d.test_views)
    return VideoDataset(
        source,
        root=d.root,
        mode=mode,
        num_frames=d.num_frames or m.num_frames,
        sampling_rate=d.sampling_rate,
        target_fps=d.target_fps,
        sampler=d.sampler,
        test_views=views,
        crop_size=d.crop_size or m.img_size,
        train_jitter=tuple(d.train_jitter),
        flip=d.flip,
        mean=d.mean,
        std=d.std,
        channel_order=d.channel_order,
        num_classes=m.num_classes,
        label_names=_label_names(cfg),
        seed=cfg.train.seed,
        separator=d.list_separator,
        upright=d.upright,
    )


class EpochSampler(DistributedSampler):
    """DistributedSampler (shuffled per epoch by seed + epoch) that can start mid-epoch.

    `skip` drops this rank's first samples of the epoch: a resume from a checkpoint written
    mid-epoch continues where the interrupted run stopped, with the same order.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.skip :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: NumPy and `random` follow the worker's torch seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def _unpack(batch: Any) -> tuple[Tensor, Tensor, int, Tensor | None]:
    """(video, label, substituted bad files, error flags or None) from a dict or tuple batch."""
    if isinstance(batch, dict):
        failures = batch.get("failures")
        n_fail = int(torch.as_tensor(failures).sum()) if failures is not None else 0
        err = batch.get("error")
        bad = None
        if err is not None and not isinstance(err, Tensor):
            bad = torch.tensor([bool(e) for e in err])
        return batch["video"], torch.as_tensor(batch["label"]), n_fail, bad
    video, label = batch[0], batch[1]
    return video, torch.as_tensor(label), 0, None


# ----------------------------------------------------------------------------- signals


class _StopFlag:
    """SIGINT/SIGTERM set a flag that the loop checks after each optimizer step."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ----------------------------------------------------------------------------- results


@dataclass
class TrainResult:
    """What a training run did and where its outputs are."""

    output_dir: Path
    epochs_done: int
    step: int
    best_metric: float | None  # best clip-level validation top-1 (fraction)
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per epoch
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    interrupted: str | None = None  # "SIGINT" / "SIGTERM" when stopped by a signal
    seconds: float = 0.0


@torch.no_grad()
def validate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Clip-level loss, top-1 and top-5 over `loader`, summed over all ranks.

    Items whose video failed to decode (`error` set) are left out and counted.
    """
    model.eval()
    loss_sum = top1 = top5 = n = failed = 0.0
    for batch in loader:
        video, label, _, bad = _unpack(batch)
        if bad is not None and bad.any():
            failed += float(bad.sum())
            keep = ~bad
            video, label = video[keep], label[keep]
            if len(label) == 0:
                continue
        video, label = video.to(device, non_blocking=True), label.to(device)
        with _autocast(device, amp_dtype):
            logits = model(video)
        logits = logits.float()  # (B, C)
        loss_sum += float(F.cross_entropy(logits, label, reduction="sum"))
        k = min(5, logits.shape[1])
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
    }


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


_AMP = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# ----------------------------------------------------------------------------- train


def train(
    cfg: RunConfig,
    *,
    resume: str | Path | bool | None = None,
    train_dataset: Dataset | None = None,
    val_dataset: Dataset | None = None,
    max_epochs: int | None = None,
    log: Log = print,
) -> TrainResult:
    """Run the training job `cfg`. Returns a TrainResult (on every rank).

    resume: a checkpoint path; True or None: `output_dir/last.pt` when it exists; False: start
    fresh even if it does. `train_dataset` / `val_dataset` replace the datasets of the config's
    lists (items: dicts with "video" (3, T, H, W) and "label", or (video, label) tuples).
    max_epochs: run at most this many epochs in this call, then return (a later call resumes
    from `last.pt`): for time-sliced jobs; the schedule still spans `train.epochs`.
    """
    t_start = time.time()
    owns_group = not D.is_dist()  # a group started by the caller is left to the caller
    info = D.init_distributed(cfg.train.device)
    owns_group = owns_group and info.distributed
    try:
        return _train(cfg, info, resume, train_dataset, val_dataset, max_epochs, log, t_start)
    finally:
        if owns_group:
            D.cleanup()


def _train(
    cfg: RunConfig,
    info: D.DistInfo,
    resume: str | Path | bool | None,
    train_ds: Dataset | None,
    val_ds: Dataset | None,
    max_epochs: int | None,
    log: Log,
    t_start: float,
) -> TrainResult:
    say: Log = log if info.is_main else (lambda s: None)
    device = info.device
    # class count from the labels file when the config leaves it open
    if cfg.model.num_classes is None and cfg.data.labels:
        from ..data import load_label_names

        names = load_label_names(cfg.data.labels)
        if names:
            cfg.model.num_classes = len(names)
    cfg = resolve(cfg)
    t = cfg.train
    out = Path(cfg.output_dir)

    # ---- model (same init on every rank), then per-rank RNG for dropout / drop path
    torch.manual_seed(t.seed)
    np.random.seed(t.seed)
    random.seed(t.seed)
    model = build_model(cfg, say)
    names = _label_names(cfg)
    if names is None and train_ds is not None:
        names = getattr(train_ds, "label_names", None)
    if names is not None and len(names) == model.config.num_classes:
        model.config = model.config.replace(labels=list(names))
    model.to(device)
    torch.manual_seed(t.seed + 1000 * info.rank + 1)

    # ---- data
    if train_ds is None:
        train_ds = build_dataset(cfg, "train")
    if val_ds is None and cfg.data.val_list and t.eval_every > 0:
        val_ds = build_dataset(cfg, "val")
    world = info.world_size
    accum = 1
    if t.global_batch_size is not None:
        per_step = t.batch_size * world
        if t.global_batch_size % per_step:
            raise ValueError(
                f"train.global_batch_size={t.global_batch_size} is not a multiple of "
                f"batch_size x processes = {t.batch_size} x {world}"
            )
        accum = t.global_batch_size // per_step
    sampler = EpochSampler(train_ds, world, info.rank, t.seed)
    gen = torch.Generator()
    pin = device.type == "cuda"
    loader = DataLoader(
        train_ds,
        batch_size=t.batch_size,
        sampler=sampler,
        num_workers=cfg.data.num_workers,
        drop_last=True,
        pin_memory=pin,
        worker_init_fn=_seed_worker,
        generator=gen,
    )
    micro_per_epoch = len(sampler) // t.batch_size
    steps_per_epoch = micro_per_epoch // accum
    if steps_per_epoch == 0:
        raise ValueError(
            f"the training set ({len(train_ds)} clips) is smaller than one global batch "
            f"({t.batch_size} x {world} processes x {accum} accumulation steps)"
        )
    if t.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, t.max_steps_per_epoch)
    val_loader = None
    if val_ds is not None:
        val_loader = DataLoader(
            val_ds,
            batch_size=t.batch_size,
            sampler=D.ShardSampler(len(val_ds), info.rank, world),
            num_workers=cfg.data.num_workers,
            pin_memory=pin,
            worker_init_fn=_seed_worker,
        )

    # ---- optimisation state
    optimizer = build_optimizer(model, cfg.optim)
    sched = LRSchedule(optimizer, cfg.optim, t.epochs, steps_per_epoch)
    amp_dtype = _AMP[t.amp]
    scaler = torch.amp.GradScaler(device.type, enabled=t.amp == "fp16")
    start_epoch, step, skip_steps, best = 0, 0, 0, None
    history: list[dict[str, Any]] = []

    ckpt_path: Path | None = None
    if resume not in (None, True, False):
        ckpt_path = Path(resume)  # type: ignore[arg-type]
    elif resume is not False:
        ckpt_path = find_last(out)
    if ckpt_path is not None:
        ck = read_training_checkpoint(ckpt_path)
        restore_training_state(
            ck,
            model,
            optimizer=optimizer,
            scheduler=sched,
            scaler=scaler,
            rank=info.rank,
            source=str(ckpt_path),
        )
        start_epoch = int(ck.get("epoch", 0))
        step = int(ck.get("step", 0))
        skip_steps = int(ck.get("batch_in_epoch", 0))
        best = ck.get("best_metric")
        history = list(ck.get("history", []))
        where = f"epoch {start_epoch + 1}" + (f", step {skip_steps} of it" if skip_steps else "")
        say(f"resumed from {ckpt_path} (optimizer step {step}); continuing at {where}")
        del ck

    net: nn.Module = model
    if info.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None
        )

    # ---- outputs (rank 0 only)
    writer = None
    metrics_f = None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        metrics_f = open(out / "metrics.jsonl", "a" if ckpt_path else "w")  # noqa: SIM115
        if t.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RuntimeError(
                    "train.tensorboard=true needs the tensorboard package "
                    "(pip install 'timesformer[tensorboard]')"
                ) from None
            writer = SummaryWriter(str(out / "tb"))
    n_params = sum(p.numel() for p in model.parameters())
    say(
        f"training {cfg.model.name} ({cfg.model.attention_type}, {n_params / 1e6:.2f}M params) "
        f"on {device} x{world}: {len(train_ds)} clips, {steps_per_epoch} steps/epoch of "
        f"{t.batch_size} x {world} x {accum} clips, {t.epochs} epochs -> {out}"
    )

    def write_metrics(row: dict[str, Any]) -> None:
        if metrics_f is not None:
            metrics_f.write(json.dumps(row) + "\n")
            metrics_f.flush()
        if writer is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    writer.add_scalar(f"{row['kind']}/{k}", v, row["step"])

    def save(path_name: str, epoch_done: int, batch_in_epoch: int) -> Path | None:
        rngs = D.all_gather_objects(rng_state())
        if not info.is_main:
            return None
        return save_training_checkpoint(
            out / path_name,
            model,
            optimizer=optimizer,
            scheduler=sched,
            scaler=scaler,
            epoch=epoch_done,
            step=step,
            batch_in_epoch=batch_in_epoch,
            rng=rngs,
            train_config=cfg.to_dict(),
            best_metric=best,
            history=history,
        )

    result = TrainResult(out, start_epoch, step, best, history)
    if info.is_main and (out / BEST).is_file():
        result.best_checkpoint = out / BEST
    net.train()
    with _StopFlag() as stop:
        end_epoch = t.epochs if max_epochs is None else min(t.epochs, start_epoch + max_epochs)
        for epoch in range(start_epoch, end_epoch):
            sampler.set_epoch(epoch)
            sampler.skip = skip_steps * accum * t.batch_size
            if hasattr(train_ds, "set_epoch"):
                train_ds.set_epoch(epoch)
            gen.manual_seed(t.seed * 1_000_003 + epoch * 1009 + info.rank)
            done_in_epoch = skip_steps
            skip_steps = 0
            loss_sum = correct = seen = failures = 0.0
            t_epoch = time.time()
            t_log, seen_log = time.time(), 0
            bar = _progress(
                steps_per_epoch, done_in_epoch, f"epoch {epoch + 1}/{t.epochs}", info, t
            )
            micro = 0
            optimizer.zero_grad(set_to_none=True)
            for batch in loader:
                if done_in_epoch >= steps_per_epoch:
                    break
                video, label, n_fail, _ = _unpack(batch)
                failures += n_fail
                video = video.to(device, non_blocking=True)
                label = label.to(device, non_blocking=True)
                micro += 1
                last_micro = micro % accum == 0
                sync = contextlib.nullcontext()
                if info.distributed and not last_micro:
                    sync = net.no_sync()
                with sync:
                    with _autocast(device, amp_dtype):
                        logits = net(video)
                    loss = F.cross_entropy(logits.float(), label, label_smoothing=t.label_smoothing)
                    scaler.scale(loss / accum).backward()
                loss_sum += float(loss.detach()) * len(label)
                correct += float((logits.detach().argmax(1) == label).sum())
                seen += len(label)
                if not last_micro:
                    continue
                if cfg.optim.clip_grad:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                lr = sched.get_last_lr()[0]
                step += 1
                done_in_epoch += 1
                sched.step()
                if step % t.log_every == 0 or bar is not None:
                    now = time.time()
                    rate = (seen - seen_log) * world / max(now - t_log, 1e-9)
                    if bar is not None:
                        bar.set_postfix(
                            loss=f"{loss_sum / max(seen, 1):.4f}",
                            lr=f"{lr:.2e}",
                            clips_s=f"{rate:.1f}",
                            refresh=False,
                        )
                        bar.update(1)
                    if step % t.log_every == 0:
                        write_metrics(
                            {
                                "kind": "step",
                                "epoch": epoch + done_in_epoch / steps_per_epoch,
                                "step": step,
                                "loss": loss_sum / max(seen, 1),
                                "lr": lr,
                                "clips_per_s": rate,
                            }
                        )
                        t_log, seen_log = now, seen
                if D.any_rank(stop.signal is not None, device):
                    break
            if bar is not None:
                bar.close()
            stopped = D.any_rank(stop.signal is not None, device)
            if stopped and done_in_epoch < steps_per_epoch:
                result.last_checkpoint = save(LAST, epoch, done_in_epoch)
                result.interrupted = stop.signal or "signal"
                say(
                    f"stopped by {result.interrupted} at epoch {epoch + 1}, step "
                    f"{done_in_epoch}/{steps_per_epoch}; saved {out / LAST}; run the same "
                    "command again to resume"
                )
                break

            # ---- end of epoch: reduce, validate, checkpoint, log
            loss_sum, correct, seen, failures = D.all_reduce_sum(
                [loss_sum, correct, seen, failures], device
            )
            row: dict[str, Any] = {
                "kind": "epoch",
                "epoch": epoch + 1,
                "step": step,
                "train_loss": loss_sum / max(seen, 1),
                "train_top1": correct / max(seen, 1),
                "lr": sched.get_last_lr()[0],
                "bad_files": int(failures),
                "epoch_seconds": time.time() - t_epoch,
            }
            last_epoch = epoch + 1 == t.epochs
            if (
                val_loader is not None
                and t.eval_every
                and ((epoch + 1) % t.eval_every == 0 or last_epoch)
            ):
                row.update(validate(net, val_loader, device, amp_dtype))
                row["val_level"] = "clip"
            history.append(row)
            improved = "val_clip_top1" in row and (best is None or row["val_clip_top1"] > best)
            if improved:
                best = row["val_clip_top1"]
            if improved:
                p = save(BEST, epoch + 1, 0)
                if p is not None:
                    result.best_checkpoint = p
            if (epoch + 1) % t.save_every == 0 or epoch + 1 == end_epoch or stopped:
                p = save(LAST, epoch + 1, 0)
                if p is not None:
                    result.last_checkpoint = p
            write_metrics(row)
            say(_epoch_line(row, t.epochs))
            result.epochs_done = epoch + 1
            if stopped:
                result.interrupted = stop.signal or "signal"
                say(f"stopped by {result.interrupted} after epoch {epoch + 1}; saved {out / LAST}")
                break

    result.step, result.best_metric, result.history = step, best, history
    result.seconds = time.time() - t_start
    if info.is_main:
        if metrics_f is not None:
            metrics_f.close()
        if writer is not None:
            writer.close()
        if history and result.interrupted is None:
            plot_curves(history, out / "curves.png")
    D.barrier()
    return result


def _progress(total: int, initial: int, desc: str, info: D.DistInfo, t: Any) -> Any:
    if not (info.is_main and t.progress):
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, unit="step", leave=False, dynamic_ncols=True
    )


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    s = (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} "
        f"top-1 {100 * row['train_top1']:.1f}%"
    )
    if "val_clip_top1" in row:
        s += (
            f" | val (clip-level) loss {row['val_clip_loss']:.4f} "
            f"top-1 {100 * row['val_clip_top1']:.1f}% top-5 {100 * row['val_clip_top5']:.1f}%"
        )
        if row.get("val_failed"):
            s += f" ({row['val_failed']} undecodable)"
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
