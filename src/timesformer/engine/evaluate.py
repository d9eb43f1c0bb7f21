"""Multi-view evaluation: K temporal x S spatial views per video, aggregated into video scores.

The pieces are separate so each can be tested on known numbers:

- `aggregate_views` (pure): rows of (video index, view id, scores) -> one score row per video,
  by mean softmax (default) or summed logits (the official TimeSformer rule).
- `compute_metrics` (pure): top-1, top-5, mean per-class accuracy and the confusion matrix.
- `evaluate`: runs a model over a dataset of views (single process, or every rank of a DDP job
  with the scores gathered), then aggregates and scores; `write_eval_outputs` writes the CSVs,
  the confusion-matrix PNG and the JSON summary.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..files import json_safe
from .distributed import pick_device
from .records import RowWriter, VideoStream, attribute_warnings, recorded_warnings
from .runtime import autocast

AGGREGATIONS = ("mean_softmax", "sum_logits")


# ---------------------------------------------------------------------------- pure arithmetic
def aggregate_views(
    video_index: Tensor | Sequence[int],
    view: Tensor | Sequence[int],
    scores: Tensor,
    num_videos: int,
    rule: str = "mean_softmax",
) -> tuple[Tensor, Tensor]:
    """Combine per-view scores into per-video scores.

    Args:
        video_index: (M,) index of the video each row belongs to, in [0, num_videos).
        view: (M,) view id of each row within its video (temporal * S + spatial). A repeated
            (video, view) pair is counted once (distributed samplers pad with repeats).
        scores: (M, C) logits of each view.
        num_videos: V, the number of videos in the dataset.
        rule: "mean_softmax" (average of per-view probabilities) or "sum_logits" (sum of the
            raw logits over views, as the official code does).

    Returns:
        (video_scores (V, C) float64, views_per_video (V,) int64). Videos with no views get a
        row of zeros and a count of 0.
    """
    if rule not in AGGREGATIONS:
        raise ValueError(f"aggregate={rule!r} is not one of {', '.join(AGGREGATIONS)}")
    vid = torch.as_tensor(video_index, dtype=torch.long).reshape(-1)  # (M,)
    vw = torch.as_tensor(view, dtype=torch.long).reshape(-1)  # (M,)
    scores = torch.as_tensor(scores)
    if scores.ndim != 2 or scores.shape[0] != vid.numel() or vw.numel() != vid.numel():
        raise ValueError(
            f"expected video_index (M,), view (M,) and scores (M, C); got {tuple(vid.shape)}, "
            f"{tuple(vw.shape)}, {tuple(scores.shape)}"
        )
    if vid.numel() and (int(vid.min()) < 0 or int(vid.max()) >= num_videos):
        raise ValueError(f"video index out of range [0, {num_videos}): {vid.min()}..{vid.max()}")
    scores = scores.double()  # (M, C)
    if vid.numel():
        # drop repeated (video, view) pairs, keeping the first occurrence
        key = vid * (int(vw.max()) + 1) + vw  # (M,)
        _, inverse = torch.unique(key, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), vid.numel(), dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(vid.numel()), reduce="amin")
        keep = first.sort().values  # (U,)
        vid, scores = vid[keep], scores[keep]
    values = scores.softmax(dim=1) if rule == "mean_softmax" else scores  # (U, C)
    out = torch.zeros(num_videos, scores.shape[1], dtype=torch.float64)
    out.index_add_(0, vid, values)  # (V, C)
    counts = torch.bincount(vid, minlength=num_videos)  # (V,)
    if rule == "mean_softmax":
        out = out / counts.clamp(min=1).unsqueeze(1)
    return out, counts


def confusion_matrix(preds: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    preds = torch.as_tensor(preds, dtype=torch.long).reshape(-1)
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    flat = targets * num_classes + preds  # (N,)
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def compute_metrics(
    video_scores: Tensor, targets: Tensor, topk: Iterable[int] = (1, 5)
) -> dict[str, Any]:
    """Accuracy metrics of per-video scores (V, C) against integer targets (V,).

    Returns a dict with `top{k}` for each k (a fraction; k capped at C), `mean_class_accuracy`
    (the mean over classes that occur in `targets` of their recall), `per_class_accuracy` (C,
    NaN for classes absent from `targets`), `confusion` (C, C) and `num_videos`.
    """
    video_scores = torch.as_tensor(video_scores)
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    V, C = video_scores.shape
    if targets.numel() != V:
        raise ValueError(f"{targets.numel()} targets for {V} rows of scores")
    if V and (int(targets.min()) < 0 or int(targets.max()) >= C):
        raise ValueError(f"target out of range [0, {C}): {targets.min()}..{targets.max()}")
    out: dict[str, Any] = {"num_videos": V}
    k_max = min(max(topk), C) if V else 1
    ranked = video_scores.topk(k_max, dim=1).indices if V else torch.zeros(0, 1)  # (V, k)
    hits = ranked == targets.unsqueeze(1)  # (V, k)
    for k in topk:
        out[f"top{k}"] = float(hits[:, : min(k, C)].any(1).double().mean()) if V else math.nan
    preds = ranked[:, 0] if V else torch.zeros(0, dtype=torch.long)
    conf = confusion_matrix(preds, targets, C)
    support = conf.sum(1)  # (C,)
    per_class = torch.where(
        support > 0, conf.diag().double() / support.clamp(min=1), torch.tensor(math.nan)
    )
    present = support > 0
    out["mean_class_accuracy"] = float(per_class[present].mean()) if present.any() else math.nan
    out["per_class_accuracy"] = per_class
    out["confusion"] = conf
    return out


def class_names(num_classes: int, labels: Sequence[str] | None = None) -> list[str]:
    """`labels` when given (checked against num_classes), else "class_<i>"."""
    if labels is None:
        return [f"class_{i}" for i in range(num_classes)]
    labels = list(labels)
    if len(labels) != num_classes:
        raise ValueError(f"{len(labels)} label names for a {num_classes}-way classifier")
    return labels


# ---------------------------------------------------------------------------- result and files
@dataclass
class EvalResult:
    """Everything `evaluate` measured. Scores are aggregated per video (one row per video)."""

    metrics: dict[str, Any]
    video_scores: Tensor  # (V, C) mean probabilities or summed logits
    targets: Tensor  # (V,)
    views_per_video: Tensor  # (V,)
    paths: list[str]
    labels: list[str]
    aggregate: str
    views: str
    failed: list[dict[str, Any]] = field(default_factory=list)  # {"path", "error", "views_ok"}
    evaluated_mask: Tensor | None = None  # (V,) True where at least one view decoded
    warnings: list[dict[str, Any]] = field(default_factory=list)  # {"path", "warnings"}
    # path -> the traceback of its decode failure (items with `traceback`: --debug; not in
    # the summary or the files)
    tracebacks: dict[str, str] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (the `--json` output of `timesformer eval`)."""
        m = self.metrics
        return {
            "num_videos": len(self.paths),
            "num_evaluated": int(m["num_videos"]),
            "num_failed": len(self.failed),
            "num_classes": int(m["confusion"].shape[0]),
            "top1": m["top1"],
            "top5": m["top5"],
            "mean_class_accuracy": m["mean_class_accuracy"],
            "views": self.views,
            "aggregate": self.aggregate,
            "failed": self.failed,
            "warnings": self.warnings,
        }


