"""`timesformer eval --config FILE --checkpoint P [key=value ...]`: multi-view testing.

Heavy imports (torch, the engine, the data code) happen in `run`, so `timesformer --help`
stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..files import printable_path
from .common import (
    add_model_arguments,
    add_protocol_argument,
    add_views_argument,
    positive_int,
    print_file_traceback,
    refuse_input_as_output,
)

EPILOG = """\
examples:
  timesformer eval --config runs/demo/config.yaml --checkpoint runs/demo/best.pt
  timesformer eval --config k400 --checkpoint TimeSformer_divST_8x32_224_K400.pyth \\
      data.root=/data/k400 data.test_list=/data/k400/val.csv data.test_views=1x3
  torchrun --nproc_per_node 4 -m timesformer.cli eval --config k400 --checkpoint P

Videos come from data.test_list (or data.val_list with --split val); each is cut into
data.test_views = K temporal clips x S spatial crops, and the view scores are aggregated per
video (--aggregate; default: the protocol's). data.test_protocol / --protocol: official
(the official clip placement and crops, summed logits) or centred (docs/inference.md). A
recipe whose data.num_frames / data.crop_size differ from the checkpoint's is refused unless
--force-geometry. Written to OUTPUT_DIR/eval/: summary.json, predictions.csv,
confusion.csv, confusion.png, failed.txt (videos that could not be decoded: counted and listed,
never dropped silently). Exit code 0 when videos were scored, even if some failed to decode (each
is named on stderr and counted in summary.json's num_failed: a large dataset usually has a few),
1 when none could be scored, 2 for bad arguments.
"""


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help="YAML run config (a path, a run's config.yaml, or a bundled recipe name)",
    )
    add_model_arguments(p, from_config=True, json_help="print the summary as JSON on stdout")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument(
        "--split", choices=("test", "val"), default="test", help="data.test_list or data.val_list"
    )
    p.add_argument(
        "--aggregate",
        choices=("mean_softmax", "sum_logits"),
        default=None,
        help="combine views by mean probability or summed logits; default: the protocol's "
        "(official: sum_logits, centred: mean_softmax)",
    )
    add_protocol_argument(p)
    p.add_argument(
        "--force-geometry",
        action="store_true",
        help="evaluate although data.num_frames / data.crop_size differ from the checkpoint's "
        "(the embeddings are resampled; accuracy may drop)",
    )
    add_views_argument(p, "overrides data.test_views")
    p.add_argument(
        "--batch-size", type=positive_int, default=None, help="default: train.batch_size"
    )
    p.add_argument("--output", default=None, metavar="DIR", help="default: OUTPUT_DIR/eval")
    return p


def run(args: argparse.Namespace) -> int:
    # the data layer logs an unreadable video once per process (workers too); eval reports
    # each bad video itself, once, below and in failed.txt (the level is restored after: a
    # program calling main() keeps its own logging)
    data_log = logging.getLogger("timesformer.data.datasets")
    level = data_log.level
    data_log.setLevel(logging.ERROR)
    try:
        return _run(args)
    finally:
        data_log.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    from ..engine.config import load_config, parse_views
    from ..engine.eval_run import evaluate_checkpoint

    cfg = load_config(args.config, list(args.overrides))
    views = parse_views(args.views, "--views") if args.views else None
    _refuse_inputs_as_outputs(args, cfg)
    done = evaluate_checkpoint(
        cfg,
        args.checkpoint,
        split=args.split,
        views=views,
        aggregate=args.aggregate,
        batch_size=args.batch_size,
        output=args.output,
        device=args.device,
        amp=args.amp,
        progress=not args.no_progress and sys.stderr.isatty(),
        source=str(args.config),
        allow_pickle=args.allow_pickle,
        protocol=args.protocol,
        force_geometry=args.force_geometry,
        log=lambda s: print(f"timesformer eval: {s}", file=sys.stderr),
        debug=args.debug,
    )
    if done is None:  # not the main rank of a torchrun job
        return 0
    result, summary = done
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print(summary, Path(summary["files"]["summary"]).parent)
    for f in result.failed:
        # the line predict and extract print for a video that cannot be read
        where = printable_path(f["path"])
        print(f"timesformer eval: error: cannot read video {where}: {f['error']}", file=sys.stderr)
        print_file_traceback(args, result.tracebacks.get(f["path"]))
    for w in result.warnings:
        for text in w["warnings"]:
            print(f"timesformer eval: warning: {w['path']}: {text}", file=sys.stderr)
    if summary["num_evaluated"] == 0:
        print(
            f"timesformer eval: error: no video of {summary['list']} could be scored "
            f"({summary['num_failed']} of {summary['num_videos']} failed to decode; see "
            f"{summary['files']['failed']})",
            file=sys.stderr,
        )
        return 1
    return 0


def _refuse_inputs_as_outputs(args: argparse.Namespace, cfg: Any) -> None:
    """A list, checkpoint or labels file where eval writes one of its files: exit 2 up front
    (predictions.csv is written as the videos finish, over the list being evaluated)."""
    from ..engine.evaluate import EVAL_FILES

    out_dir = Path(args.output) if args.output else Path(cfg.output_dir) / "eval"
    listed = cfg.data.test_list if args.split == "test" else cfg.data.val_list
    read = [listed, args.checkpoint, cfg.data.labels]
    for name in EVAL_FILES:
        refuse_input_as_output(out_dir / name, read, f"the eval output {out_dir / name}")


def _pct(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.2f}%"


def _print(s: dict[str, Any], out_dir: Path) -> None:
    print(f"checkpoint      {s['checkpoint']}")
    print(f"videos          {s['num_videos']} ({s['split']} list {s['list']})")
    print(f"views           {s['views']} per video, aggregated by {s['aggregate']}")
    print(f"top-1           {_pct(s['top1'])}")
    classes = int(s.get("num_classes") or 0)
    few = f" (only {classes} classes: every video is in the top 5)" if 0 < classes <= 5 else ""
    print(f"top-5           {_pct(s['top5'])}{few}")
    print(f"mean class acc  {_pct(s['mean_class_accuracy'])}")
    failed = s["num_failed"]
    scored = s["num_evaluated"]
    print(f"decode failures {failed} (scored {scored} of {s['num_videos']} videos)")
    print(f"written to      {out_dir}/")
