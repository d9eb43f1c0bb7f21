"""`timesformer export CKPT --format onnx|exported-program --out FILE`: a verified deployable model.

Heavy imports happen in `run`, so `timesformer --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import UsageError
from .common import add_allow_pickle_argument

EPILOG = """\
examples:
  timesformer export runs/demo/best.pt --format onnx --out model.onnx
  timesformer export runs/demo/best.pt --format exported-program --out model.pt2 --json

The export has a dynamic batch axis; frames and size are the checkpoint's. It is loaded back
and compared with the PyTorch model at batch 1 and 2 (max |logit difference| must be <= --atol)
before it is kept. The preprocessing contract (frames, rate, size, mean, std, channel order,
class names) is stored inside: ONNX metadata_props, or the .pt2 archive's extra files.
See docs/deploy.md for running each without this package.
"""


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("checkpoint", metavar="CKPT", help="any checkpoint predict accepts")
    add_allow_pickle_argument(p)
    p.add_argument(
        "--format",
        "-f",
        choices=("onnx", "exported-program"),
        default=None,
        help="onnx (onnxruntime and friends) or exported-program (torch.export .pt2); "
        "default: from FILE's suffix (.pt2: exported-program, else onnx)",
    )
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="file to write")
    p.add_argument(
        "--atol", type=float, default=1e-4, help="largest logit difference accepted (default 1e-4)"
    )
    p.add_argument("--no-verify", action="store_true", help="skip the parity check (not advised)")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.add_argument("--json", action="store_true", help="print the export report as JSON")
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    return p


def run(args: argparse.Namespace) -> int:
    from ..deploy.export import ExportError, export_model, load_checkpoint
    from ..files import OutputError, check_output_file

    if not args.atol >= 0:
        raise UsageError(f"--atol must be >= 0; got {args.atol:g}")
    args.format = format_for(args.out, args.format)
    try:
        check_output_file(args.out, what="export")
        model, pre = load_checkpoint(args.checkpoint, allow_pickle=args.allow_pickle)
        if Path(args.out).exists() and not args.force:  # as convert: an old export is kept
            raise OutputError(f"{args.out} exists; pass --force to overwrite it")
        report = export_model(
            model, args.out, args.format, preprocess=pre, atol=args.atol, verify=not args.no_verify
        )
    except (ExportError, OutputError) as e:
        if args.debug:
            raise
        print(f"timesformer export: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        diffs = ", ".join(f"batch {b}: {d:.1e}" for b, d in report.max_abs_diff.items())
        print(f"wrote {report.path} ({report.format}, input {report.input_shape})")
        print(f"verified against PyTorch: max |logit diff| {diffs or 'not checked'}")
    if args.format == "exported-program" and Path(args.out).suffix.lower() != ".pt2":
        print(
            f"note: torch.export.load warns on names not ending in .pt2; consider renaming "
            f"{args.out} to {Path(args.out).with_suffix('.pt2').name}",
            file=sys.stderr,
        )
    return 0


_SUFFIXES = {"onnx": ".onnx", "exported-program": ".pt2"}


def format_for(out: str, fmt: str | None) -> str:
    """The export format: `fmt`, or the one FILE's suffix names; a suffix of the other format
    is refused (a .pt2 file holding ONNX would fail to load where it is used)."""
    suffix = Path(out).suffix.lower()
    named = next((f for f, s in _SUFFIXES.items() if s == suffix), None)
    if fmt is None:
        return named or "onnx"
    if named is not None and named != fmt:  # the command line disagrees with itself: exit 2
        raise UsageError(
            f"--out {out} has the suffix of {named}, but --format is {fmt}; "
            f"name it {Path(out).with_suffix(_SUFFIXES[fmt]).name} or drop --format"
        )
    return fmt
