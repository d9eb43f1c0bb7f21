"""The training loop: AMP, gradient accumulation, DDP, schedules, checkpoints, resume, logging.

`train(cfg)` runs a whole training job from a `RunConfig` (engine.config) and returns a
`TrainResult`. The same call works in one process and under `torchrun` (DDP: gloo on CPU, NCCL
on GPU); only rank 0 writes. What lands in `cfg.output_dir`::

    config.yaml      the resolved configuration
    metrics.jsonl    one line per logging step ({"kind": "step"}) and per epoch ({"kind": "epoch"})
    last.pt          every `train.save_every` epochs, and on SIGINT/SIGTERM (mid-epoch)
    best.pt          the epoch with the best clip-level validation top-1 (a tie: the lower loss)
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
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..files import OutputError, atomic_write_text, ensure_dir, json_safe
from . import distributed as D
from .build import build_dataset, build_model, fill_num_classes, label_names, run_preprocess
from .checkpoint import (
    BEST,
    LAST,
    find_last,
    rng_state,
    save_training_checkpoint,
)
from .config import RunConfig, resolve, save_config
from .epoch import SUM_KEYS, TrainingDiverged
from .epoch import EpochStats as EpochStats
from .epoch import train_one_epoch as train_one_epoch
from .epoch import validate as validate
from .loaders import EpochSampler, seed_worker
from .optim import LRSchedule, build_optimizer
from .progress import epoch_line, plot_curves
from .resume import resume_state
from .runtime import StopFlag, compile_for_training

Log = Callable[[str], None]


def log_stderr(line: str) -> None:
    """The default log: one line on stderr (stdout stays for results, e.g. `train --json`)."""
    print(line, file=sys.stderr, flush=True)


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


# ----------------------------------------------------------------------------- run set-up


def train(
    cfg: RunConfig,
    *,
    resume: str | Path | bool | None = None,
    train_dataset: Dataset | None = None,
    val_dataset: Dataset | None = None,
    max_epochs: int | None = None,
    allow_config_change: bool = False,
    log: Log = log_stderr,
    debug: bool = False,
) -> TrainResult:
    """Run the training job `cfg`. Returns a TrainResult (on every rank).

    resume: a checkpoint path; True or None: `output_dir/last.pt` when it exists (unless
    `train.resume` is false); False: start fresh even if it does. A checkpoint whose stored
    config differs from `cfg` is refused (engine.resume.ConfigChangedError lists the keys)
    unless `allow_config_change`, which resumes with the new hyperparameters. `train_dataset` / `val_dataset` replace the datasets of the config's
    lists (items: dicts with "video" (3, T, H, W) and "label", or (video, label) tuples).
    max_epochs: run at most this many epochs in this call, then return (a later call resumes
    from `last.pt`): for time-sliced jobs; the schedule still spans `train.epochs`.
    debug: each bad file's log line (in the DataLoader worker that met it) is followed by its
    traceback (`--debug`).
    """
    t_start = time.time()
    owns_group = not D.is_dist()  # a group started by the caller is left to the caller
    info = D.init_distributed(cfg.train.device)
    owns_group = owns_group and info.distributed
    out = Path(cfg.output_dir)
    made_out = not out.exists()
    try:
        run = _Run(cfg, info, train_dataset, val_dataset, log, debug)
        return run.fit(resume, max_epochs, t_start, allow_config_change)
    except BaseException:
        if made_out and info.is_main:  # a run that failed before writing leaves no folder
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty
        raise
    finally:
        if owns_group:
            D.cleanup()


class _Run:
    """The wiring of one training job: model, data loaders, optimisation state, outputs."""

    def __init__(
        self,
        cfg: RunConfig,
        info: D.DistInfo,
        train_ds: Dataset | None,
        val_ds: Dataset | None,
        log: Log,
        debug: bool = False,
    ) -> None:
        self.info = info
        self.say: Log = log if info.is_main else (lambda s: None)
        self.device = info.device
        self.cfg = cfg = resolve(fill_num_classes(cfg))
        t = cfg.train
        for note in geometry_notes(cfg):
            self.say(f"warning: {note}")
        self.out = Path(cfg.output_dir)
        if info.is_main:  # before any work: a read-only or mistyped folder fails in one line
            ensure_dir(self.out, "output_dir")
        # model: the same init on every rank, then per-rank RNG for dropout / drop path
        torch.manual_seed(t.seed)
        np.random.seed(t.seed)
        random.seed(t.seed)
        # how the weights start: said once fit() knows the run is not resumed (then they come
        # from the checkpoint and these lines would mislead)
        self.init_notes: list[str] = []
        self.model = model = build_model(cfg, self.init_notes.append)
        names = label_names(cfg)
        if names is None and train_ds is not None:
            names = getattr(train_ds, "label_names", None)
        if names is not None and len(names) == model.config.num_classes:
            model.config = model.config.replace(labels=list(names))
        else:
            names = None
        model.preprocess = run_preprocess(cfg, model, names)  # stored in every checkpoint
        model.to(self.device)
        torch.manual_seed(t.seed + 1000 * info.rank + 1)
        if train_ds is None:
            train_ds = build_dataset(cfg, "train")
        if val_ds is None and cfg.data.val_list and t.eval_every > 0:
            val_ds = build_dataset(cfg, "val")
        for ds in (train_ds, val_ds):
            if debug and hasattr(ds, "debug"):
                ds.debug = True  # before the loaders: their workers get a copy
        self.train_ds = train_ds
        self._loaders(train_ds, val_ds)
        self.optimizer = build_optimizer(model, cfg.optim)
        self.sched = LRSchedule(self.optimizer, cfg.optim, t.epochs, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.amp == "fp16")
        self.start_epoch, self.step, self.skip_steps = 0, 0, 0
        self.resumed_sums: dict[str, float] | None = None  # of a mid-epoch checkpoint
        self.best: float | None = None  # clip-level val top-1 of best.pt
        self.best_loss: float | None = None  # its val loss: a tie in top-1 goes to the lower
        self.history: list[dict[str, Any]] = []
        self.writer: Any = None
        self.metrics_f: Any = None

    def _loaders(self, train_ds: Dataset, val_ds: Dataset | None) -> None:
        cfg, info, t = self.cfg, self.info, self.cfg.train
        world = info.world_size
        self.accum = 1
        if t.global_batch_size is not None:
            per_step = t.batch_size * world
            if t.global_batch_size % per_step:
                raise ValueError(
                    f"train.global_batch_size={t.global_batch_size} is not a multiple of "
                    f"train.batch_size x processes = {t.batch_size} x {world}; set "
                    f"train.global_batch_size to a multiple of {per_step} or change "
                    "train.batch_size"
                )
            self.accum = t.global_batch_size // per_step
        self.global_batch = t.batch_size * world * self.accum  # clips per optimizer step
        self.sampler = EpochSampler(train_ds, world, info.rank, t.seed)
        self.gen = torch.Generator()
        pin = self.device.type == "cuda"
        self.loader = DataLoader(
            train_ds,
            batch_size=t.batch_size,
            sampler=self.sampler,
            num_workers=cfg.data.num_workers,
            drop_last=True,
            pin_memory=pin,
            worker_init_fn=seed_worker,
            generator=self.gen,
        )
        micro_per_epoch = len(self.sampler) // t.batch_size
        self.steps_per_epoch = micro_per_epoch // self.accum
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the training set ({len(train_ds)} clips) is smaller than one global batch "
                f"({t.batch_size} x {world} processes x {self.accum} accumulation steps)"
            )
        if t.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, t.max_steps_per_epoch)
        self.val_loader = None
        if val_ds is not None:
            self.val_loader = DataLoader(
                val_ds,
                batch_size=t.batch_size,
                sampler=D.ShardSampler(len(val_ds), info.rank, world),
                num_workers=cfg.data.num_workers,
                pin_memory=pin,
                worker_init_fn=seed_worker,
            )

    def _resume(self, resume: str | Path | bool | None, allow_change: bool) -> Path | None:
        """Restore the state of `resume` (or of output_dir/last.pt); the path read, or None."""
        ckpt_path: Path | None = None
        if resume not in (None, True, False):
            ckpt_path = Path(resume)  # type: ignore[arg-type]
        elif resume is not False and (resume is True or self.cfg.train.resume):
            ckpt_path = find_last(self.out)
        if ckpt_path is None:
            return None
        st = resume_state(
            ckpt_path,
            model=self.model,
            optimizer=self.optimizer,
            sched=self.sched,
            scaler=self.scaler,
            new_config=self.cfg.to_dict(),
            global_batch=self.global_batch,
            steps_per_epoch=self.steps_per_epoch,
            world_size=self.info.world_size,
            rank=self.info.rank,
            allow_config_change=allow_change,
        )
        self.start_epoch, self.step, self.skip_steps = st.start_epoch, st.step, st.skip_steps
        self.best, self.history = st.best, st.history
        self.best_loss = _best_loss(self.history, self.best)
        if self.skip_steps and self.info.is_main:  # rank 0 carries the whole run's sums
            self.resumed_sums = st.epoch_sums
        for note in st.notes:
            self.say(f"warning: {note}")
        epochs = self.cfg.train.epochs
        if self.start_epoch >= epochs:
            self.say(
                f"{ckpt_path} has finished all {epochs} epochs (optimizer step {self.step}); "
                "nothing to train: to train on, raise train.epochs and pass "
                "--allow-config-change (the LR schedule then spans the new total), or start "
                "again with --fresh"
            )
            return ckpt_path
        skip = self.skip_steps
        where = f"epoch {self.start_epoch + 1}" + (f", step {skip} of it" if skip else "")
        self.say(f"resumed from {ckpt_path} (optimizer step {self.step}); continuing at {where}")
        return ckpt_path

    def _open_outputs(self, resumed: bool) -> None:
        """config.yaml, metrics.jsonl (appended on resume), TensorBoard: rank 0 only."""
        if not self.info.is_main:
            return
        cfg, out = self.cfg, self.out
        out.mkdir(parents=True, exist_ok=True)
        for name in (LAST, BEST, "config.yaml", "metrics.jsonl", "curves.png"):
            if (out / name).is_dir():  # found now, not after the first epoch's work
                raise OutputError(f"{out / name} is a folder; training writes a file there")
        save_config(cfg, out / "config.yaml")
        metrics = out / "metrics.jsonl"
        if resumed:
            drop_rows_after(metrics, self.step)
        self.metrics_f = open(metrics, "a" if resumed else "w")  # noqa: SIM115
        if cfg.train.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RuntimeError(
                    "train.tensorboard=true needs the tensorboard package "
                    "(pip install 'timesformer[tensorboard]')"
                ) from None
            self.writer = SummaryWriter(str(out / "tb"))

    def write_metrics(self, row: dict[str, Any]) -> None:
        """One metrics.jsonl line (and TensorBoard scalars)."""
        if self.metrics_f is not None:
            self.metrics_f.write(json.dumps(json_safe(row)) + "\n")
            self.metrics_f.flush()
        if self.writer is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self.writer.add_scalar(f"{row['kind']}/{k}", v, row["step"])

    def save(
        self,
        path_name: str,
        epoch_done: int,
        batch_in_epoch: int,
        epoch_sums: dict[str, float] | None = None,
    ) -> Path | None:
        """Every rank's RNG states gathered; rank 0 writes the checkpoint. `epoch_sums`: the
        sums of a part-done epoch (all ranks), so that its resume reports the whole epoch."""
        rngs = D.all_gather_objects(rng_state())
        if not self.info.is_main:
            return None
        extra = {} if epoch_sums is None else {"epoch_sums": epoch_sums}
        return save_training_checkpoint(
            self.out / path_name,
            self.model,
            optimizer=self.optimizer,
            scheduler=self.sched,
            scaler=self.scaler,
            epoch=epoch_done,
            step=self.step,
            batch_in_epoch=batch_in_epoch,
            rng=rngs,
            train_config=self.cfg.to_dict(),
            best_metric=self.best,
            history=self.history,
            world_size=self.info.world_size,
            global_batch=self.global_batch,
            samples_in_epoch=batch_in_epoch * self.global_batch,
            **extra,
        )

    def fit(
        self,
        resume: str | Path | bool | None,
        max_epochs: int | None,
        t0: float,
        allow_change: bool = False,
    ) -> TrainResult:
        """Resume if asked, then run the epochs; checkpoints, metrics and curves on rank 0."""
        cfg, t, info, out, device = self.cfg, self.cfg.train, self.info, self.out, self.device
        ckpt_path = self._resume(resume, allow_change)
        if ckpt_path is None:
            for note in self.init_notes:
                self.say(note)
        net: nn.Module = self.model
        if info.distributed:
            net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device] if device.type == "cuda" else None
            )
        if t.compile:
            net = compile_for_training(net, device, t.compile_mode)
        self._open_outputs(resumed=ckpt_path is not None)
        world = info.world_size
        n_params = sum(p.numel() for p in self.model.parameters())
        line = (
            f"training {cfg.model.name} ({cfg.model.attention_type}, {n_params / 1e6:.2f}M "
            f"params) on {device} x{world}{'' if t.amp == 'off' else f' in {t.amp} autocast'}: "
            f"{len(self.train_ds)} clips, {self.steps_per_epoch} "
            f"steps/epoch of {t.batch_size} x {world} x {self.accum} clips, {t.epochs} epochs "
            f"-> {out}" + ("; torch.compile at the first step (minutes)" if t.compile else "")
        )
        if self.start_epoch < t.epochs:  # a finished run: _resume has said so, nothing more
            self.say(line)
        result = TrainResult(out, self.start_epoch, self.step, self.best, self.history)
        if info.is_main and (out / BEST).is_file():
            result.best_checkpoint = out / BEST
        if info.is_main and ckpt_path is not None:
            result.last_checkpoint = ckpt_path  # until this run writes one
        net.train()
        try:
            with StopFlag() as stop:
                end = (
                    t.epochs if max_epochs is None else min(t.epochs, self.start_epoch + max_epochs)
                )
                for epoch in range(self.start_epoch, end):
                    if not self._epoch(net, epoch, end, stop, result):
                        break
        finally:
            if self.metrics_f is not None:
                self.metrics_f.close()
            if self.writer is not None:
                self.writer.close()
        result.step, result.best_metric, result.history = self.step, self.best, self.history
        result.seconds = time.time() - t0
        if info.is_main and self.history:  # a stopped run too: its epochs so far
            try:
                plot_curves(self.history, out / "curves.png")
            except (OSError, ValueError, RuntimeError) as e:  # a figure never fails a run
                self.say(f"warning: could not draw {out / 'curves.png'} ({e})")
        D.barrier()
        return result

    def _epoch(
        self, net: nn.Module, epoch: int, end_epoch: int, stop: StopFlag, result: TrainResult
    ) -> bool:
        """Train, validate, checkpoint and log one epoch. False: stop the run (a signal)."""
        t, info, device, out = self.cfg.train, self.info, self.device, self.out
        self.sampler.set_epoch(epoch)
        self.sampler.skip = self.skip_steps * self.accum * t.batch_size
        if hasattr(self.train_ds, "set_epoch"):
            self.train_ds.set_epoch(epoch)
        self.gen.manual_seed(t.seed * 1_000_003 + epoch * 1009 + info.rank)
        start, self.skip_steps = self.skip_steps, 0
        t_epoch = time.time()
        st = train_one_epoch(
            net,
            self.loader,
            self.optimizer,
            self.sched,
            self.scaler,
            t=t,
            clip_grad=self.cfg.optim.clip_grad,
            device=device,
            epoch=epoch,
            step=self.step,
            start=start,
            steps_per_epoch=self.steps_per_epoch,
            accum=self.accum,
            info=info,
            stop=stop,
            write_metrics=self.write_metrics,
            resumed_sums=self.resumed_sums if start else None,
        )
        self.resumed_sums = None
        self.step = st.step
        if st.diverged:
            raise TrainingDiverged(
                f"training diverged: the loss is not finite (NaN or infinite) at epoch "
                f"{epoch + 1}, step {st.done_in_epoch}/{self.steps_per_epoch}; nothing of this "
                "epoch was saved (checkpoints in the output folder are as they were). Lower "
                "optim.lr or set optim.clip_grad"
                + (", or use train.amp=bf16 rather than fp16" if t.amp == "fp16" else "")
            )
        if st.stopped and st.done_in_epoch < self.steps_per_epoch:
            sums = D.all_reduce_sum([getattr(st, k) for k in SUM_KEYS], device)
            result.last_checkpoint = self.save(
                LAST, epoch, st.done_in_epoch, dict(zip(SUM_KEYS, map(float, sums)))
            )
            result.interrupted = stop.signal or "signal"
            self.say(
                f"stopped by {result.interrupted} at epoch {epoch + 1}, step "
                f"{st.done_in_epoch}/{self.steps_per_epoch}; saved {out / LAST}; run the same "
                "command again to resume"
            )
            return False
        # end of epoch: reduce, validate, checkpoint, log
        loss_sum, correct, seen, failures = D.all_reduce_sum(
            [st.loss_sum, st.correct, st.seen, st.failures], device
        )
        row: dict[str, Any] = {
            "kind": "epoch",
            "epoch": epoch + 1,
            "step": self.step,
            "train_loss": loss_sum / max(seen, 1),
            "train_top1": correct / max(seen, 1),
            "lr": self.sched.get_last_lr()[0],
            "bad_files": int(failures),
            "epoch_seconds": time.time() - t_epoch,
        }
        last_epoch = epoch + 1 == t.epochs
        if (
            self.val_loader is not None
            and t.eval_every
            and ((epoch + 1) % t.eval_every == 0 or last_epoch)
        ):
            eager = getattr(net, "_orig_mod", net)  # under train.compile: no second graph
            val = validate(eager, self.val_loader, device, t.amp)
            if val["val_clips"] == 0:  # nothing decoded: no score (a 0% would look real)
                self.say(
                    f"warning: validation at epoch {epoch + 1} decoded none of its "
                    f"{val['val_failed']} clips; no validation score, best.pt not updated"
                )
                val = {"val_clips": 0, "val_failed": val["val_failed"]}
            row.update(val)
            row["val_level"] = "clip"
        self.history.append(row)
        improved = "val_clip_top1" in row and _better(row, self.best, self.best_loss)
        if improved:
            self.best, self.best_loss = row["val_clip_top1"], row["val_clip_loss"]
            row["best"] = True
        # last.pt first: a failing best.pt write then loses nothing (the epoch is in last.pt)
        if improved or (epoch + 1) % t.save_every == 0 or epoch + 1 == end_epoch or st.stopped:
            p = self.save(LAST, epoch + 1, 0)
            if p is not None:
                result.last_checkpoint = p
        if improved:
            try:
                p = self.save(BEST, epoch + 1, 0)
            except OSError as e:
                self.say(f"warning: could not write {out / BEST} ({e}); {out / LAST} holds "
                         f"epoch {epoch + 1}")  # fmt: skip
                p = None
            if p is not None:
                result.best_checkpoint = p
        self.write_metrics(row)
        self.say(epoch_line(row, t.epochs))
        result.epochs_done = epoch + 1
        if st.stopped:
            result.interrupted = stop.signal or "signal"
            self.say(f"stopped by {result.interrupted} after epoch {epoch + 1}; saved {out / LAST}")
            return False
        return True


def drop_rows_after(metrics: Path, step: int) -> None:
    """Remove the metrics.jsonl lines of optimizer steps after `step` (the checkpoint a run
    resumes from): a run killed after its last checkpoint had logged steps that the resumed run
    logs again. A line that is not JSON (cut short by the kill) goes too."""
    if not metrics.is_file():
        return
    lines = metrics.read_text(encoding="utf-8", errors="replace").splitlines()
    keep: list[str] = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and int(row.get("step", 0) or 0) <= step:
            keep.append(line)
    if len(keep) != len(lines):
        atomic_write_text(metrics, "".join(k + "\n" for k in keep))


def geometry_notes(cfg: RunConfig) -> list[str]:
    """Warnings for clips of another shape than the model's (it resamples its embeddings to
    them on every step: it runs, but it is rarely what was meant)."""
    m, d = cfg.model, cfg.data
    out = []
    if d.num_frames != m.num_frames:
        out.append(
            f"data.num_frames={d.num_frames} differs from model.num_frames={m.num_frames}: the "
            f"time embedding is resampled to {d.num_frames} frames at every step; set "
            "model.num_frames to the same value to train a model of that length"
        )
    if d.crop_size != m.img_size:
        out.append(
            f"data.crop_size={d.crop_size} differs from model.img_size={m.img_size}: the "
            "position embedding is resampled at every step; set model.img_size to the same value"
        )
    return out


def _better(row: dict[str, Any], best: float | None, best_loss: float | None) -> bool:
    """Whether an epoch's validation beats best.pt's: a higher clip top-1, or the same top-1
    at a lower loss (small validation sets tie often, at 100% most of all)."""
    if best is None:
        return True
    top1, loss = row["val_clip_top1"], row["val_clip_loss"]
    return top1 > best or (top1 == best and best_loss is not None and loss < best_loss)


def _best_loss(history: list[dict[str, Any]], best: float | None) -> float | None:
    """The lowest val loss among the epochs of a resumed history that reached `best`."""
    losses = [r["val_clip_loss"] for r in history
              if r.get("val_clip_top1") == best and "val_clip_loss" in r]  # fmt: skip
    return min(losses) if best is not None and losses else None
