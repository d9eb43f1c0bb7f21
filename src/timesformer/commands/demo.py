"""`timesformer demo`: the paper's main finding in miniature, end to end, on a CPU.

The work is `timesformer.engine.demo.run_demo`; this module parses the options and prints.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.description = (
        "Render the synthetic motion dataset, train a divided space-time TimeSformer and a "
        "space-only twin (configs/demo.yaml), evaluate both with multi-view testing, predict "
        "one video and print a table. About 3-5 minutes on 2 CPU cores; outputs in runs/demo."
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument(
        "--quick", action="store_true", help="a tiny smoke run (seconds; accuracy is meaningless)"
    )
    p.add_argument(
        "--sequential",
        action="store_true",
        help="train the two models one after the other (default: side by side, one core each)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the demo recipe")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def run(args: argparse.Namespace) -> int:
    from ..engine.demo import results_table, run_demo
    from ..files import output_dir

    quiet = bool(args.json)
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if quiet else print
    # checked before minutes of training; a run that fails at once (a bad override) leaves no
    # empty folder behind
    with output_dir(args.out, "--out folder"):
        summary = run_demo(
            args.out,
            quick=args.quick,
            sequential=args.sequential,
            overrides=list(args.overrides),
            quiet=quiet,
            say=say,
        )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        pred = summary["prediction"]
        print()
        print(results_table(summary))
        top = ", ".join(f"{n} {100 * p:.1f}%" for n, p in pred["top"])
        print(f"\npredict {pred['video']} (true: {pred['true']}): {top}")
        print(f"\ndone in {summary['seconds'] / 60:.1f} min; everything is in {summary['out']}/")
    return 0
