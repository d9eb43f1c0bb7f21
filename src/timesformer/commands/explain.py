"""`timesformer explain VIDEO --checkpoint P --out DIR`: space-time attention maps of one clip.

Heavy imports (torch, the engine) happen in `run`, so `timesformer --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (
    add_clip_arguments,
    add_labels_argument,
    add_model_arguments,
    load_model_for_clips,
    log_settings,
)

EPILOG = """\
examples:
  timesformer explain clip.mp4 --checkpoint runs/demo/best.pt --out explain/clip
  timesformer explain clip.mp4 -c best.pt --out ex --method grad_rollout --class 3
  timesformer explain clip.mp4 -c K400.pyth --out ex --class "playing guitar" --json

One test clip is taken as `predict --views 1x1` takes it: under the default `official` protocol
the single clip starts at frame 0 (as the official code's one view does), under `--protocol
centred` it is the middle clip; at the checkpoint's sampling rate (or SSv2-style segments),
short side resized to the model's size, centre crop.

Methods: rollout (default) multiplies every attention step (temporal, spatial, joint, ...) of
every block, mixed with the residual, and reads the class token's row: which patches of which
frames the prediction drew on, for any class. cls: the last block's class-token attention only.
grad_rollout: rollout weighted by the gradient of the --class logit (default: the predicted
class), so the map is specific to that class. See docs/explain.md.

Writes to DIR: grid.png (frames with the heat map), overlay.gif, relevance.png (share of each
frame), maps.npy (float32 T x H x W, summing to 1; each frame sums to its share) and
summary.json (predicted class and probability, per-frame relevance, frame indices and times).
"""


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("video", metavar="VIDEO", help="video file to explain")
    add_model_arguments(p, json_help="print summary.json on stdout")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--method",
        choices=("rollout", "cls", "grad_rollout"),
        default="rollout",
        help="rollout (default), cls (last block only), grad_rollout (class-specific)",
    )
    p.add_argument(
        "--class",
        dest="target",
        default=None,
        metavar="NAME|ID",
        help="class to explain (name or index; default: the predicted one). Changes the map "
        "only with --method grad_rollout; the summary reports its probability in every case",
    )
    add_labels_argument(p)
    add_clip_arguments(p)
    p.add_argument(
        "--smooth",
        action="store_true",
        help="bilinear maps instead of one flat value per patch",
    )
    return p


def run(args: argparse.Namespace) -> int:
    video_path = Path(args.video)
    if video_path.is_dir():
        raise ValueError(f"video {video_path}: a folder, not a video file (explain takes one)")
    if not video_path.is_file():
        raise FileNotFoundError(f"video {video_path} not found")
    from ..files import output_dir

    with output_dir(args.out, "--out folder"):  # before the model runs; removed if it fails
        return _explain(args, video_path)


def _explain(args: argparse.Namespace, video_path: Path) -> int:
    from ..engine.predict import resolve_labels, settings_dict
    from ..engine.runtime import autocast
    from ..models.timesformer import require_head
    from ..tools.explain import explain
    from ..tools.explain_figures import save_explanation
    from ..tools.explain_input import read_clip

    model, settings, device = load_model_for_clips(args)
    require_head(model, str(args.checkpoint))  # before a --labels file is held against it
    names = resolve_labels(model, args.labels)
    video, shown, indices, times = read_clip(video_path, settings)
    from ..engine.records import recorded_warnings

    with recorded_warnings() as caught, autocast(device, args.amp):
        result = explain(
            model,
            video,
            target=args.target,
            method=args.method,
            upsample="bilinear" if args.smooth else "nearest",
            labels=names,
        )
    log_settings(settings)  # after the checks: a bad --target stays one error line
    extra = {
        "video": str(video_path),
        "checkpoint": str(args.checkpoint),
        "frame_indices": indices,
        "frame_times": [round(t, 4) for t in times],
        "settings": settings_dict(settings),
        "warnings": caught,  # e.g. a uniform map on zero relevance: recorded, not hidden
        "preprocess": settings.report(),
    }
    for w in caught:
        print(f"timesformer explain: warning: {w}", file=sys.stderr)
    paths = save_explanation(result, shown, args.out, extra=extra, times=times)
    if args.json:
        print(paths["summary"].read_text(), end="")
        return 0
    peak = int(result.frame_relevance.argmax())
    T = len(result.frame_relevance)
    print(
        f"{video_path}: {result.label(result.predicted)} ({100 * result.probability:.1f}%)"
        f"  method {args.method}, {model.config.attention_type}, {T} frames"
    )
    if result.target != result.predicted:
        print(
            f"  explained class: {result.label(result.target)}"
            f" ({100 * result.target_probability:.1f}%)"
        )
    shares = " ".join(f"{100 * r:.0f}" for r in result.frame_relevance)
    print(f"  relevance per frame (%): {shares}; most: frame {peak} at {times[peak]:.2f} s")
    print(f"  wrote {', '.join(p.name for p in paths.values())} to {Path(args.out)}")
    return 0
