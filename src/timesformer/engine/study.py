"""The paper's ablations in miniature (`timesformer study`): cells, seed-runs, resume, results.

A *cell* is one model configuration on one rendered dataset (`data.study_tasks`): attention
scheme, position embedding, frames and resolution. Every cell is trained from scratch with the
same small model family and schedule (a `Scale`) over several seeds (each seed renders its own
training and validation videos and initialises its own model); its score is the top-1 of the
last epoch on held-out videos (the centre clip of each; no model selection on them).

Studies: `table1` (five attention schemes x two datasets), `table4` (three position embeddings
x two datasets, divided attention), `fig5` (frames and resolution on the motion dataset). Cells
shared by studies (divided, space-time embedding, 8 frames of 32 px appears in all three) run
once. Each finished seed-run is stored atomically as `cells/<scale>/<cell>/seed<k>.json`; a rerun
skips what is stored (with the same recipe), so an interrupted study resumes run by run. Runs go
to worker processes, with torch threads split so that workers x threads <= cores.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..files import atomic_write_text, ensure_dir

STUDIES: tuple[str, ...] = ("table1", "table4", "fig5")
ATTENTIONS: tuple[str, ...] = (
    "divided_space_time",
    "space_only",
    "joint_space_time",
    "sparse_local_global",
    "axial",
)
POS_EMBEDS: tuple[str, ...] = ("none", "space", "space_time")
RECIPE_VERSION = 2  # bump when run_config or the datasets change what a cell trains
Log = Callable[[str], None]


@dataclass(frozen=True)
class Scale:
    """The shared recipe: data sizes, model family and schedule (one for every cell)."""

    name: str
    num_train: int = 1000
    num_val: int = 200
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    embed_dim: int = 64
    depth: int = 2
    num_heads: int = 2
    patch_size: int = 8
    num_frames: int = 8  # the default cell geometry
    img_size: int = 32
    frames: tuple[int, ...] = (2, 4, 8, 16)  # fig5 axes (motion dataset)
    sizes: tuple[int, ...] = (16, 32, 48, 64)

    def recipe(self) -> dict[str, Any]:
        """What a stored run must match to be reused (everything but the name)."""
        d = asdict(self)
        d.pop("name")
        d["frames"], d["sizes"] = list(self.frames), list(self.sizes)
        # what is fixed in code rather than in the Scale: a run made before either changed is
        # not reused (v2: temporal_fc starts at zero; the appearance object never wraps)
        d["recipe_version"] = RECIPE_VERSION
        return d


SCALES: dict[str, Scale] = {
    # the demo's recipe (configs/demo.yaml), 1000 training videos per dataset
    "full": Scale("full"),
    # --quick: table1 within 15 minutes on 2 cores (measured: docs/study.md)
    "quick": Scale("quick", num_train=800, num_val=200, epochs=14),
    # the test suite's structure check: seconds, accuracy meaningless
    "tiny": Scale(
        "tiny",
        num_train=16,
        num_val=8,
        epochs=1,
        batch_size=8,
        embed_dim=16,
        depth=1,
        num_heads=1,
        num_frames=4,
        img_size=16,
        frames=(2, 4),
        sizes=(16, 24),
    ),
}


@dataclass(frozen=True)
class Cell:
    """One model configuration on one dataset."""

    dataset: str
    attention_type: str = "divided_space_time"
    pos_embed: str = "space_time"
    num_frames: int = 8
    img_size: int = 32

    @property
    def key(self) -> str:
        return (
            f"{self.dataset}-{self.attention_type}-{self.pos_embed}"
            f"-f{self.num_frames}-s{self.img_size}"
        )


@dataclass(frozen=True)
class Entry:
    """A cell as a study lists it (fig5 adds which axis the cell belongs to)."""

    study: str
    cell: Cell
    axis: str | None = None


def parse_studies(names: list[str]) -> list[str]:
    """Study names (with `all`) -> the studies to run, in order; ValueError naming a bad one."""
    out: list[str] = []
    for n in names:
        if n == "all":
            out.extend(STUDIES)
        elif n in STUDIES:
            out.append(n)
        else:
            close = difflib.get_close_matches(n, [*STUDIES, "all"], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown study {n!r}; expected table1, table4, fig5 or all.{hint}")
    if not out:
        raise ValueError("no study given; expected table1, table4, fig5 or all")
    return list(dict.fromkeys(out))


def plan(studies: list[str], scale: Scale) -> list[Entry]:
    """The cells each study reports, in table order."""
    base = Cell("motion", num_frames=scale.num_frames, img_size=scale.img_size)
    entries: list[Entry] = []
    for s in studies:
        for ds in ("appearance", "motion") if s != "fig5" else ():
            grid = ATTENTIONS if s == "table1" else POS_EMBEDS
            for v in grid:
                kw = {"attention_type": v} if s == "table1" else {"pos_embed": v}
                entries.append(Entry(s, replace(base, dataset=ds, **kw)))
        if s == "fig5":
            entries += [Entry(s, replace(base, num_frames=t), "frames") for t in scale.frames]
            entries += [Entry(s, replace(base, img_size=z), "resolution") for z in scale.sizes]
    return entries


# ------------------------------------------------------------------------------ one run


def run_config(cell: Cell, seed: int, scale: Scale, work: Path, num_classes: int) -> Any:
    """The RunConfig of one seed-run: the demo's recipe at the cell's geometry."""
    from .config import RunConfig

    return RunConfig.from_dict(
        {
            "model": {
                "name": "timesformer_tiny",
                "num_classes": num_classes,
                "num_frames": cell.num_frames,
                "img_size": cell.img_size,
                "patch_size": scale.patch_size,
                "embed_dim": scale.embed_dim,
                "depth": scale.depth,
                "num_heads": scale.num_heads,
                "attention_type": cell.attention_type,
                "pos_embed": cell.pos_embed,
                "drop_path_rate": 0.0,
                "zero_init_temporal_fc": True,
                "time_embed_init_std": 1.0,
            },
            "data": {"num_frames": cell.num_frames, "crop_size": cell.img_size, "num_workers": 0},
            "optim": {
                "name": "adamw",
                "lr": scale.lr,
                "weight_decay": 0.05,
                "no_decay_norm_bias_embed": True,
                "schedule": "cosine",
                "warmup_epochs": 1.0,
                "warmup_start_factor": 0.01,
                "clip_grad": 1.0,
            },
            "train": {
                "epochs": scale.epochs,
                "batch_size": scale.batch_size,
                "global_batch_size": scale.batch_size,
                "seed": seed,
                "device": "cpu",
                "eval_every": scale.epochs,
                "save_every": scale.epochs,
                "log_every": 10**6,
                "progress": False,
            },
            "output_dir": str(work),
        }
    )


_DATA_CACHE: dict[tuple, tuple[Any, Any]] = {}


def _datasets(cell: Cell, seed: int, scale: Scale) -> tuple[Any, Any]:
    """Training and validation clips of a cell's dataset and geometry (cached per process)."""
    from ..data.study_tasks import ArrayClips, class_names, render_videos, video_length

    key = (cell.dataset, cell.num_frames, cell.img_size, seed, scale.num_train, scale.num_val)
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) >= 4:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        names = class_names(cell.dataset)
        length = video_length(cell.num_frames)
        out = []
        for split, (count, train) in enumerate(((scale.num_train, True), (scale.num_val, False))):
            videos, labels = render_videos(
                cell.dataset, count, size=cell.img_size, length=length, seed=seed, split=split
            )
            clips = ArrayClips(
                videos, labels, cell.num_frames, train=train, seed=seed, label_names=names
            )
            out.append(clips)
        _DATA_CACHE[key] = (out[0], out[1])
    return _DATA_CACHE[key]


