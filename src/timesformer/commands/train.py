"""`timesformer train --config FILE [key=value ...]`: train or fine-tune a TimeSformer.

Runs as one process, or as one process per device under torchrun (DDP)::

    timesformer train --config configs/k400.yaml data.root=/data/k400 train.amp=bf16
    torchrun --nproc_per_node 4 -m timesformer.cli train --config k400 data.root=/data/k400
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from ..engine.config import RunConfig, list_recipes, load_config, resolve
from .common import add_model_arguments, positive_int


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.description = (
        "Train a TimeSformer from a YAML recipe with key=value overrides (dotted keys, e.g. "
        "optim.lr=0.01 train.amp=bf16). Writes config.yaml, metrics.jsonl, last.pt, best.pt "
        "and curves.png to output_dir; resumes from output_dir/last.pt when it exists. "
        "Under torchrun each process trains one replica (DDP). Validation during training is "
        "clip-level; use `timesformer eval` for video-level multi-view accuracy."
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = f"bundled recipes (name or path): {', '.join(list_recipes())}"
    p.add_argument(
        "--config", required=True, metavar="FILE", help="YAML recipe: a path or a bundled name"
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=0.01"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--resume",
        metavar="CKPT",
        default=None,
        help="resume from this checkpoint (default: output_dir/last.pt when it exists)",
    )
    g.add_argument(
        "--fresh",
        "--no-resume",
        dest="no_resume",
        action="store_true",
        help="start from scratch even if output_dir/last.pt exists (it gets overwritten); "
        "the same as train.resume=false",
    )
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume although the config differs from the checkpoint's: the new lr, weight "
        "decay, schedule and batch apply (default: refuse, listing the differences)",
    )
    p.add_argument(
        "--max-epochs",
        type=positive_int,
        default=None,
        metavar="N",
        help="run at most N epochs now, then stop (resume later); the schedule still spans "
        "train.epochs",
    )
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved config (YAML) and exit"
    )
    add_model_arguments(
        p,
        checkpoint_required=False,
        checkpoint_help="initial weights, any format from_pretrained reads (sets model.pretrained)",
        from_config=True,
        json_help="print the final result (TrainResult) as JSON on stdout",
    )
    return p


def apply_flags(cfg: RunConfig, args: argparse.Namespace) -> RunConfig:
    """The shared flags onto the config: --checkpoint = model.pretrained, --allow-pickle =
    model.allow_pickle, --device = train.device, --amp = train.amp, --no-progress =
    train.progress false. They win over key=value overrides."""
    if args.checkpoint is not None:
        cfg.model.pretrained = str(args.checkpoint)
    if getattr(args, "allow_pickle", False):
        cfg.model.allow_pickle = True
    if args.device is not None:
        cfg.train.device = args.device
    if args.amp is not None:
        cfg.train.amp = args.amp
    if args.no_progress:
        cfg.train.progress = False
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = apply_flags(load_config(args.config, args.overrides), args)
    if args.print_config:
        import yaml

        from ..engine.build import fill_num_classes

        try:  # num_classes as training will set it: from the labels or class folders
            cfg = fill_num_classes(cfg)
        except (OSError, ValueError) as e:
            print(f"note: model.num_classes is the preset's, since the labels could not be read: "
                  f"{e}", file=sys.stderr)  # fmt: skip
        if args.no_resume:  # shown as --fresh runs; the run's config.yaml keeps train.resume,
            cfg.train.resume = False  # so that training from it again goes on from last.pt
        print(yaml.safe_dump(resolve(cfg).to_dict(), sort_keys=False), end="")
        return 0
    from ..engine.train import train

    resume: str | bool | None = args.resume
    if args.no_resume:
        resume = False
    result = train(
        cfg,
        resume=resume,
        max_epochs=args.max_epochs,
        allow_config_change=args.allow_config_change,
        debug=args.debug,
    )
    from ..engine.distributed import env_world

    if env_world()[0] != 0:
        return 0 if result.interrupted is None else _signal_code(result.interrupted)
    if args.json:
        summary = {
            "output_dir": str(result.output_dir),
            "epochs_done": result.epochs_done,
            "steps": result.step,
            "best_val_clip_top1": result.best_metric,
            "last_checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
            "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
            "interrupted": result.interrupted,
            "seconds": round(result.seconds, 1),
            "history": result.history,
        }
        print(json.dumps(summary, indent=2))
    elif result.interrupted:
        pass  # the loop has said where it stopped, what it saved and how to resume
    else:
        best = (
            f"best clip-level val top-1 {100 * result.best_metric:.1f}%"
            if result.best_metric is not None
            else "no validation"
        )
        print(
            f"done: {result.epochs_done} epochs, {result.step} steps in {result.seconds:.0f}s; "
            f"{best}; checkpoints in {result.output_dir}"
        )
    return 0 if result.interrupted is None else _signal_code(result.interrupted)


def _signal_code(name: str) -> int:
    """128 + signal number, as shells report a job stopped by that signal."""
    try:
        return 128 + int(signal.Signals[name])
    except KeyError:
        return 1