@torch.no_grad()
def run_views(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    batch_size: int = 8,
    *,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    amp: str = "off",
    progress: bool = False,
    on_video: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Logits of every view this process is given (its DDP shard when a process group is up).

    `on_video` (one process only) is called with {"index", "path", "label", "scores" (n, C)
    logits of its decoded views, "error", "warnings"} as soon as a video's views are done, so
    results can be written as they go. Warnings raised while a batch is read (in this process:
    with num_workers=0) are recorded against the videos of that batch.

    `dataset` items are dicts with `video` (3, T, S, S), `label`, `index` (video), `view`,
    `path` and `error` ("" when decoded; views that failed are not run through the model).
    Items may carry `traceback` (the dataset's debug mode): the first of each failed video is
    kept. Returns {"index", "view", "scores" (M, C) float32 on the CPU, "videos" {index: (path,
    label)}, "failed" {index: (path, error)}, "warnings", "tracebacks" {index: text}} for the
    views of this process.
    """
    from torch.utils.data import DataLoader

    dev = (
        pick_device(device, what="device")
        if device is not None
        else next(model.parameters()).device
    )
    sampler = None
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, shuffle=False, drop_last=False)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=dev.type == "cuda",
        persistent_workers=False,
    )
    was_training = model.training
    model.eval()
    idx_parts: list[Tensor] = []
    view_parts: list[Tensor] = []
    score_parts: list[Tensor] = []
    videos: dict[int, tuple[str, int]] = {}
    failed: dict[int, tuple[str, str]] = {}
    warned: dict[int, list[str]] = {}
    tracebacks: dict[int, str] = {}
    stream = VideoStream(on_video if not distributed else None, failed, warned)
    it: Any = loader
    if progress:
        from tqdm import tqdm

        it = tqdm(loader, desc="eval", unit="batch", dynamic_ncols=True)
    it = iter(it)
    try:
        while True:
            with recorded_warnings() as caught:
                batch = next(it, None)
            if batch is None:
                break
            index = torch.as_tensor(batch["index"]).long()  # (B,)
            view = torch.as_tensor(batch["view"]).long()  # (B,)
            label = torch.as_tensor(batch["label"]).long()  # (B,)
            paths = list(batch["path"])
            errors = list(batch.get("error", [""] * len(paths)))
            tbs = list(batch.get("traceback", [""] * len(paths)))
            for i, v in enumerate(index.tolist()):
                videos.setdefault(v, (paths[i], int(label[i])))
                if errors[i]:
                    failed.setdefault(v, (paths[i], errors[i]))
                    if tbs[i]:
                        tracebacks.setdefault(v, str(tbs[i]))
            attribute_warnings(caught, index.tolist(), paths, warned)
            ok = torch.tensor([not e for e in errors], dtype=torch.bool)  # (B,)
            logits = torch.zeros(0)
            if ok.any():
                x = batch["video"][ok].to(dev, non_blocking=True)  # (b, 3, T, S, S)
                with autocast(dev, amp):
                    logits = model(x).float().cpu()  # (b, C)
                idx_parts.append(index[ok])
                view_parts.append(view[ok])
                score_parts.append(logits)
            stream.add(index, ok, logits, paths, label)
        stream.finish()
    finally:
        model.train(was_training)
    C = int(getattr(getattr(model, "config", None), "num_classes", 0) or 0)
    return {
        "index": torch.cat(idx_parts) if idx_parts else torch.zeros(0, dtype=torch.long),
        "view": torch.cat(view_parts) if view_parts else torch.zeros(0, dtype=torch.long),
        "scores": torch.cat(score_parts) if score_parts else torch.zeros(0, C),
        "videos": videos,
        "failed": failed,
        "warnings": warned,
        "tracebacks": tracebacks,
    }


def _gather(part: dict[str, Any]) -> dict[str, Any]:
    """Merge the `run_views` results of every DDP rank (identity without a process group)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return part
    parts: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, part)
    out: dict[str, Any] = {"videos": {}, "failed": {}, "warnings": {}, "tracebacks": {}}
    for key in ("index", "view", "scores"):
        out[key] = torch.cat([p[key] for p in parts])
    for p in parts:
        out["videos"].update(p["videos"])
        for k, ws in p.get("warnings", {}).items():
            out["warnings"].setdefault(k, []).extend(w for w in ws if w not in out["warnings"][k])
        for k, v in p["failed"].items():
            out["failed"].setdefault(k, v)
        for k, tb in p.get("tracebacks", {}).items():
            out["tracebacks"].setdefault(k, tb)
    return out


def evaluate(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    batch_size: int = 8,
    *,
    aggregate: str = "mean_softmax",
    labels: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    amp: str = "off",
    progress: bool = False,
    views: str | None = None,
    on_video: Callable[[dict[str, Any]], None] | None = None,
) -> EvalResult:
    """Multi-view testing of `model` on `dataset` (a `VideoDataset` in "val"/"test" mode).

    Every view is classified, view scores are aggregated per video by `aggregate`
    ("mean_softmax" or "sum_logits"), and top-1, top-5 and mean per-class accuracy are computed
    over the videos that decoded. A video whose views failed to decode is listed in
    `result.failed` with the reason and counted, never silently dropped; a video with no
    decoded view is left out of the metrics (`num_evaluated` says how many were scored).

    Under an initialised torch.distributed process group each rank runs its shard of the views
    and the scores are gathered, so every rank returns the same result. `on_video`: see
    `run_views` (results as they go).
    """
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregate={aggregate!r} is not one of {', '.join(AGGREGATIONS)}")
    from ..models.timesformer import require_head

    require_head(model)
    cfg = getattr(model, "config", None)
    num_classes = int(getattr(cfg, "num_classes", 0) or 0)
    if num_classes < 1:
        raise ValueError("evaluate needs a model with a classification head (num_classes >= 1)")
    names = class_names(num_classes, labels)
    part = run_views(
        model,
        dataset,
        batch_size,
        device=device,
        num_workers=num_workers,
        amp=amp,
        progress=progress,
        on_video=on_video,
    )
    allp = _gather(part)
    num_videos = int(getattr(dataset, "num_videos", 0) or 0)
    if allp["videos"]:
        num_videos = max(num_videos, max(allp["videos"]) + 1)
    scores, counts = aggregate_views(
        allp["index"], allp["view"], allp["scores"], num_videos, rule=aggregate
    )
    paths = [allp["videos"].get(i, ("", -1))[0] for i in range(num_videos)]
    targets = torch.tensor([allp["videos"].get(i, ("", -1))[1] for i in range(num_videos)])
    bad = [t for t in targets.tolist() if t >= num_classes]
    if bad:
        raise ValueError(f"label {bad[0]} is out of range for a {num_classes}-way model")
    evaluated = counts > 0  # (V,)
    metrics = compute_metrics(scores[evaluated], targets[evaluated])
    failed = [
        {"path": path, "error": err, "views_ok": int(counts[i])}
        for i, (path, err) in sorted(allp["failed"].items())
    ]
    if views is None:
        k = getattr(dataset, "test_views", None)
        if k is None and hasattr(dataset, "num_clips") and hasattr(dataset, "num_crops"):
            k = (dataset.num_clips, dataset.num_crops)
        views = f"{k[0]}x{k[1]}" if isinstance(k, (tuple, list)) and len(k) == 2 else "?"
    return EvalResult(
        metrics=metrics,
        video_scores=scores,
        targets=targets,
        views_per_video=counts,
        paths=paths,
        labels=names,
        aggregate=aggregate,
        views=views,
        failed=failed,
        evaluated_mask=evaluated,
        warnings=[
            {"path": paths[i] if i < len(paths) else "", "warnings": ws}
            for i, ws in sorted(allp.get("warnings", {}).items())
        ],
        tracebacks={
            allp["failed"][i][0]: tb
            for i, tb in allp.get("tracebacks", {}).items()
            if i in allp["failed"]
        },
    )


EVAL_FILES = ("summary.json", "predictions.csv", "confusion.csv", "confusion.png", "failed.txt")


def write_eval_outputs(
    result: EvalResult, out_dir: str | Path, extra: dict[str, Any] | None = None
) -> dict[str, str]:
    """Write summary.json, predictions.csv, confusion.csv, confusion.png, failed.txt.

    `extra` (e.g. checkpoint, split) is merged into summary.json. Returns {name: path} of the
    files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    names = result.labels

    mask = result.evaluated_mask
    if mask is None:
        mask = result.views_per_video > 0
    pred_path = out / "predictions.csv"
    warned = {d["path"]: d["warnings"] for d in result.warnings}
    with RowWriter(pred_path, PREDICTION_COLUMNS) as w:
        for i, path in enumerate(result.paths):
            t = int(result.targets[i])
            row = result.video_scores[i] if bool(mask[i]) else None
            w.write(prediction_row(path, t, names, row, int(result.views_per_video[i]),
                                   warned.get(path, [])))  # fmt: skip
    files["predictions"] = str(pred_path)

    conf = result.metrics["confusion"]
    conf_path = out / "confusion.csv"
    with conf_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *names])
        for i, name in enumerate(names):
            w.writerow([name, *conf[i].tolist()])
    files["confusion_csv"] = str(conf_path)

    png = out / "confusion.png"
    plot_confusion(conf, names, png, title=f"confusion ({result.views} views, {result.aggregate})")
    files["confusion_png"] = str(png)

    failed_path = out / "failed.txt"
    failed_path.write_text("".join(f"{d['path']}\t{d['error']}\n" for d in result.failed))
    files["failed"] = str(failed_path)

    summary = result.summary()
    summary.update(extra or {})
    summary["files"] = dict(files, summary=str(out / "summary.json"))
    summary["per_class_accuracy"] = {
        n: (None if math.isnan(a) else a)
        for n, a in zip(names, result.metrics["per_class_accuracy"].tolist())
    }
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    files["summary"] = str(summary_path)
    return files


PREDICTION_COLUMNS = ("path", "target", "target_name", "pred", "pred_name", "score", "correct",
                      "views", "top5", "warnings")  # fmt: skip


def prediction_row(
    path: str,
    target: int,
    names: Sequence[str],
    scores: Tensor | None,
    views: int,
    warnings: Sequence[str] = (),
) -> list[Any]:
    """One predictions.csv row: `scores` (C,) the video's aggregated scores, None if no view
    decoded."""
    name = names[target] if 0 <= target < len(names) else ""
    note = " | ".join(warnings)
    if scores is None or views == 0:
        return [path, target, name, "", "", "", "", 0, "", note]
    top = scores.topk(min(5, scores.numel())).indices.tolist()
    return [path, target, name, top[0], names[top[0]], f"{float(scores[top[0]]):.6g}",
            int(top[0] == target), views, "|".join(names[j] for j in top), note]  # fmt: skip


def plot_confusion(conf: Tensor, names: Sequence[str], path: str | Path, title: str = "") -> None:
    """Row-normalised confusion matrix as a PNG (class names on the axes up to 40 classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = torch.as_tensor(conf).double()
    C = conf.shape[0]
    norm = conf / conf.sum(1, keepdim=True).clamp(min=1)  # (C, C) recall per row
    side = min(max(4.0, 0.35 * C + 2.0), 20.0)
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow(norm.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if C <= 40:
        ax.set_xticks(range(C), list(names), rotation=90, fontsize=8)
        ax.set_yticks(range(C), list(names), fontsize=8)
    if C <= 12:
        for i in range(C):
            for j in range(C):
                if conf[i, j]:
                    color = "white" if norm[i, j] > 0.5 else "black"
                    ax.text(j, i, int(conf[i, j]), ha="center", va="center", color=color)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
