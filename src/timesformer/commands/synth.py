"""`timesformer synth`: render a labelled synthetic video dataset to real mp4 files."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable

from ..data.synthetic import APPEARANCE_CLASSES, MOTION_CLASSES, render_dataset
from . import UsageError
from .common import int_in, non_negative_int

# Rendering holds about 60 bytes per pixel of a video at once (the float canvas and the shape
# arrays, measured): 2**25 pixels (8 frames of 2048 x 2048) is about 2 GB.
MAX_PIXELS = 2**25


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _pair_within(low: float, high: float, low_open: bool) -> Callable[[str], tuple[float, float]]:
    """argparse type: 'LOW,HIGH' (one number means both) with LOW <= HIGH, each in the range
    (low, high] when low_open else [low, high]."""
    want = f"{'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> tuple[float, float]:
        try:
            parts = [_number(x) for x in text.split(",")]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected LOW,HIGH finite numbers in {want}, got {text!r}"
            ) from None
        if len(parts) == 1:
            parts *= 2
        inside = all((x > low if low_open else x >= low) and x <= high for x in parts)
        if len(parts) != 2 or parts[0] > parts[1] or not inside:
            raise argparse.ArgumentTypeError(
                f"expected LOW,HIGH with LOW <= HIGH, each in {want}, got {text!r}"
            )
        return parts[0], parts[1]

    return parse


def _even_size(text: str) -> int:
    """argparse type: an even frame side in pixels, 16..4096."""
    value = int_in(16, 4096)(text)
    if value % 2:
        raise argparse.ArgumentTypeError(f"expected an even integer in 16..4096, got {text!r}")
    return value


def _number_in(
    low: float, high: float, low_open: bool, what: str = "a number"
) -> Callable[[str], float]:
    """argparse type: a finite number in (low, high] when low_open, else [low, high]."""
    want = f"{what} in {'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = _number(text)
        except argparse.ArgumentTypeError:
            value = low - 1.0
        if not ((value > low if low_open else value >= low) and value <= high):
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
        return value

    return parse


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Render a labelled synthetic video dataset (H.264 mp4 by default) with list files\n"
        "train.csv / val.csv / test.csv ('relative/path label' per line), labels.txt,\n"
        "boxes.json (the labelled object's box per frame) and info.json. Deterministic from\n"
        "--seed; re-running with the same options reuses the files. A folder holding other\n"
        "files, or a dataset of other options, is refused unless --overwrite.\n\n"
        f"motion classes (the class lives only in time): {', '.join(MOTION_CLASSES)}\n"
        f"appearance classes (visible in any frame): {', '.join(APPEARANCE_CLASSES)}"
    )
    p.epilog = (
        "examples:\n"
        "  timesformer synth data/motion --kind motion --num-train 400 --size 32 --frames 8\n"
        "  timesformer synth data/clutter --distractors 3 --clutter 6 --size 64 --no-wrap"
    )
    p.add_argument("out_dir", help="output folder (created if missing)")
    p.add_argument("--kind", choices=("motion", "appearance"), default="motion",
                   help="what carries the label (default: motion)")  # fmt: skip
    p.add_argument(
        "--num-train", type=non_negative_int, default=256, help="training videos (default 256)"
    )
    p.add_argument(
        "--num-val", type=non_negative_int, default=64, help="validation videos (default 64)"
    )
    p.add_argument("--num-test", type=non_negative_int, default=64, help="test videos (default 64)")
    p.add_argument("--size", type=_even_size, default=32,
                   help="frame side in pixels, even, 16..4096 (default 32)")  # fmt: skip
    p.add_argument("--frames", type=int_in(1, 4096), default=8,
                   help="frames per video, 1..4096 (default 8)")  # fmt: skip
    p.add_argument(
        "--fps",
        type=_number_in(0, 240, True, "a finite number"),
        default=30.0,
        help="frame rate, up to 240 (default 30)",
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--classes", default=None,
                   help="comma-separated class names to use (default: all of the kind)")  # fmt: skip
    p.add_argument("--num-classes", type=int_in(2), default=None,
                   help="use the first K classes (after --classes)")  # fmt: skip
    p.add_argument("--objects", type=int_in(1, 32), default=1,
                   help="labelled objects per video, all moving the same way, 1..32 (default 1)")  # fmt: skip
    p.add_argument("--object-size", type=_pair_within(0, 1, True), default=(0.2, 0.45), metavar="LOW,HIGH",
                   help="object diameter as a fraction of the frame side, LOW,HIGH or one value for both (default 0.2,0.45)")  # fmt: skip
    p.add_argument("--speed", type=_pair_within(0, 1, False), default=(0.04, 0.08), metavar="LOW,HIGH",
                   help="per frame: frame sides moved / log-size change / turns (default "
                   "0.04,0.08)")  # fmt: skip
    p.add_argument("--distractors", type=int_in(0, 64), default=0,
                   help="objects that jitter without steady motion, 0..64 (default 0)")  # fmt: skip
    p.add_argument("--clutter", type=int_in(0, 256), default=0,
                   help="static background blobs, 0..256 (default 0)")  # fmt: skip
    p.add_argument("--noise", type=_number_in(0, 1, False), default=0.0,
                   help="pixel noise std as a fraction of 255, 0..1 (default 0)")  # fmt: skip
    p.add_argument("--no-wrap", dest="wrap", action="store_false",
                   help="keep motion objects inside the frame (boxes stay whole; a frame then "
                   "hints at the direction) instead of wrapping around the edges")  # fmt: skip
    p.add_argument("--codec", choices=("h264", "vp9", "mpeg4"), default="h264",
                   help="video codec (default h264 in .mp4)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="render even into a folder that holds other files or a dataset of "
                   "other options, replacing what it writes (default: refuse; the same options "
                   "reuse the files)")  # fmt: skip
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    p.add_argument("--json", action="store_true", help="print the info dict as JSON")
    return p


def check_args(args: argparse.Namespace) -> list[str] | None:
    """Refuse what argparse's types cannot see alone (UsageError naming the flags); the classes
    to render (None: all of the kind)."""
    from ..data.synthetic import choose_classes

    classes = [c.strip() for c in args.classes.split(",")] if args.classes is not None else None
    try:
        choose_classes(args.kind, classes, args.num_classes)
    except ValueError as e:
        flag = "--num-classes" if "num_classes" in str(e) else "--classes"
        raise UsageError(f"{flag}: {e}") from None
    if args.kind == "appearance" and args.objects != 1:
        raise UsageError("--objects: only --kind motion has several labelled objects")
    if args.num_train + args.num_val + args.num_test < 1:
        raise UsageError("--num-train, --num-val, --num-test: expected at least one video")
    pixels = args.frames * args.size**2
    if pixels > MAX_PIXELS:
        raise UsageError(
            f"--frames {args.frames} x --size {args.size}: {pixels / 2**20:.0f} Mi pixels per "
            f"video, above the {MAX_PIXELS // 2**20} Mi that rendering holds in memory; expected "
            "fewer frames or a smaller size (e.g. 8 frames of 2048 px)"
        )
    return classes


def run(args: argparse.Namespace) -> int:
    from ..data.synthetic import FolderInUseError
    from ..files import output_dir

    classes = check_args(args)  # before the folder is made
    with output_dir(args.out_dir, "output folder"):
        try:
            info = render_dataset(
                args.out_dir, args.kind, num_train=args.num_train, num_val=args.num_val,
                num_test=args.num_test, size=args.size, num_frames=args.frames, fps=args.fps,
                seed=args.seed, classes=classes, num_classes=args.num_classes,
                num_objects=args.objects, object_size=args.object_size, speed=args.speed,
                distractors=args.distractors, clutter=args.clutter, noise=args.noise,
                wrap=args.wrap, codec=args.codec, overwrite=args.overwrite,
                progress=not args.json,
            )  # fmt: skip
        except FolderInUseError as e:
            raise ValueError(
                f"{e.reason}; pass --overwrite to render into it anyway, or choose another folder"
            ) from None
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    counts = ", ".join(f"{k} {v}" for k, v in info["counts"].items())
    state = "reused cached files in" if info["cached"] else "wrote"
    print(f"{state} {info['out_dir']}: {info['kind']}, {info['num_classes']} classes, {counts}")
    print(f"classes: {', '.join(info['labels'])}")
    print(f"list files: {', '.join(info['splits'].values())}")
    return 0
