"""`timesformer predict VIDEO... --checkpoint P`: top-k labels per video; `--long` timelines.

Heavy imports (torch, the engine) happen in `run`, so `timesformer --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..files import printable_path
from . import UsageError
from .common import (
    add_clip_arguments,
    add_compile_argument,
    add_labels_argument,
    add_model_arguments,
    add_views_argument,
    load_model_for_clips,
    log_settings,
    maybe_compile,
    print_file_traceback,
    refuse_input_as_output,
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
else Kinetics-400 for a 400-way head, else class_<i>. A video that cannot be read (or an image) is reported on
stderr and the others are still predicted; the exit code is then 1. Warnings (e.g. a truncated
file) are printed and recorded per video in --json and --out.
"""


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO",
        help="video files, folders (searched recursively), globs or list files (.txt/.csv)",
    )
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
        "--keep-rotation",
        action="store_true",
        help="frames as stored, ignoring a phone video's display rotation (default: upright)",
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
    p.add_argument("--smooth", type=int, default=None, metavar="N",
                   help="with --segments: windows in the centred moving average (default 3)")  # fmt: skip
    p.add_argument("--min-windows", type=int, default=None, metavar="N",
                   help="with --segments: shorter segments join a neighbour (default 1)")  # fmt: skip
    p.add_argument("--min-score", type=float, default=None, metavar="P",
                   help="with --segments: windows whose top smoothed score is lower stay "
                   "unlabelled (default 0)")  # fmt: skip
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="with --segments: write DIR/<video>.scores.csv (per second) and "
                   "DIR/<video>.timeline.png")  # fmt: skip
    add_labels_argument(p)
    p.add_argument("--batch-size", type=int, default=4,
                   help="model inputs per forward pass (default 4)")  # fmt: skip
    add_compile_argument(p)
    p.add_argument(
        "--out",
        "-o",
        default=None,
        metavar="CSV",
        help="also write a CSV row per video as it goes (path,start,end,label,prob,topk,status,"
        "error,warnings); with --long a row per clip too",
    )
    add_clip_arguments(p)
    return p


CSV_COLUMNS = ("path", "start", "end", "label", "prob", "topk", "status", "error", "warnings")


def run(args: argparse.Namespace) -> int:
    """The command; a --out-dir it made is removed again if the run leaves it empty."""
    from ..files import missing_dirs, remove_empty

    made = missing_dirs(args.out_dir) if getattr(args, "out_dir", None) is not None else []
    try:
        return _run(args)
    finally:
        remove_empty(made)


def _run(args: argparse.Namespace) -> int:
    from ..data import VideoDecodeError
    from ..engine.predict import predict, resolve_labels, settings_dict
    from ..engine.records import RowWriter, recorded_warnings
    from ..models.timesformer import require_head

    if args.topk < 1:
        raise UsageError(f"--topk must be >= 1; got {args.topk}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1; got {args.batch_size}")
    _check_mode_args(args)
    if args.segments:
        args.long = True
        _check_segment_args(args)
    from ..data.inputs import duplicates_note, expand_each

    dups: list = []
    inputs, bad_inputs = expand_each(args.videos, dups)
    if duplicates_note(dups):  # a link to, or a second name of, a file already listed
        print(f"timesformer predict: note: {duplicates_note(dups)}", file=sys.stderr)
    if args.out:  # before the model loads, and before anything is opened for writing
        from ..files import check_report_file

        read = [*args.videos, *(v.path for v in inputs), args.checkpoint, args.labels]
        refuse_input_as_output(args.out, read)
        check_report_file(args.out, CSV_COLUMNS, "--out file")
    if args.out_dir is not None:  # a list or labels file named as a video's segment output
        read = [*args.videos, args.checkpoint, args.labels]
        for stem in {v.path.stem for v in inputs}:
            for name in (f"{stem}.scores.csv", f"{stem}.timeline.png"):
                out = Path(args.out_dir) / name
                refuse_input_as_output(out, read, f"--out-dir's {out}")
    with recorded_warnings() as load_warnings:
        model, settings, device = load_model_for_clips(args)
    require_head(model, str(args.checkpoint))  # before a --labels file is held against it
    for w in load_warnings:
        where = "" if str(args.checkpoint) in w else f"{args.checkpoint}: "
        print(f"timesformer predict: warning: {where}{w}", file=sys.stderr)
    names = resolve_labels(model, args.labels)  # a bad --labels file fails here, once
    maybe_compile(args, model, device, "predict")
    log_settings(settings)
    views = args.views or ("1x1" if args.long else None)  # None: the checkpoint's test views
    stems: set[str] = set()
    tty = sys.stderr.isatty() and not args.no_progress
    progress = args.long and tty
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    rows = RowWriter(args.out, CSV_COLUMNS) if args.out else None
    for arg, msg in bad_inputs:  # each named once; the other inputs are still predicted
        print(f"timesformer predict: error: {msg}", file=sys.stderr)
        errors.append({"path": arg, "error": msg, "warnings": []})
        if rows is not None:
            rows.write([arg, "", "", "", "", "", "error", msg, ""])
    items: Any = inputs
    if tty and len(inputs) > 1 and not args.long:
        from tqdm import tqdm

        items = tqdm(inputs, desc="predict", unit="video", dynamic_ncols=True)
    interrupted = False
    try:
        for item in items:
            path = str(item.path)

            def on_clip(c: Any, path: str = path) -> None:
                if rows is not None:
                    rows.write([path, f"{c.start:.3f}", f"{c.end:.3f}", c.label,
                                f"{c.prob:.6g}", _topk_text(c.topk), "clip", "", ""])  # fmt: skip

            with recorded_warnings() as caught:
                try:
                    pred = predict(  # the reader names images (an animated GIF is a video)
                        model, item.path, topk=args.topk, views=views, long=args.long,
                        settings=settings, labels=names, batch_size=args.batch_size,
                        device=device, amp=args.amp, progress=progress, on_clip=on_clip,
                        upright=not args.keep_rotation,
                    )  # fmt: skip
                except (VideoDecodeError, FileNotFoundError, ValueError) as e:
                    pred, err = None, e
            for w in caught:
                print(f"timesformer predict: warning: {printable_path(path)}: {w}", file=sys.stderr)
            if pred is None:
                text = str(err).strip()
                msg = text.splitlines()[0] if text else type(err).__name__
                print(f"timesformer predict: error: {msg}", file=sys.stderr)
                print_file_traceback(args, err)
                errors.append({"path": path, "error": msg, "warnings": caught})
                if rows is not None:
                    rows.write([path, "", "", "", "", "", "error", msg, " | ".join(caught)])
                continue
            record = pred.to_dict()
            record["warnings"] = caught
            segs = _segments(args, pred, names, record, stems) if args.segments else None
            results.append(record)
            if rows is not None:
                rows.write([path, "0.000", f"{pred.duration:.3f}", pred.label, f"{pred.prob:.6g}",
                            _topk_text(pred.topk), "ok", "", " | ".join(caught)])  # fmt: skip
            if not args.json:
                _print(pred, every_clip=args.every_clip, segments=segs)
    except KeyboardInterrupt:  # Ctrl-C: the videos finished so far are still reported
        interrupted = True
    finally:
        if rows is not None:
            rows.close()
    if args.json:
        out = {
            "checkpoint": str(args.checkpoint),
            "settings": settings_dict(settings),
            "warnings": load_warnings,
            "preprocess": settings.report(),
            "predictions": results,
            "errors": errors,
        }
        if interrupted:
            out["interrupted"] = True  # stopped before every input was predicted
        print(json.dumps(out, indent=2))
    if interrupted:
        raise KeyboardInterrupt
    return 1 if errors else 0


