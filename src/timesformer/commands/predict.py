"""`timesformer predict VIDEO... --checkpoint P`: top-k labels per video; `--long` timelines.

Heavy imports (torch, the engine) happen in `run`, so `timesformer --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .common import (
    add_clip_arguments,
    add_labels_argument,
    add_model_arguments,
    add_views_argument,
    load_model_for_clips,
    log_settings,
)

EPILOG = """\
examples:
  timesformer predict clip.mp4 --checkpoint runs/demo/best.pt
  timesformer predict a.mp4 b.mp4 --checkpoint TimeSformer_divST_8x32_224_K400.pyth --views 1x3
  timesformer predict lecture.mp4 --checkpoint hf_dir/ --long --json > timeline.json
  timesformer predict match.mp4 -c P --segments --out-dir out/   actions with start/end

Clips are cut as the checkpoint's preprocessing contract says (frames, sampling rate, fps,
sampler, size, short side, mean/std, channel order, test views and protocol: what training
stored, or the official cfg, or preprocessor_config.json), else the official defaults for its
frame count (8 -> 32, 16 -> 16, 96 -> 4); the flags override it. One stderr line says each
setting and where it came from; --json has it under "preprocess". -c takes Hugging Face Hub
ids too (facebook/timesformer-base-finetuned-k400). Class names: --labels FILE, else the checkpoint's,
else Kinetics-400 for a 400-way head, else class_<i>. A video that cannot be read is reported on
stderr and the others are still predicted; the exit code is then 1.
"""


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files to classify")
    add_model_arguments(p, json_help="machine-readable output on stdout (no progress bar)")
    p.add_argument("--topk", type=int, default=5, help="labels to show per video (default 5)")
    add_views_argument(
        p,
        "K temporal clips x S spatial crops (default: the checkpoint's, 1x3; with --long, S crops per clip, "
        "default 1x1)",
    )
    p.add_argument(
        "--long",
        action="store_true",
        help="cover the whole video with consecutive clips; print a timeline of clip labels",
    )
    p.add_argument(
        "--every-clip",
        action="store_true",
        help="with --long, print every clip instead of merging runs of the same label",
    )
    p.add_argument(
        "--segments",
        action="store_true",
        help="actions with start/end from the timeline: windows smoothed, then merged "
        "(implies --long; JSON gets 'segments'; docs/inference.md)",
    )
    p.add_argument("--smooth", type=int, default=3, metavar="N",
                   help="with --segments: windows in the centred moving average (default 3)")  # fmt: skip
    p.add_argument("--min-windows", type=int, default=1, metavar="N",
                   help="with --segments: shorter segments join a neighbour (default 1)")  # fmt: skip
    p.add_argument("--min-score", type=float, default=0.0, metavar="P",
                   help="with --segments: windows whose top smoothed score is lower stay "
                   "unlabelled (default 0)")  # fmt: skip
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="with --segments: write DIR/<video>.scores.csv (per second) and "
                   "DIR/<video>.timeline.png")  # fmt: skip
    add_labels_argument(p)
    p.add_argument("--batch-size", type=int, default=4, help="model inputs per forward pass")
    add_clip_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..data import VideoDecodeError
    from ..engine.predict import predict, resolve_labels, settings_dict

    if args.topk < 1:
        raise ValueError(f"--topk must be >= 1; got {args.topk}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1; got {args.batch_size}")
    if args.segments:
        args.long = True
        _check_segment_args(args)
    model, settings, device = load_model_for_clips(args)
    names = resolve_labels(model, args.labels)  # a bad --labels file fails here, once
    log_settings(settings)
    views = args.views or ("1x1" if args.long else None)  # None: the checkpoint's test views
    stems: set[str] = set()
    progress = args.long and not args.no_progress and sys.stderr.isatty()
    results: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for path in args.videos:
        try:
            pred = predict(
                model,
                path,
                topk=args.topk,
                views=views,
                long=args.long,
                settings=settings,
                labels=names,
                batch_size=args.batch_size,
                device=device,
                amp=args.amp,
                progress=progress,
            )
        except (VideoDecodeError, FileNotFoundError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"timesformer predict: error: {msg}", file=sys.stderr)
            errors.append({"path": str(path), "error": msg})
            continue
        d = pred.to_dict()
        segs = None
        if args.segments:
            segs = _segments(args, pred, names, d, stems)
        results.append(d)
        if not args.json:
            _print(pred, every_clip=args.every_clip, segments=segs)
    if args.json:
        out = {
            "checkpoint": str(args.checkpoint),
            "settings": settings_dict(settings),
            "preprocess": settings.report(),
            "predictions": results,
            "errors": errors,
        }
        print(json.dumps(out, indent=2))
    return 1 if errors else 0


def _check_segment_args(args: argparse.Namespace) -> None:
    """Bad --smooth / --min-windows / --out-dir fail before the model loads."""
    from ..files import OutputError, ensure_dir

    if args.smooth < 1 or args.min_windows < 1:
        raise ValueError(
            f"--smooth {args.smooth} / --min-windows {args.min_windows}: expected >= 1 windows"
        )
    if args.out_dir is not None:
        try:
            ensure_dir(args.out_dir)
        except OutputError as e:
            raise ValueError(str(e)) from None


def _segments(args: argparse.Namespace, pred: Any, names: list[str], d: dict, stems: set) -> Any:
    """Segments of one video into its JSON dict `d`, and the CSV/PNG files with --out-dir."""
    from pathlib import Path

    from ..engine.segments import prediction_segments, write_prediction_outputs

    segs = prediction_segments(pred, names, smooth=args.smooth, min_windows=args.min_windows,
                               min_score=args.min_score)  # fmt: skip
    d["segments"] = [g.to_dict() for g in segs]
    if args.out_dir is not None:
        stem, k = Path(pred.path).stem, 2
        while stem in stems:
            stem, k = f"{Path(pred.path).stem}__{k}", k + 1
        stems.add(stem)
        d["files"] = write_prediction_outputs(args.out_dir, stem, pred, names, segs)
    return segs


def _print(pred: Any, every_clip: bool = False, segments: Any = None) -> None:
    from ..engine.predict import format_time

    print(f"{pred.path}  ({format_time(pred.duration)}, {pred.views} views)")
    width = max(len(name) for name, _ in pred.topk)
    for i, (name, prob) in enumerate(pred.topk, 1):
        print(f"  {i:>2}. {name:<{width}}  {100 * prob:6.2f}%")
    if segments is not None:
        print(f"  segments ({len(pred.clips)} clips, smoothed and merged):")
        for g in segments:
            span = f"{format_time(g.start)} - {format_time(g.end)}"
            print(f"    {span:>19}  {g.label}  score {100 * g.score:5.1f}%")
    elif pred.clips is not None:
        rows = pred.clips if every_clip else pred.segments()
        kind = "clips" if every_clip else "segments (consecutive clips with the same label)"
        print(f"  timeline, {len(pred.clips)} clips; {kind}:")
        for c in rows:
            span = f"{format_time(c.start)} - {format_time(c.end)}"
            print(f"    {span:>19}  {c.label}  {100 * c.prob:5.1f}%")
    print()
