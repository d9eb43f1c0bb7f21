"""`timesformer data check | prepare | lists`: a folder of your own videos, made trainable.

Parsing and printing only; the work is in timesformer.data.inspect / prepare / lists.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from fractions import Fraction
from typing import Any

from ..files import printable_path
from . import UsageError, usage_line
from .common import (
    int_in,
    non_negative_int,
    positive_float,
    positive_int,
    print_file_traceback,
    refuse_input_as_output,
)

EPILOG = """\
examples:
  timesformer data check videos/ --num-frames 8 --sampling-rate 32 --out report.csv
  timesformer data check train.csv --json > report.json
  timesformer data prepare raw/ prepared/ --short-side 256 --fps 30 --gop 16 --workers 4
  timesformer data lists prepared/ --out lists/ --split 0.8,0.1,0.1 --seed 0
  timesformer data lists --kinetics-csv train.csv --kinetics-csv validate.csv --videos k400/ --out lists/
  timesformer data lists --ssv2-json something-something-v2-train.json \\
      --ssv2-json something-something-v2-validation.json --ssv2-labels labels.json \\
      --videos 20bn/ --out lists/

check exits 0 only when every file is ok; prepare exits 0 only when no video failed.
Thresholds and formats: docs/data.md, "Bring your own videos".
"""


def _common(p: argparse.ArgumentParser, workers: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print records as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true",
                   help="full tracebacks on errors (prepare: also each failed video's)")  # fmt: skip
    if workers:
        p.add_argument("--workers", type=non_negative_int, default=0, metavar="N",
                       help="processes working in parallel (default 0: this one)")  # fmt: skip


def _clip(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-frames", type=positive_int, default=8, help="frames per clip (default 8)")
    p.add_argument("--sampling-rate", type=positive_int, default=32,
                   help="frames between samples at --target-fps (default 32)")  # fmt: skip
    p.add_argument("--target-fps", type=positive_float, default=30.0,
                   help="rate the sampling rate counts at (default 30)")  # fmt: skip


def _rate(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a frame rate like 30 or 30000/1001, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a frame rate >= 0, got {text!r}")
    return value


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    c = sub.add_parser("check", help="report codec, size, rotation, fps, keyframes, decode cost",
                       description="Probe videos (files, folders, list files) and flag problems.")  # fmt: skip
    c.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders or list files")
    c.add_argument("--out", metavar="REPORT.csv", help="also write the records as CSV")
    c.add_argument("--separator", default=None, help="list-file separator (default: detect)")
    c.add_argument("--no-decode", dest="measure", action="store_false",
                   help="skip timing the decode of one training clip per video")  # fmt: skip
    c.add_argument("--full", action="store_true",
                   help="also decode every frame of every video (as slow as decoding them all): "
                        "finds damage anywhere in a file, not only in the clip timed")  # fmt: skip
    _clip(c)
    _common(c)
    r = sub.add_parser("prepare", help="re-encode a tree to H.264: short side, fps, keyframes",
                       description="Re-encode every video under SRC into DST (same relative "
                       "paths, .mp4), upright, resumable, verified.")  # fmt: skip
    r.add_argument("src", metavar="SRC", help="folder of videos (searched recursively)")
    r.add_argument("dst", metavar="DST", help="output folder")
    r.add_argument(
        "--short-side", type=int_in(2), default=256, help="output short side (default 256)"
    )
    r.add_argument("--fps", type=_rate, default=Fraction(30),
                   help="output frame rate, e.g. 30 or 30000/1001; 0 keeps the source rate "
                   "(default 30)")  # fmt: skip
    r.add_argument(
        "--gop", type=positive_int, default=16, help="frames between keyframes (default 16)"
    )
    r.add_argument(
        "--crf", type=int_in(0, 51), default=23, help="x264 quality, lower is better (default 23)"
    )
    r.add_argument("--sample", type=non_negative_int, default=8,
                   help="videos timed for the before/after clip speed (default 8; 0: none)")  # fmt: skip
    _clip(r)
    _common(r)
    s = sub.add_parser("lists", help="train/val/test.csv and labels.txt from a tree or annotations",
                       description="Write train.csv, val.csv, test.csv and labels.txt.")  # fmt: skip
    s.add_argument(
        "src", nargs="?", metavar="SRC", help="a folder-per-class tree SRC/<class>/<video>"
    )
    s.add_argument("--out", required=True, metavar="DIR", help="output folder for the lists")
    s.add_argument("--split", default="0.8,0.1,0.1",
                   help="train,val[,test] fractions for a folder tree (default 0.8,0.1,0.1)")  # fmt: skip
    s.add_argument("--seed", type=int, default=0, help="shuffle seed for the split (default 0)")
    s.add_argument("--kinetics-csv", action="append", default=[], metavar="FILE",
                   help="Kinetics annotations label,youtube_id,time_start,time_end,split "
                   "(repeatable)")  # fmt: skip
    s.add_argument("--ssv2-json", action="append", default=[], metavar="FILE",
                   help="SSv2 train/validation JSON (repeatable; split from the file name)")  # fmt: skip
    s.add_argument("--ssv2-labels", metavar="FILE", help="SSv2 labels JSON (template -> id)")
    s.add_argument("--videos", metavar="DIR", help="folder holding the annotated videos")
    _common(s, workers=False)
    return p


def _bar(args: argparse.Namespace, total: int, desc: str) -> Any:
    if args.no_progress or args.json or not sys.stderr.isatty() or total < 2:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="video", dynamic_ncols=True)


def _table(rows: list[tuple[str, str]], file: Any) -> None:
    width = max((len(k) for k, _ in rows), default=0)
    for k, v in rows:
        print(f"{k:<{width}}  {v}", file=file)


def _run_check(args: argparse.Namespace) -> int:
    from ..data.inspect import FIELDS, check_videos, collect_videos, summarize
    from ..files import atomic_write_text, check_report_file

    paths = collect_videos(args.inputs, separator=args.separator)  # reads the lists only
    if not paths:
        raise ValueError(f"no videos found in {' '.join(args.inputs)}")
    if args.out:  # before any video is checked: not an input, nor a file of another kind
        refuse_input_as_output(args.out, [*args.inputs, *paths])
        check_report_file(args.out, FIELDS, "report")
    bar = _bar(args, len(paths), "check")
    done: list[dict[str, Any]] = []  # in input order, as they arrive

    def arrived(rec: dict[str, Any]) -> None:
        done.append(rec)
        if bar:
            bar.update()

    def write_report(records: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        w.writeheader()
        for rec in records:
            w.writerow({**rec, "problems": "; ".join(rec["problems"])})
        atomic_write_text(args.out, buf.getvalue(), durable=False)

    try:
        records = check_videos(
            paths, workers=args.workers, progress=arrived, num_frames=args.num_frames,
            sampling_rate=args.sampling_rate, target_fps=args.target_fps, measure=args.measure,
            full=args.full,
        )  # fmt: skip
    except KeyboardInterrupt:  # Ctrl-C: the report keeps the videos checked so far
        if args.out and done:
            write_report(done)
            print(f"interrupted: {len(done)} of {len(paths)} videos in {args.out}", file=sys.stderr)
        raise
    finally:
        if bar:
            bar.close()
    if args.out:
        write_report(records)
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        for rec in records:
            if rec["problems"]:
                print(f"{printable_path(rec['path'])}: {'; '.join(rec['problems'])}")
    _table(summarize(records), sys.stderr if args.json else sys.stdout)
    return 0 if all(r["ok"] for r in records) else 1


def _run_prepare(args: argparse.Namespace) -> int:
    from ..data.prepare import find_videos
    from ..files import output_dir

    sources = find_videos(args.src, exclude=args.dst)
    if not sources:
        raise ValueError(f"no videos found under {args.src}")
    with output_dir(args.dst, "destination folder"):  # removed again if nothing lands in it
        return _prepare_into(args, sources)


def _prepare_into(args: argparse.Namespace, sources: list[Any]) -> int:
    from ..data.prepare import clip_speed, prepare_tree

    clip = dict(num_frames=args.num_frames, sampling_rate=args.sampling_rate,
                target_fps=args.target_fps)  # fmt: skip
    bar = _bar(args, len(sources), "prepare")
    records = prepare_tree(
        args.src, args.dst, short_side=args.short_side, fps=args.fps or None, gop=args.gop,
        crf=args.crf, workers=args.workers, progress=(lambda _: bar.update()) if bar else None,
    )  # fmt: skip
    if bar:
        bar.close()
    outs = [r["out"] for r in records]
    ok_pairs = [
        (s, o) for s, o, r in zip(sources, outs, records, strict=True) if r["status"] != "failed"
    ]
    before = after = None
    if args.sample > 0 and ok_pairs:
        before = clip_speed([s for s, _ in ok_pairs], args.sample, **clip)
        after = clip_speed([o for _, o in ok_pairs], args.sample, **clip)
    failed = [r for r in records if r["status"] == "failed"]
    tracebacks = {id(r): r.pop("traceback", "") for r in records}  # for --debug, not the JSON
    counts = {k: sum(r["status"] == k for r in records) for k in ("written", "skipped", "failed")}
    if args.json:
        print(json.dumps({"records": records, "counts": counts, "clip_ms_before": before,
                          "clip_ms_after": after}, indent=2))  # fmt: skip
    for r in failed:
        if not args.json:
            print(f"failed: {r['path']}: {r['reason']}", flush=True)
        print_file_traceback(args, tracebacks[id(r)])  # with --debug, on stderr
    if not args.json:
        rows = [(k, str(v)) for k, v in counts.items()]
        if before is not None and after is not None:
            gain = f" ({before / after:.1f}x)" if after > 0 else ""
            rows.append(("training clip", f"{before:.1f} ms before, {after:.1f} ms after{gain}"))
        _table(rows, sys.stdout)
    return 1 if failed else 0


def _run_lists(args: argparse.Namespace) -> int:
    from ..data import lists
    from ..files import output_dir

    kinds = [bool(args.src), bool(args.kinetics_csv), bool(args.ssv2_json)]
    if sum(kinds) != 1:
        raise UsageError(
            "give one source: SRC (a class-folder tree), --kinetics-csv or --ssv2-json"
        )
    if (args.kinetics_csv or args.ssv2_json) and not args.videos:
        raise UsageError("--videos DIR is needed with --kinetics-csv / --ssv2-json")
    if args.ssv2_json and not args.ssv2_labels:
        raise UsageError("--ssv2-labels FILE (template -> id JSON) is needed with --ssv2-json")

    try:  # before any folder is made
        ratios = lists.parse_split(args.split) if args.src else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    with output_dir(args.out, "output folder"):  # removed again if nothing lands in it
        return _lists_into(args, ratios)


def _lists_into(args: argparse.Namespace, ratios: Any) -> int:
    from ..data import lists
    from ..engine.records import recorded_warnings

    missing: list[dict[str, str]] = []
    if args.src:
        with recorded_warnings() as caught:
            splits, classes = lists.from_folder(args.src, ratios, args.seed)
        for w in caught:  # an empty class folder, videos outside every class
            print(f"timesformer data lists: warning: {w.split(': ', 1)[-1]}", file=sys.stderr)
    elif args.kinetics_csv:
        splits, classes, missing = lists.from_kinetics(args.kinetics_csv, args.videos)
    else:
        splits, classes, missing = lists.from_ssv2(args.ssv2_json, args.ssv2_labels, args.videos)
    if not any(splits.values()):
        raise ValueError(
            f"no annotated video was found under {args.videos} ({len(missing)} missing)"
        )
    from pathlib import Path

    stale = {
        s for s in lists.SPLITS if not splits.get(s) and (Path(args.out) / f"{s}.csv").exists()
    }
    written = lists.write_lists(args.out, splits, classes, missing)  # removes the stale lists
    counts = {s: len(v) for s, v in splits.items()}
    if args.json:
        print(json.dumps({"written": written, "counts": counts, "classes": len(classes),
                          "missing": len(missing), "removed": sorted(f"{s}.csv" for s in stale)},
                         indent=2))  # fmt: skip
        return 0
    rows = [
        (s, f"{n} videos" + (f" -> {written[s]}" if s in written else "")
         + (f" (the old {s}.csv removed)" if s in stale else ""))
        for s, n in counts.items()
    ]  # fmt: skip
    rows.append(("classes", f"{len(classes)} -> {written['labels']}"))
    if missing:
        rows.append(
            ("missing", f"{len(missing)} annotations without a video -> {written['missing']}")
        )
    _table(rows, sys.stdout)
    return 0


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "data_command", None)
    if action is None:
        print(
            "timesformer data: give an action: check, prepare or lists (see --help)",
            file=sys.stderr,
        )
        return 2
    fn = {"check": _run_check, "prepare": _run_prepare, "lists": _run_lists}[action]
    try:
        return fn(args)
    except UsageError as e:  # the command line: exit 2 with the action's own help
        if getattr(args, "debug", False):
            raise
        print(usage_line(f"timesformer data {action}", str(e)), file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:  # one clear line; cli.main handles the rest
        if getattr(args, "debug", False):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"timesformer data {action}: error: {msg}", file=sys.stderr)
        return 1