SEGMENT_DEFAULTS = {"smooth": 3, "min_windows": 1, "min_score": 0.0}


def _check_mode_args(args: argparse.Namespace) -> None:
    """Options of one mode given without it fail, instead of being silently ignored."""
    if not args.segments:
        given = [f"--{k.replace('_', '-')}" for k in (*SEGMENT_DEFAULTS, "out_dir")
                 if getattr(args, k) is not None]  # fmt: skip
        if given:
            raise UsageError(f"{', '.join(given)}: only with --segments")
    for k, v in SEGMENT_DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.every_clip and not (args.long or args.segments):
        raise UsageError("--every-clip: only with --long (the timeline of clips)")
    if (args.long or args.segments) and args.views:
        if int(args.views.lower().split("x")[0]) != 1:  # views_spec: "KxS", both integers
            raise UsageError(
                f"--views {args.views} with --long: the clips already cover the whole video, so "
                "K must be 1 (1xS: S crops per clip)"
            )


def _check_segment_args(args: argparse.Namespace) -> None:
    """Bad --smooth / --min-windows / --min-score / --out-dir fail before the model loads."""
    from ..files import OutputError, ensure_dir

    if args.smooth < 1:
        raise UsageError(f"--smooth {args.smooth}: expected >= 1 windows")
    if args.min_windows < 1:
        raise UsageError(f"--min-windows {args.min_windows}: expected >= 1 windows")
    if not 0.0 <= args.min_score <= 1.0:
        raise UsageError(f"--min-score {args.min_score}: expected a probability in [0, 1]")
    if args.out_dir is not None:
        try:
            ensure_dir(args.out_dir)
        except OutputError as e:
            raise ValueError(str(e)) from None


def _segments(args: argparse.Namespace, pred: Any, names: list[str], d: dict, stems: set) -> Any:
    """Segments of one video into its JSON dict `d`, and the CSV/PNG files with --out-dir."""

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


def _topk_text(topk: Any) -> str:
    return "|".join(f"{name}:{prob:.4g}" for name, prob in topk)


def display_width(text: str) -> int:
    """Terminal columns of `text`: East Asian wide and fullwidth characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _print(pred: Any, every_clip: bool = False, segments: Any = None) -> None:
    from ..engine.predict import format_time

    print(f"{printable_path(pred.path)}  ({format_time(pred.duration)}, {pred.views} views)")
    width = max(display_width(name) for name, _ in pred.topk)
    for i, (name, prob) in enumerate(pred.topk, 1):
        pad = " " * (width - display_width(name))  # wide (CJK) names take two columns
        print(f"  {i:>2}. {name}{pad}  {100 * prob:6.2f}%")
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
