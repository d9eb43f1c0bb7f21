"""The demo: the paper's main finding in miniature, end to end, on a CPU (`timesformer demo`).

1. renders the synthetic `motion` dataset (real mp4 files, cached) where the class is only in
   how an object moves, so that no single frame tells it;
2. trains a small TimeSformer with divided space-time attention and its space-only twin (same
   recipe, `configs/demo.yaml`), side by side, one CPU core each;
3. evaluates both on the held-out test split with multi-view testing (video-level top-1);
4. predicts one test video with the divided model;
5. prints a table. Everything lands in `runs/demo/` (override with `--out`).

Divided attention can relate frames and learns the motion; space-only attention sees each frame
alone and averages them, so the order of frames is invisible to it and it stays at chance.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

# The demo's dataset: approach vs recede (the object grows or shrinks, by 15-20% of its size
# per frame, staying inside the frame). Each training clip is a random 8-frame window of a
# 10-frame video; testing averages 3 windows. The set of frames is the same for both classes
# (a reversed "approach" is a "recede"): only their order tells them apart.
CLASSES = ("approach", "recede")
RENDER: dict[str, Any] = {
    "size": 32,
    "num_frames": 10,
    "object_size": (0.25, 0.4),
    "speed": (0.15, 0.2),
    "wrap": False,
    "num_train": 1000,
    "num_val": 200,
    "num_test": 200,
    "seed": 0,
}
QUICK_RENDER: dict[str, Any] = {**RENDER, "num_train": 48, "num_val": 16, "num_test": 16}
QUICK_OVERRIDES = ["train.epochs=2", "train.batch_size=8", "train.global_batch_size=8"]
VARIANTS = (("divided", "divided_space_time"), ("space_only", "space_only"))


# ------------------------------------------------------------------------------ datasets


class InMemoryClips(Dataset):
    """Training clips cut from videos that were decoded once and kept in memory.

    The demo's videos are tiny (10 x 32 x 32), so decoding each of them every epoch would cost
    more than the model. Items are built as `VideoDataset` builds them, with the data package's
    clip sampler and train transform and a generator seeded by (seed, epoch, index).
    """

    def __init__(self, source: Any) -> None:
        from ..data import VideoReader

        self.source = source  # a VideoDataset in train mode
        self.label_names = source.label_names
        self.videos: list[torch.Tensor] = []
        self.fps: list[float] = []
        for path, _ in source.samples:
            with VideoReader(path) as r:
                self.videos.append(r.get_frames(list(range(r.num_frames))))  # (n, H, W, 3)
                self.fps.append(float(r.fps))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from ..data import segment_indices, train_clip_indices

        s = self.source
        seed = (s.seed * 1_000_003 + self.epoch * 10_007 + i) % (2**63)
        g = torch.Generator().manual_seed(seed)
        frames = self.videos[i]
        if s.sampler == "rate":
            idx = train_clip_indices(
                len(frames),
                s.num_frames,
                s.sampling_rate,
                self.fps[i],
                target_fps=s.target_fps,
                generator=g,
            )
        else:
            idx = segment_indices(len(frames), s.num_frames, train=True, generator=g)
        video = s.train_transform(frames[idx], g)  # (3, T, S, S)
        return {"video": video, "label": s.samples[i][1], "failures": 0}


class CachedItems(Dataset):
    """Every item of a deterministic dataset (validation: one centre clip per video),
    computed once."""

    def __init__(self, source: Dataset) -> None:
        self.items = [source[i] for i in range(len(source))]  # type: ignore[arg-type]
        self.label_names = getattr(source, "label_names", None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


# ------------------------------------------------------------------------------ steps


@dataclass
class VariantResult:
    name: str
    attention_type: str
    params: int
    train_seconds: float
    best_val_clip_top1: float | None
    test_top1: float | None = None
    test_views: str = ""
    checkpoint: str = ""


def _configs(out: Path, overrides: list[str], quick: bool) -> dict:
    """The two variants' run configs on the data `render_dataset` writes to out/data (its list
    files and labels.txt), from the bundled demo recipe: built before rendering, so that a bad
    override fails at once."""
    from .config import load_config, recipes_dir

    data = out / "data"
    base = [
        *(f"data.{split}_list={data / f'{split}.csv'}" for split in ("train", "val", "test")),
        f"data.root={data}",
        f"data.labels={data / 'labels.txt'}",
        f"model.num_classes={len(CLASSES)}",
    ]
    if quick:
        base += QUICK_OVERRIDES
    cfgs = {}
    for name, attention in VARIANTS:
        cfgs[name] = load_config(
            recipes_dir() / "demo.yaml",  # the bundled file, whatever the current folder holds
            [
                *base,
                *overrides,
                f"model.attention_type={attention}",
                f"output_dir={out / name}",
            ],
        )
    return cfgs


def _train_variant(name: str, cfg_dict: dict[str, Any], threads: int, quiet: bool) -> dict:
    """Train one variant (run in a child process or in-process). Returns VariantResult as dict."""
    from .build import build_dataset
    from .config import RunConfig
    from .train import train

    torch.set_num_threads(threads)
    cfg = RunConfig.from_dict(cfg_dict)
    prefix = f"[{name}] "

    def log(s: str) -> None:
        if not quiet:
            print(prefix + s, flush=True)

    t0 = time.time()
    train_ds = InMemoryClips(build_dataset(cfg, "train"))
    val_ds = CachedItems(build_dataset(cfg, "val"))
    log(f"decoded {len(train_ds)} training and {len(val_ds)} validation videos "
        f"in {time.time() - t0:.1f}s")  # fmt: skip
    result = train(cfg, resume=False, train_dataset=train_ds, val_dataset=val_ds, log=log)
    ckpt = result.best_checkpoint or result.last_checkpoint
    from .checkpoint import read_training_checkpoint

    params = sum(v.numel() for v in read_training_checkpoint(ckpt)["model"].values())
    return VariantResult(
        name=name,
        attention_type=cfg.model.attention_type or "",
        params=params,
        train_seconds=result.seconds,
        best_val_clip_top1=result.best_metric,
        checkpoint=str(ckpt),
    ).__dict__


def _child(name: str, cfg_dict: dict[str, Any], queue: Any, quiet: bool) -> None:
    try:
        queue.put((name, _train_variant(name, cfg_dict, 1, quiet), None))
    except BaseException as e:  # noqa: BLE001 - report to the parent, which re-raises
        queue.put((name, None, f"{type(e).__name__}: {e}"))


def _train_all(cfgs: dict, sequential: bool, quiet: bool) -> dict[str, dict]:
    """Train the variants, side by side in two processes (one core each) unless sequential."""
    if sequential or (os.cpu_count() or 1) < 2:
        threads = max(1, min(2, os.cpu_count() or 1))
        return {n: _train_variant(n, c.to_dict(), threads, quiet) for n, c in cfgs.items()}
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(n, c.to_dict(), queue, quiet), daemon=True)
        for n, c in cfgs.items()
    ]
    for p in procs:
        p.start()
    results: dict[str, dict] = {}
    errors = []
    try:
        for _ in procs:
            name, res, err = queue.get()
            if err:
                errors.append(f"{name}: {err}")
            else:
                results[name] = res
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    if errors:
        raise RuntimeError("demo training failed: " + "; ".join(errors))
    return {n: results[n] for n in cfgs}


def _evaluate(cfg: Any, res: dict, out: Path) -> None:
    """Video-level multi-view testing of the variant's best checkpoint on the test split."""
    from ..models.weights import from_pretrained
    from .build import build_dataset
    from .evaluate import evaluate, write_eval_outputs

    model = from_pretrained(res["checkpoint"])
    ds = build_dataset(cfg, "test", mode="test")
    result = evaluate(model, ds, batch_size=32, views=cfg.data.test_views)
    write_eval_outputs(result, out / res["name"] / "eval", extra={"checkpoint": res["checkpoint"]})
    res["test_top1"] = float(result.metrics["top1"])
    res["test_views"] = cfg.data.test_views


