"""`timesformer study table1|table4|fig5|all [--quick] [--seeds N] --out DIR`: the paper's
ablations in miniature, on two rendered datasets (docs/study.md)."""

from __future__ import annotations

import argparse
import shlex
import sys

from . import UsageError
from .common import positive_int


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.description = (
        "Rerun the paper's comparisons in miniature: Table 1 (five attention schemes), Table 4 "
        "(position embeddings), Figure 5 (frames and resolution), each cell trained from scratch "
        "over several seeds on a rendered appearance dataset (Kinetics-like) and a rendered "
        "motion dataset (Something-Something-like). Writes DIR/report.md, DIR/results.json and "
        "PNG plots; resumable run by run (DIR/cells/)."
    )
    p.add_argument("studies", nargs="+", metavar="STUDY", help="table1, table4, fig5 or all")
    p.add_argument("--out", required=True, help="output folder (report, results, cells)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smaller recipe (fewer videos and epochs): table1 in under 15 min on 2 cores",
    )
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per cell (default 3)")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="parallel training processes (default: min(cores, 2)); threads are split among them",
    )
    p.add_argument("--scale", default=None, help=argparse.SUPPRESS)  # tests: --scale tiny
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def run(args: argparse.Namespace) -> int:
    from ..engine.study import parse_studies, run_study
    from ..files import OutputError

    try:  # a mistyped study name is the command line's mistake: exit 2, before any work
        parse_studies(args.studies)
    except ValueError as e:
        raise UsageError(str(e)) from None
    scale = args.scale or ("quick" if args.quick else "full")
    command = _command_line(args)
    try:
        result = run_study(
            args.studies,
            args.out,
            scale=scale,
            seeds=args.seeds,
            workers=args.workers,
            command=command,
            log=lambda s: print(s, flush=True),
        )
    except OutputError as e:
        if args.debug:
            raise
        print(f"timesformer study: error: {e}", file=sys.stderr)
        return 1
    print(f"\n{result.ran} runs done, {result.skipped} reused; {result.seconds / 60:.1f} min")
    for name, path in result.files.items():
        print(f"  {name}: {path}")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The command line, rebuilt from the parsed arguments, for the report."""
    parts = ["timesformer", "study", *args.studies, "--out", args.out]
    if args.quick:
        parts.append("--quick")
    if args.seeds != 3:
        parts += ["--seeds", str(args.seeds)]
    if args.workers is not None:
        parts += ["--workers", str(args.workers)]
    if args.scale:
        parts += ["--scale", args.scale]
    return " ".join(shlex.quote(p) for p in parts)
