"""`timesformer eval` as a library call: a checkpoint, a run config's data, the outputs on disk.

`evaluate_checkpoint` loads the checkpoint (refusing a recipe whose clip geometry differs from
it unless forced), builds the evaluation dataset with the test protocol, runs `evaluate` (under
torchrun too), streams predictions.csv as videos finish and writes the summary at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..files import json_safe
from .evaluate import (
    PREDICTION_COLUMNS,
    EvalResult,
    aggregate_views,
    evaluate,
    prediction_row,
    write_eval_outputs,
)
from .records import RowWriter, recorded_warnings
from .runtime import autocast


def evaluate_checkpoint(
    cfg: Any,
    checkpoint: str | Path,
    *,
    split: str = "test",
    views: tuple[int, int] | None = None,
    aggregate: str | None = None,
    batch_size: int | None = None,
    output: str | Path | None = None,
    device: str | None = None,
    amp: str | None = None,
    progress: bool = True,
    source: str = "config",
    allow_pickle: bool = False,
    protocol: str | None = None,
    force_geometry: bool = False,
    log: Any = None,
    debug: bool = False,
) -> tuple[EvalResult, dict[str, Any]] | None:
    """`timesformer eval`: multi-view testing of `checkpoint` on the config's split, written out.

    The model comes from the checkpoint (any format), the dataset from `cfg.data` with the
    model's clip geometry (engine.build); `device` / `amp` default to train.device / train.amp.
    Runs under torchrun too (each rank its shard). Writes OUTPUT_DIR/eval (or `output`) and
    returns (result, JSON-ready summary with the files written) on rank 0, None on the others.
    `allow_pickle=True` reads torch files only full unpickling reads (runs code from the file).

    `protocol` (default `data.test_protocol`) places and crops the views; `aggregate` (default:
    the protocol's, summed logits for "official", mean softmax for "centred") combines them.
    A recipe whose data.num_frames / data.crop_size differ from the checkpoint's is refused
    (ValueError naming both) unless `force_geometry`, which resamples the embeddings and says
    so through `log`. Class names: data.labels, else the checkpoint's, else the data's folders.
    `debug`: each decode failure's traceback is kept, in `result.tracebacks` (--debug).
    """
    from ..files import ensure_dir, missing_dirs, remove_empty
    from ..models.timesformer import require_head
    from ..models.weights import from_pretrained
    from . import distributed as D
    from .build import build_dataset
    from .config import parse_views

    d = cfg.data
    list_file = d.test_list if split == "test" else d.val_list
    if list_file is None:
        other_split = "val" if split == "test" else "test"
        other = getattr(d, f"{other_split}_list")
        hint = f" (data.{other_split}_list is {other!r})" if other else ""
        raise ValueError(
            f"{source}: data.{split}_list is not set; give it as an override, e.g. "
            f"data.{split}_list=PATH" + hint
        )
    views = views or parse_views(d.test_views, "test_views")
    out_dir = Path(output) if output else Path(cfg.output_dir) / "eval"
    info = D.init_distributed(device or cfg.train.device)
    writer: RowWriter | None = None
    made = missing_dirs(out_dir)  # OUTPUT_DIR too, when it is new: removed again on failure
    try:
        autocast(info.device, amp or cfg.train.amp)  # a bad amp: before any file is touched
        if info.is_main:  # before any work: a read-only output folder fails in one line
            ensure_dir(out_dir, "eval output folder")
        say = log or (lambda s: None)
        with recorded_warnings() as load_warnings:
            model = from_pretrained(checkpoint, allow_pickle=allow_pickle)
            require_head(model, str(checkpoint))  # before data.labels is held against it
            model = _check_geometry(cfg, model, checkpoint, force_geometry, say, allow_pickle)
        model = model.to(info.device).eval()
        labels = _eval_labels(cfg, model)
        protocol = protocol or d.test_protocol
        aggregate = aggregate or ("sum_logits" if protocol == "official" else "mean_softmax")
        _warn_recipe_differs(cfg, model, say)
        dataset = build_dataset(
            cfg, split, mode=split, model_config=model.config, views=views, names=labels,
            protocol=protocol,
        )  # fmt: skip
        if debug and hasattr(dataset, "debug"):
            dataset.debug = True  # items carry their failure's traceback (workers too)
        on_video = None
        if info.is_main and not info.distributed:  # one process: rows as videos finish
            writer = RowWriter(out_dir / "predictions.csv", PREDICTION_COLUMNS)
            on_video = _csv_sink(writer, labels, aggregate)
        result = evaluate(
            model,
            dataset,
            batch_size=batch_size or cfg.train.batch_size,
            aggregate=aggregate,
            labels=labels,
            device=info.device,
            num_workers=d.num_workers,
            amp=amp or cfg.train.amp,
            progress=progress and cfg.train.progress and info.is_main,
            views=f"{views[0]}x{views[1]}",
            on_video=on_video,
        )
        if not info.is_main:
            return None
        if writer is not None:
            writer.close()
        if load_warnings:
            result.warnings.insert(0, {"path": str(checkpoint), "warnings": load_warnings})
        context = {"checkpoint": str(checkpoint), "split": split, "list": str(list_file),
                   "protocol": protocol}  # fmt: skip
        files = write_eval_outputs(result, out_dir, extra=context)
        summary = {**result.summary(), **context, "files": files}
        return result, json_safe(summary)
    except BaseException:
        if info.is_main:
            remove_empty(made)  # a failed eval leaves no empty folder behind
        raise
    finally:
        if writer is not None:
            writer.close()
        D.cleanup()


def _csv_sink(writer: RowWriter, names: Sequence[str], rule: str) -> Callable[[dict], None]:
    """An `on_video` callback appending each finished video's predictions.csv row."""

    def sink(v: dict[str, Any]) -> None:
        scores = v["scores"]  # (n, C) logits of the decoded views
        n = int(scores.shape[0])
        row = None
        if n:
            agg, _ = aggregate_views(torch.zeros(n, dtype=torch.long), torch.arange(n), scores,
                                     1, rule=rule)  # fmt: skip
            row = agg[0]  # (C,)
        writer.write(prediction_row(v["path"], int(v["label"]), names, row, n, v["warnings"]))

    return sink


def _check_geometry(
    cfg: Any, model: nn.Module, checkpoint: Any, force: bool, say: Any, allow_pickle: bool = False
) -> nn.Module:
    """Refuse a recipe whose frames / crop differ from the checkpoint's (or, forced, rebuild
    the model for the recipe's geometry with resampled embeddings, saying so)."""
    from ..models.weights import from_pretrained

    mc = model.config
    size = mc.img_size if isinstance(mc.img_size, int) else min(mc.img_size)
    d = cfg.data
    diff = []
    if d.num_frames is not None and d.num_frames != mc.num_frames:
        diff.append(f"data.num_frames={d.num_frames} vs the checkpoint's {mc.num_frames}")
    if d.crop_size is not None and d.crop_size != size:
        diff.append(f"data.crop_size={d.crop_size} vs the checkpoint's {size}")
    if not diff:
        return model
    what = "; ".join(diff)
    if not force:
        raise ValueError(
            f"{checkpoint}: the recipe's clip geometry differs from the checkpoint's ({what}); "
            "leave data.num_frames / data.crop_size unset to use the checkpoint's, or pass "
            "--force-geometry to resample the embeddings to the recipe's"
        )
    say(f"WARNING: --force-geometry: {what}; the embeddings are resampled, the accuracy may drop")
    over = {}
    if d.num_frames is not None:
        over["num_frames"] = d.num_frames
    if d.crop_size is not None:
        over["img_size"] = d.crop_size
    return from_pretrained(checkpoint, allow_pickle=allow_pickle, **over)


def _eval_labels(cfg: Any, model: nn.Module) -> list[str]:
    """data.labels, else the checkpoint's names, else the folder names of the data."""
    from .build import label_names
    from .predict import resolve_labels

    if cfg.data.labels:
        return resolve_labels(model, cfg.data.labels)
    stored = getattr(model.config, "labels", None)
    if not stored:
        names = label_names(cfg)
        if names and len(names) == model.config.num_classes:
            return list(names)
    return resolve_labels(model)


def _warn_recipe_differs(cfg: Any, model: nn.Module, say: Any) -> None:
    """One line when the recipe cuts clips differently from what the checkpoint recorded."""
    pre = getattr(model, "preprocess", None)
    if pre is None:
        return
    d = cfg.data
    recorded = {k: v for k, v in pre.sources.items() if v != "default"}
    diff = []
    for key, mine in (("sampling_rate", d.sampling_rate), ("sampler", d.sampler),
                      ("mean", tuple(d.mean)), ("std", tuple(d.std)),
                      ("channel_order", d.channel_order)):  # fmt: skip
        theirs = getattr(pre, key)
        if key in recorded and mine != theirs:
            diff.append(f"data.{key}={mine} vs the checkpoint's {theirs}")
    if diff:
        say("WARNING: the recipe differs from the checkpoint's preprocessing: " + "; ".join(diff))
