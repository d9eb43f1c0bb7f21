"""`timesformer bench`: cost, speed and memory of a model, side by side with Hugging Face."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from ..models.config import ATTENTION_TYPES, PRESETS
from ..tools import bench as B
from . import UsageError
from .common import non_negative_int, positive_int

EPILOG = """\
examples:
  timesformer bench                                  base 8x224 divided: cost, latency, memory
  timesformer bench --compare hf --dtype fp32 bf16   side by side with transformers' Timesformer
  timesformer bench --attention-type all --no-memory every scheme, time only
  timesformer bench --model timesformer_small --train --compare hf
                                                     training step, with/without checkpointing
  timesformer bench --sweep --plot fig3.png          paper Figure 3, counted (no big runs)
  timesformer bench --standard --write docs/performance.md   what `make bench` runs

Latency is the median of --repeats runs after --warmup, ours and theirs alternating in one
process. Peak memory is measured in a fresh process per case (CPU: resident-set growth; GPU:
max_memory_allocated). Ratios are ours / theirs: below 1 is better for us.
"""


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    g = p.add_argument_group("what to measure")
    g.add_argument(
        "--data",
        nargs=argparse.REMAINDER,
        default=None,
        metavar="ARGS",
        help="data-loading throughput instead of the model: exact reader vs decode-all on "
        "rendered Kinetics-like videos; the rest of the line goes to that benchmark "
        "(e.g. --data --workers 0 2 --out data.json; --data --help lists its options)",
    )
    g.add_argument("--model", default="timesformer_base", choices=list(PRESETS),
                   help="preset (default timesformer_base)")  # fmt: skip
    g.add_argument(
        "--attention-type",
        nargs="+",
        default=None,
        metavar="TYPE",
        help=f"one or more of {', '.join(ATTENTION_TYPES)}, or 'all' (default: the preset's)",
    )
    g.add_argument(
        "--frames", type=positive_int, default=None, help="frames per clip (default: preset)"
    )
    g.add_argument(
        "--img-size", type=positive_int, default=None, help="frame size (default: preset)"
    )
    g.add_argument("--batch-size", type=positive_int, default=1, help="clips per step (default 1)")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="other model options, e.g. --set depth=2 --set embed_dim=192",
    )
    g.add_argument(
        "--dtype",
        nargs="+",
        default=["fp32"],
        choices=list(B.DTYPES),
        help="fp32 and/or bf16 (default fp32)",
    )
    g.add_argument("--compile", action="store_true",
                   help="torch.compile both models (inference: weights frozen into the graph)")  # fmt: skip
    g.add_argument(
        "--cast-weights",
        action="store_true",
        help="bf16: cast both models' weights and the clip to bf16 once (no autocast)",
    )
    g.add_argument(
        "--optimizer",
        action="store_true",
        help="with --train: forward + backward + an AdamW step (same optimizer for both), "
        "no checkpointing comparison",
    )
    g.add_argument(
        "--attention-kernel",
        default="auto",
        choices=["sdpa", "explicit", "joined", "auto"],
        help="ours, inference: SDPA, explicit batched matmul + softmax, SDPA over short "
        "groups joined under a block mask, or the fastest per shape measured once (default "
        "auto, as the model's default)",
    )
    g.add_argument(
        "--train",
        action="store_true",
        help="forward + backward step, with and without checkpointing",
    )
    g.add_argument(
        "--compare",
        action="append",
        default=[],
        choices=["hf", "baseline"],
        help="also run hf: Hugging Face transformers' Timesformer (same geometry, random "
        "weights); baseline: ours with the inference fast path off",
    )
    g.add_argument("--sweep", action="store_true", help="paper Figure 3 cost sweep (counted)")
    g.add_argument("--plot", default=None, metavar="PNG", help="write the sweep as a PNG here")
    g.add_argument(
        "--standard",
        action="store_true",
        help="the standard set of `make bench` (goal cases, training, Figure 3)",
    )
    h = p.add_argument_group("how")
    h.add_argument(
        "--repeats", type=positive_int, default=5, help="timed runs per model (default 5)"
    )
    h.add_argument(
        "--warmup", type=non_negative_int, default=1, help="untimed runs first (default 1)"
    )
    h.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    h.add_argument(
        "--no-time",
        action="store_true",
        help="skip timing; report the single run of the memory measurement (big cases)",
    )
    h.add_argument(
        "--device", default=None, help="cpu or cuda[:N] (default: cuda when available, else cpu)"
    )
    h.add_argument(
        "--threads", type=positive_int, default=None, help="torch threads (default: torch's)"
    )
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print the full report as JSON")
    o.add_argument(
        "--write", default=None, metavar="MD", help="write the Markdown report into this file"
    )
    o.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    o.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    return p


def _overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. depth=2")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _attention_types(values: list[str] | None) -> list[str | None]:
    if not values:
        return [None]
    if values == ["all"]:
        return list(ATTENTION_TYPES)
    for v in values:
        if v not in ATTENTION_TYPES:
            raise UsageError(f"--attention-type {v!r} is not one of {', '.join(ATTENTION_TYPES)}")
    return list(values)


# what --standard runs is fixed: of the flags, it reads only these (and --data none at all)
_STANDARD_READS = ("device", "compare", "write", "plot", "threads", "json", "quiet", "sweep")


def _unused_flags(args: argparse.Namespace, keep: tuple[str, ...]) -> list[str]:
    """The flags given a value other than their default that are not among `keep`."""
    defaults = vars(register(argparse.ArgumentParser()).parse_args([]))
    return [
        "--" + dest.replace("_", "-")
        for dest, default in defaults.items()
        if dest not in keep and getattr(args, dest, default) != default
    ]


def pick_bench_device(spec: str | None) -> str:
    """`--device` checked before any measurement: cpu, cuda or cuda:N (default: cuda when
    available, else cpu). A bad form is a UsageError; CUDA missing here a RuntimeError."""
    if spec is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda") or (dev.type == "cpu" and dev.index):
        raise UsageError(f"--device {spec!r}: expected cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {spec}: torch sees no CUDA device here")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise RuntimeError(f"--device {spec}: torch sees {count} CUDA device(s) here")
    return spec


def check_args(args: argparse.Namespace) -> str:
    """Every flag and combination checked before anything is measured; the device."""
    if args.data is not None:
        unused = _unused_flags(args, ("data",))
        if unused:
            raise UsageError(
                f"--data takes its own options after it; {', '.join(unused)} before it would "
                "not be used (timesformer bench --data --help lists them)"
            )
        return ""
    if args.standard:
        unused = _unused_flags(args, ("standard", *_STANDARD_READS))
        if unused:
            raise UsageError(f"--standard runs a fixed set of cases; {', '.join(unused)} would "
                             "not be used")  # fmt: skip
    if args.optimizer and not args.train:
        raise UsageError("--optimizer needs --train (it adds an AdamW step to the training step)")
    if args.cast_weights and "bf16" not in args.dtype:
        raise UsageError("--cast-weights needs --dtype bf16 (fp32 weights are already fp32)")
    if args.no_time and args.train and not args.optimizer:
        raise UsageError("--no-time does not apply to --train (the steps with and without "
                         "checkpointing are always timed); add --optimizer or drop --no-time")  # fmt: skip
    _attention_types(args.attention_type)
    return pick_bench_device(args.device)


def run(args: argparse.Namespace) -> int:
    device = check_args(args)
    if args.data is not None:
        from ..tools.bench.data import main as data_bench

        return data_bench(list(args.data), prog="timesformer bench --data")
    from ..files import check_output_file

    if args.write:  # before minutes of timing
        check_output_file(args.write, "--write file")
    if getattr(args, "plot", None):
        check_output_file(args.plot, "--plot file")
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    compare = tuple(dict.fromkeys(args.compare))

    with B.num_threads(args.threads):
        if args.standard:
            png = None
            if args.write:
                png = Path(args.write).with_name(Path(args.write).stem + "_figure3.png")
            elif args.plot:
                png = Path(args.plot)
            report = B.run_standard(device, compare or ("hf",), sweep_png=png, log=log)
        else:
            report = _run_selected(args, device, compare, log)

    report = B.json_safe(report)
    if args.write:
        path = B.write_markdown(report, args.write)
        log(f"wrote {path}")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(B.to_markdown(report), end="")
    return 0


def _run_selected(
    args: argparse.Namespace, device: str, compare: tuple[str, ...], log: Any
) -> dict[str, Any]:
    overrides = _overrides(args.set)
    try:
        B.Case(model=args.model, overrides=overrides)  # a bad --set: one line naming it
    except (TypeError, ValueError) as e:
        given = " ".join(f"--set {k}={v}" for k, v in overrides.items())
        raise ValueError(f"{given}: {str(e).strip().splitlines()[0]}") from None
    cases = [
        B.Case(
            model=args.model,
            attention_type=att,
            frames=args.frames,
            img_size=args.img_size,
            batch_size=args.batch_size,
            dtype=dtype,
            compile=args.compile,
            train=args.train,
            device=device,
            overrides=overrides,
            cast_weights=args.cast_weights and dtype != "fp32",
            optimizer=args.optimizer and args.train,
            attention_kernel=args.attention_kernel,
        )
        for att in _attention_types(args.attention_type)
        for dtype in args.dtype
    ]
    report = B.new_report(device)
    timing = not args.no_time
    if timing:
        report["matmul_peak_flops"] = B.peaks_for({c.dtype for c in cases}, device, log)
    geometry = dict(overrides)
    if args.frames:
        geometry["num_frames"] = args.frames
    if args.img_size:
        geometry["img_size"] = args.img_size
    report["cost"] = [
        c for c in B.cost_table(args.model, geometry) if c["attention_type"] in _types(cases)
    ]
    for case in cases:
        kw = dict(
            compare=compare,
            repeats=args.repeats,
            warmup=args.warmup,
            memory=not args.no_memory,
            peaks=report["matmul_peak_flops"],
            log=log,
        )
        if case.train and case.optimizer:  # the whole optimizer step, ours vs theirs
            report["train_steps"].append(B.run_case(case, time_it=timing, **kw))
        elif case.train:
            report["train"].append(B.run_train_case(case, **kw))
        else:
            report["cases"].append(B.run_case(case, time_it=timing, **kw))
    B.finish_peaks(report)
    report["sdpa_backends"] = B.sdpa_report({c.dtype for c in cases}, device)
    if args.sweep or args.plot:
        report["sweep"] = B.cost_sweep(args.model, overrides=overrides)
        if args.plot:
            report["sweep_png"] = str(B.plot_sweep(report["sweep"], args.plot))
    return report


def _types(cases: list[B.Case]) -> set[str]:
    return {c.config().attention_type for c in cases}
