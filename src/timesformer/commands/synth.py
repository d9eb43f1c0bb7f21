"""`timesformer synth`: render a labelled synthetic video dataset to real mp4 files."""

from __future__ import annotations

import argparse
import json

from ..data.synthetic import APPEARANCE_CLASSES, MOTION_CLASSES, render_dataset
from .common import non_negative_float


def _pair(text: str) -> tuple[float, float]:
    """'0.2,0.4' -> (0.2, 0.4); a single number means (x, x)."""
    try:
        parts = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH numbers, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or parts[0] > parts[1]:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH with LOW <= HIGH, got {text!r}")
    return parts[0], parts[1]


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "Render a labelled synthetic video dataset (H.264 mp4 by default) with list files\n"
        "train.csv / val.csv / test.csv ('relative/path label' per line), labels.txt,\n"
        "boxes.json (the labelled object's box per frame) and info.json. Deterministic from\n"
        "--seed; re-running with the same options reuses the files.\n\n"
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
    p.add_argument("--num-train", type=int, default=256, help="training videos (default 256)")
    p.add_argument("--num-val", type=int, default=64, help="validation videos (default 64)")
    p.add_argument("--num-test", type=int, default=64, help="test videos (default 64)")
    p.add_argument("--size", type=int, default=32, help="frame side in pixels, even (default 32)")
    p.add_argument("--frames", type=int, default=8, help="frames per video (default 8)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--classes", default=None,
                   help="comma-separated class names to use (default: all of the kind)")  # fmt: skip
    p.add_argument("--num-classes", type=int, default=None,
                   help="use the first K classes (after --classes)")  # fmt: skip
    p.add_argument("--objects", type=int, default=1,
                   help="labelled objects per video, all moving the same way (default 1)")  # fmt: skip
    p.add_argument("--object-size", type=_pair, default=(0.2, 0.45), metavar="LOW,HIGH",
                   help="object diameter as a fraction of the frame side, LOW,HIGH or one value for both (default 0.2,0.45)")  # fmt: skip
    p.add_argument("--speed", type=_pair, default=(0.04, 0.08), metavar="LOW,HIGH",
                   help="per frame: frame sides moved / log-size change / turns (default "
                   "0.04,0.08)")  # fmt: skip
    p.add_argument("--distractors", type=int, default=0,
                   help="objects that jitter without steady motion (default 0)")  # fmt: skip
    p.add_argument("--clutter", type=int, default=0, help="static background blobs (default 0)")
    p.add_argument("--noise", type=non_negative_float, default=0.0,
                   help="pixel noise std as a fraction of 255 (default 0)")  # fmt: skip
    p.add_argument("--no-wrap", dest="wrap", action="store_false",
                   help="keep motion objects inside the frame (boxes stay whole; a frame then "
                   "hints at the direction) instead of wrapping around the edges")  # fmt: skip
    p.add_argument("--codec", choices=("h264", "vp9", "mpeg4"), default="h264",
                   help="video codec (default h264 in .mp4)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="re-render even if cached")
    p.add_argument("--json", action="store_true", help="print the info dict as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    from ..files import ensure_dir

    ensure_dir(args.out_dir, "output folder")
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    info = render_dataset(
        args.out_dir, args.kind, num_train=args.num_train, num_val=args.num_val,
        num_test=args.num_test, size=args.size, num_frames=args.frames, fps=args.fps,
        seed=args.seed, classes=classes, num_classes=args.num_classes,
        num_objects=args.objects, object_size=args.object_size, speed=args.speed,
        distractors=args.distractors, clutter=args.clutter, noise=args.noise, wrap=args.wrap,
        codec=args.codec, overwrite=args.overwrite, progress=not args.json,
    )  # fmt: skip
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    counts = ", ".join(f"{k} {v}" for k, v in info["counts"].items())
    state = "reused cached files in" if info["cached"] else "wrote"
    print(f"{state} {info['out_dir']}: {info['kind']}, {info['num_classes']} classes, {counts}")
    print(f"classes: {', '.join(info['labels'])}")
    print(f"list files: {', '.join(info['splits'].values())}")
    return 0
