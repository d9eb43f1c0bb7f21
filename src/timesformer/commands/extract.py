"""`timesformer extract INPUT... -c P --out DIR`: embeddings per video or per window, sharded.

Parsing only: the work is `engine.extract_run.run_extract`. Heavy imports happen in `run`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..files import printable_path
from . import UsageError
from .common import (
    add_clip_arguments,
    add_compile_argument,
    add_model_arguments,
    add_views_argument,
)

EPILOG = """\
examples:
  timesformer extract videos/ -c best.pt --out feats/                 one vector per video
  timesformer extract list.txt -c K400.pyth --out feats/ --mode windows --stride 64
  torchrun --nproc-per-node 4 -m timesformer.cli extract videos/ -c P --out feats/

Output: DIR/features/<name>.npy ((D,) per video, or (windows, D)) and DIR/index.jsonl, one
line per video with its fps, duration, clip settings, window times ([start_s, end_s]),
feat_stride and window_frames (in the video's own frames), and status ok/failed with the
error. Rerunning skips videos already done; under torchrun each rank takes a share of the
videos (balanced by duration) and rank 0 writes the index. Exit code 1 if any video failed.
See docs/extract.md (also: feeding the features to ActionFormer / TriDet).
"""


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="video files, folders, globs or list files"
    )
    add_model_arguments(p, json_help="print the final summary as JSON on stdout")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--mode",
        choices=("video", "windows"),
        default="video",
        help="video: one vector per video (mean over the views); windows: one row per window "
        "covering the whole video (default video)",
    )
    add_views_argument(
        p,
        "video mode: K temporal clips x S crops averaged (default: the checkpoint's test "
        "views, else 1x3); windows mode: 1xS crops per window (default 1x1)",
    )
    p.add_argument(
        "--stride",
        type=float,
        default=None,
        metavar="FRAMES",
        help="windows mode: frames of the video between window starts (default: one window "
        "span, no overlap)",
    )
    p.add_argument(
        "--pool",
        choices=("cls", "mean"),
        default="cls",
        help="class token after the final norm, or the mean of the patch tokens (default cls)",
    )
    p.add_argument(
        "--dtype",
        choices=("fp32", "fp16"),
        default="fp32",
        help="dtype of the saved arrays (default fp32); compute precision is --amp",
    )
    p.add_argument("--batch-size", type=int, default=8,
                   help="model inputs per forward pass (default 8)")  # fmt: skip
    add_compile_argument(p)
    p.add_argument(
        "--workers", type=int, default=2, help="DataLoader processes decoding videos (default 2)"
    )
    add_clip_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..data.inputs import duplicates_note, expand_each
    from ..files import OutputError, ensure_dir, missing_dirs, remove_empty

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1; got {args.batch_size}")
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0; got {args.workers}")
    if args.stride is not None and args.mode != "windows":
        raise UsageError(f"--stride: only with --mode windows (got --mode {args.mode})")
    if args.stride is not None and args.stride <= 0:
        raise UsageError(f"--stride {args.stride:g}: expected a positive frame count")
    if args.mode == "windows" and args.views and int(args.views.lower().split("x")[0]) != 1:
        raise UsageError(
            f"--views {args.views} with --mode windows: the windows are the clips, so K must "
            "be 1 (1xS: S crops per window)"
        )
    dups: list = []
    inputs, bad_inputs = expand_each(args.inputs, dups)
    if duplicates_note(dups):  # a link to, or a second name of, a file already listed
        print(f"timesformer extract: note: {duplicates_note(dups)}", file=sys.stderr)
    for _, msg in bad_inputs:  # each named once; the other inputs are still extracted
        print(f"timesformer extract: error: {msg}", file=sys.stderr)
    made = missing_dirs(args.out)
    try:  # before the model loads: a mistyped or read-only --out fails at once
        ensure_dir(args.out)
    except OutputError as e:
        raise ValueError(str(e)) from None
    try:
        return max(_extract(args, inputs), 1 if bad_inputs else 0)
    except BaseException:
        remove_empty(made)  # a failed start leaves no empty folder behind
        raise


def _extract(args: argparse.Namespace, inputs: list) -> int:
    from ..engine.distributed import env_world, pick_device
    from ..engine.extract_run import run_extract
    from .common import load_model_for_clips, maybe_compile, print_file_traceback

    rank, _, local_rank = env_world()
    device = pick_device(args.device or "auto", local_rank, what="--device")
    model, settings, device = load_model_for_clips(args, device)
    maybe_compile(args, model, device, "extract")
    progress = not args.no_progress and not args.json and sys.stderr.isatty()
    summary = run_extract(
        model, inputs, args.out, mode=args.mode, views=args.views, stride=args.stride,
        pool=args.pool, dtype=args.dtype, batch_size=args.batch_size, device=device,
        amp=args.amp, settings=settings, workers=args.workers, progress=progress,
        info={"checkpoint": str(args.checkpoint)},
    )  # fmt: skip
    if rank != 0:
        return 0
    for f in summary.failures:
        name = printable_path(Path(f["video"]).name)
        where = "" if name in f["error"] else f"{printable_path(f['video'])}: "
        print(f"timesformer extract: error: {where}{f['error']}", file=sys.stderr)
        print_file_traceback(args, summary.tracebacks.get(f["video"]))
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(
            f"{summary.ok}/{summary.videos} videos ok ({summary.skipped} already done, "
            f"{summary.failed} failed) in {summary.seconds:.1f} s on {summary.world_size} "
            f"process(es): {summary.clips} clips, {summary.clips_per_s:.1f} clips/s, "
            f"{summary.videos_per_s:.2f} videos/s -> {summary.out}/index.jsonl"
        )
    return 1 if summary.failed else 0