def _predict_one(res: dict, video: str, views: str) -> dict[str, Any]:
    from .predict import load_for_inference, predict

    model, settings = load_for_inference(res["checkpoint"])
    p = predict(model, video, topk=2, views=views, settings=settings)
    return {"video": video, "top": [(name, float(prob)) for name, prob in p.topk]}


def run_demo(
    out: str | Path,
    *,
    quick: bool = False,
    sequential: bool = False,
    overrides: list[str] | None = None,
    quiet: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Render, train both variants, evaluate them, predict one video; write results.json and
    results.md to `out` and return the summary (classes, chance, variants, prediction)."""
    from ..data.synthetic import FolderInUseError, render_dataset

    t_start = time.time()
    out = Path(out)
    cfgs = _configs(out, list(overrides or []), quick)  # a bad override: before any work
    out.mkdir(parents=True, exist_ok=True)
    render = QUICK_RENDER if quick else RENDER
    t0 = time.time()
    try:  # out/data is the demo's: a render of the other size (--quick or not) is replaced
        info = render_dataset(
            out / "data", "motion", classes=list(CLASSES), replace_synthetic=True, **render
        )
    except FolderInUseError as e:
        raise ValueError(f"{e.reason}; choose another --out") from None
    how = "cached" if info.get("cached") else f"rendered in {time.time() - t0:.1f}s"
    say(
        f"dataset: {info['counts']} clips of {render['num_frames']} frames, "
        f"{render['size']}x{render['size']} px, classes {', '.join(info['labels'])} ({how}) "
        f"-> {info['out_dir']}"
    )
    c = cfgs["divided"]
    say(
        f"training {c.model.name} (depth {c.model.depth}, dim {c.model.embed_dim}, "
        f"patch {c.model.patch_size}, {c.model.num_frames} frames) with divided and space-only "
        f"attention, {c.train.epochs} epochs each"
        + ("" if sequential else ", side by side (one core each)")
    )
    results = _train_all(cfgs, sequential, quiet)
    for name, res in results.items():
        _evaluate(cfgs[name], res, out)
    # one prediction: the first test video, by the divided model
    test_list = Path(info["splits"]["test"])
    first, label = test_list.read_text().splitlines()[0].rsplit(maxsplit=1)
    video = str(Path(info["out_dir"]) / first)
    pred = _predict_one(results["divided"], video, c.data.test_views)
    pred["true"] = info["labels"][int(label)]
    summary = {
        "classes": list(info["labels"]),
        "chance": 1.0 / len(info["labels"]),
        "variants": results,
        "prediction": pred,
        "seconds": round(time.time() - t_start, 1),
        "out": str(out),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    (out / "results.md").write_text(results_table(summary) + "\n")
    return summary


def results_table(s: dict[str, Any]) -> str:
    """The Markdown table of the variants (and chance)."""
    rows = [
        "| model | attention | params | train time | val top-1 (clip) | test top-1 (video, "
        f"{next(iter(s['variants'].values()))['test_views']} views) |",
        "|---|---|---|---|---|---|",
    ]
    for r in s["variants"].values():
        val = r["best_val_clip_top1"]
        rows.append(
            f"| {r['name']} | {r['attention_type']} | {r['params'] / 1e3:.0f}k | "
            f"{r['train_seconds']:.0f} s | {'-' if val is None else f'{100 * val:.1f}%'} | "
            f"{100 * r['test_top1']:.1f}% |"
        )
    rows.append(f"| chance | | | | {100 * s['chance']:.1f}% | {100 * s['chance']:.1f}% |")
    return "\n".join(rows)