def cell_cost(cell: Cell, scale: Scale) -> dict[str, float]:
    """Parameters and MACs of one clip of the cell's model (`count_flops`, on the meta device)."""
    import torch

    from ..data.study_tasks import class_names
    from ..models import count_flops, create_model

    with torch.device("meta"):
        model = create_model(
            "timesformer_tiny",
            num_classes=len(class_names(cell.dataset)),
            num_frames=cell.num_frames,
            img_size=cell.img_size,
            patch_size=scale.patch_size,
            embed_dim=scale.embed_dim,
            depth=scale.depth,
            num_heads=scale.num_heads,
            attention_type=cell.attention_type,
            pos_embed=cell.pos_embed,
            drop_path_rate=0.0,
        )
    cost = count_flops(model)
    return {"params": int(cost["params"]), "macs": float(cost["macs"])}


def run_seed(cell: Cell, seed: int, scale: Scale, work: Path) -> dict[str, Any]:
    """Train one cell at one seed in `work` (removed afterwards); return its stored record."""
    from ..data.study_tasks import class_names
    from .train import train

    t0, c0 = time.time(), time.process_time()
    train_ds, val_ds = _datasets(cell, seed, scale)
    cfg = run_config(cell, seed, scale, work, len(class_names(cell.dataset)))
    try:
        result = train(
            cfg, resume=False, train_dataset=train_ds, val_dataset=val_ds, log=lambda s: None
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if result.interrupted or result.epochs_done < scale.epochs or not result.history:
        raise RuntimeError(f"run stopped by {result.interrupted or 'a signal'}; not stored")
    last = result.history[-1]
    return {
        "cell": asdict(cell),
        "seed": seed,
        "top1": float(last["val_clip_top1"]),
        "train_top1": float(last["train_top1"]),
        "val_videos": int(last["val_clips"]),
        "seconds": round(time.time() - t0, 2),
        "cpu_seconds": round(time.process_time() - c0, 2),  # load-independent cost
        "threads": _threads(),
        "history": [
            {k: r[k] for k in ("epoch", "train_loss", "train_top1") if k in r}
            for r in result.history
        ],
        **cell_cost(cell, scale),
        "scale": scale.name,
        "recipe": scale.recipe(),
    }


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _worker(cell: Cell, seed: int, scale: Scale, work: str) -> dict[str, Any]:
    return run_seed(cell, seed, scale, Path(work))


# ------------------------------------------------------------------------------ the study


def cell_path(out: Path, scale: Scale, cell: Cell, seed: int) -> Path:
    return out / "cells" / scale.name / cell.key / f"seed{seed}.json"


def load_run(path: Path, scale: Scale) -> dict[str, Any] | None:
    """A stored seed-run when it is complete and was made with this recipe; else None."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("recipe") != scale.recipe() or "top1" not in rec:
        return None
    return rec


@dataclass
class StudyResult:
    """What `run_study` did: the rows of results.json and where the outputs are."""

    rows: list[dict[str, Any]]
    out: Path
    ran: int = 0
    skipped: int = 0
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 2))


def run_study(
    studies: list[str],
    out: str | Path,
    *,
    scale: Scale | str = "full",
    seeds: int = 3,
    workers: int | None = None,
    command: str = "",
    log: Log = print,
) -> StudyResult:
    """Run (or resume) the studies into `out`; write results.json, report.md and the plots."""
    t0 = time.time()
    studies = parse_studies(list(studies))
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
        scale = SCALES[scale]
    if int(seeds) < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    cores = os.cpu_count() or 1
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    out = ensure_dir(Path(out), "study output folder")
    entries = plan(studies, scale)
    cells = list(dict.fromkeys(e.cell for e in entries))
    runs: dict[tuple[Cell, int], dict[str, Any]] = {}
    todo: list[tuple[Cell, int]] = []
    for c in cells:
        for s in range(seeds):
            rec = load_run(cell_path(out, scale, c, s), scale)
            if rec is None:
                todo.append((c, s))
            else:
                runs[(c, s)] = rec
    skipped = len(runs)
    workers = max(1, min(workers, len(todo) or 1))
    threads = max(1, cores // workers)
    log(
        f"study {' '.join(studies)} ({scale.name}): {len(cells)} cells x {seeds} seeds; "
        f"{skipped} runs stored, {len(todo)} to run on {workers} worker(s) x {threads} thread(s)"
    )
    costs = {c: cell_cost(c, scale)["macs"] for c in cells}
    todo.sort(key=lambda cs: -costs[cs[0]] * (2 if cs[0].attention_type == "axial" else 1))
    errors = _run_all(todo, runs, out, scale, seeds, workers, threads, log)
    from .study_report import write_outputs

    rows = aggregate(entries, runs, scale, seeds)
    result = StudyResult(rows, out, ran=len(todo) - len(errors), skipped=skipped)
    result.seconds = time.time() - t0
    result.files = write_outputs(
        rows,
        out,
        studies=studies,
        scale=scale,
        seeds=seeds,
        command=command,
        workers=workers if todo else 0,  # 0: this invocation computed nothing (all stored)
        threads=threads,
        seconds=result.seconds,
        runs=list(runs.values()),
    )
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(todo)} runs failed; first: {errors[0]}")
    return result


def _run_all(
    todo: list[tuple[Cell, int]],
    runs: dict[tuple[Cell, int], dict[str, Any]],
    out: Path,
    scale: Scale,
    seeds: int,
    workers: int,
    threads: int,
    log: Log,
) -> list[str]:
    """Run the missing seed-runs, storing each as it finishes. Returns error lines."""
    errors: list[str] = []
    total, t0 = len(todo), time.time()
    work_root = out / "cells" / scale.name / ".work"

    def finished(cell: Cell, seed: int, rec: dict[str, Any] | None, err: str | None) -> None:
        done_count[0] += 1
        n = done_count[0]
        if err is not None:
            errors.append(f"{cell.key} seed {seed}: {err}")
            log(f"[{n}/{total}] {cell.key} seed {seed}: FAILED: {err}")
            return
        assert rec is not None
        atomic_write_text(cell_path(out, scale, cell, seed), json.dumps(rec, indent=1))
        runs[(cell, seed)] = rec
        line = f"[{n}/{total}] {cell.key} seed {seed}: top-1 {100 * rec['top1']:.1f}%"
        line += f" ({rec['seconds']:.0f}s; {(time.time() - t0) / 60:.1f} min so far)"
        scores = [runs[(cell, s)]["top1"] for s in range(seeds) if (cell, s) in runs]
        if len(scores) == seeds:
            line += f" | cell done: {_pm(scores)} over {seeds} seeds"
        log(line)

    done_count = [0]
    pending: dict[Future, tuple[Cell, int]] = {}
    if workers == 1:
        old = _threads()
        _init_worker(threads)
        try:
            for cell, seed in todo:
                work = work_root / f"{cell.key}-seed{seed}"
                try:
                    rec, err = run_seed(cell, seed, scale, work), None
                except Exception as e:  # noqa: BLE001 - reported, the other runs go on
                    rec, err = None, f"{type(e).__name__}: {e}"
                finished(cell, seed, rec, err)
        finally:
            _init_worker(old)
        return errors
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, ctx, initializer=_init_worker, initargs=(threads,)) as pool:
        try:
            for cell, seed in todo:
                work = str(work_root / f"{cell.key}-seed{seed}")
                pending[pool.submit(_worker, cell, seed, scale, work)] = (cell, seed)
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    cell, seed = pending.pop(fut)
                    exc = fut.exception()
                    if exc is None:
                        finished(cell, seed, fut.result(), None)
                    else:
                        finished(cell, seed, None, f"{type(exc).__name__}: {exc}")
        except BaseException:  # Ctrl-C: stop now; the runs in flight are not stored
            pool.shutdown(wait=False, cancel_futures=True)
            procs = getattr(pool, "_processes", None) or {}
            for proc in list(procs.values()):
                proc.terminate()
            raise
    return errors


def _pm(scores: list[float]) -> str:
    from .study_report import mean_std

    m, s = mean_std(scores)
    return f"{100 * m:.1f} ± {100 * s:.1f}%"


def aggregate(
    entries: list[Entry], runs: dict[tuple[Cell, int], dict[str, Any]], scale: Scale, seeds: int
) -> list[dict[str, Any]]:
    """One results.json row per study entry: mean and std over the stored seeds."""
    from ..data.study_tasks import class_names
    from .study_report import mean_std

    rows = []
    for e in entries:
        recs = [runs[(e.cell, s)] for s in range(seeds) if (e.cell, s) in runs]
        scores = [r["top1"] for r in recs]
        m, sd = mean_std(scores) if scores else (None, None)
        cost = recs[0] if recs else cell_cost(e.cell, scale)
        rows.append(
            {
                "study": e.study,
                **asdict(e.cell),
                "axis": e.axis,
                "top1_mean": m,
                "top1_std": sd,
                "seeds": len(scores),
                "top1_per_seed": scores,
                "chance": 1.0 / len(class_names(e.cell.dataset)),
                "params": int(cost["params"]),
                "macs": float(cost["macs"]),
                "train_seconds_mean": (
                    statistics.fmean(r["seconds"] for r in recs) if recs else None
                ),
                "scale": scale.name,
            }
        )
    return rows
