"""`timesformer eval --config FILE --checkpoint P [key=value ...]`: multi-view testing.

Heavy imports (torch, the engine, the data code) happen in `run`, so `timesformer --help`
stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  timesformer eval --config runs/demo/config.yaml --checkpoint runs/demo/best.pt
  timesformer eval --config k400 --checkpoint TimeSformer_divST_8x32_224_K400.pyth \\
      data.root=/data/k400 data.test_list=/data/k400/val.csv data.test_views=1x3
  torchrun --nproc_per_node 4 -m timesformer.cli eval --config k400 --checkpoint P

Videos come from data.test_list (or data.val_list with --split val); each is cut into
data.test_views = K temporal clips x S spatial crops, and the view scores are aggregated per
video (--aggregate). Written to OUTPUT_DIR/eval/: summary.json, predictions.csv,
confusion.csv, confusion.png, failed.txt (videos that could not be decoded: counted and listed,
never dropped silently).
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
    p.add_argument(
        "--checkpoint",
        "-c",
        required=True,
        metavar="P",
        help="our .pt / .safetensors, an official .pyth, or a Hugging Face directory",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument(
        "--split", choices=("test", "val"), default="test", help="data.test_list or data.val_list"
    )
    p.add_argument(
        "--aggregate",
        choices=("mean_softmax", "sum_logits"),
        default="mean_softmax",
        help="combine views by mean probability (default) or summed logits (official)",
    )
    p.add_argument("--views", default=None, metavar="KxS", help="overrides data.test_views")
    p.add_argument("--batch-size", type=int, default=None, help="default: train.batch_size")
    p.add_argument("--output", default=None, metavar="DIR", help="default: OUTPUT_DIR/eval")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    return p


def run(args: argparse.Namespace) -> int:
    from ..data import VideoDataset
    from ..engine.config import load_config, parse_views
    from ..engine.evaluate import evaluate, write_eval_outputs
    from ..engine.predict import resolve_labels
    from ..models.weights import from_pretrained

    cfg = load_config(args.config, list(args.overrides))
    d = cfg.data
    list_file = d.test_list if args.split == "test" else d.val_list
    if list_file is None:
        other = d.val_list if args.split == "test" else d.test_list
        hint = f" (data.{'val' if args.split == 'test' else 'test'}_list is {other!r})"
        raise ValueError(
            f"{args.config}: data.{args.split}_list is not set; give it as an override, e.g. "
            f"data.{args.split}_list=PATH" + (hint if other else "")
        )
    views = parse_views(args.views or d.test_views, "--views" if args.views else "test_views")
    dist = _distributed(cfg.train.device)
    device = dist.device
    model = from_pretrained(args.checkpoint).to(device).eval()
    mc = model.config
    size = mc.img_size if isinstance(mc.img_size, int) else min(mc.img_size)
    labels = resolve_labels(model, d.labels)
    dataset = VideoDataset(
        list_file,
        root=d.root,
        mode=args.split,
        num_frames=d.num_frames or mc.num_frames,
        sampling_rate=d.sampling_rate,
        target_fps=d.target_fps,
        sampler=d.sampler,
        test_views=views,
        crop_size=d.crop_size or size,
        mean=d.mean,
        std=d.std,
        channel_order=d.channel_order,
        num_classes=mc.num_classes,
        label_names=labels,
        separator=d.list_separator,
        upright=d.upright,
    )
    progress = not args.no_progress and cfg.train.progress and dist.rank == 0
    result = evaluate(
        model,
        dataset,
        batch_size=args.batch_size or cfg.train.batch_size,
        aggregate=args.aggregate,
        labels=labels,
        device=device,
        num_workers=d.num_workers,
        amp=cfg.train.amp,
        progress=progress and sys.stderr.isatty(),
        views=f"{views[0]}x{views[1]}",
    )
    if dist.rank != 0:
        _cleanup()
        return 0
    out_dir = Path(args.output) if args.output else Path(cfg.output_dir) / "eval"
    context = {"checkpoint": str(args.checkpoint), "split": args.split, "list": str(list_file)}
    files = write_eval_outputs(result, out_dir, extra=context)
    summary = {**result.summary(), **context, "files": files}
    if args.json:
        print(json.dumps(_safe(summary), indent=2))
    else:
        _print(summary, out_dir)
    for f in result.failed:
        print(f"timesformer eval: could not decode {f['path']}: {f['error']}", file=sys.stderr)
    _cleanup()
    return 0


def _distributed(device: str) -> Any:
    """This process's place in a torchrun job (single process without one)."""
    from ..engine.distributed import init_distributed

    return init_distributed(device)


def _cleanup() -> None:
    """Tear down the process group `_distributed` may have started."""
    from ..engine.distributed import cleanup

    cleanup()


def _safe(obj: Any) -> Any:
    from ..engine.evaluate import _json_safe

    return _json_safe(obj)


def _pct(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.2f}%"


def _print(s: dict[str, Any], out_dir: Path) -> None:
    print(f"checkpoint      {s['checkpoint']}")
    print(f"videos          {s['num_videos']} ({s['split']} list {s['list']})")
    print(f"views           {s['views']} per video, aggregated by {s['aggregate']}")
    print(f"top-1           {_pct(s['top1'])}")
    print(f"top-5           {_pct(s['top5'])}")
    print(f"mean class acc  {_pct(s['mean_class_accuracy'])}")
    failed = s["num_failed"]
    scored = s["num_evaluated"]
    print(f"decode failures {failed} (scored {scored} of {s['num_videos']} videos)")
    print(f"written to      {out_dir}/")
