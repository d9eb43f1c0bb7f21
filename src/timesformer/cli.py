"""The `timesformer` command: parses arguments and hands each subcommand to its module.

Each subcommand lives in `timesformer.commands.<name>` and exposes
`register(subparsers) -> argparse.ArgumentParser` and `run(args) -> int`. Modules are imported
only when their command runs, so `timesformer --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("timesformer.commands.models", "list presets with parameters and GMACs"),
    "synth": ("timesformer.commands.synth", "render a labelled synthetic video dataset"),
    "train": ("timesformer.commands.train", "train or fine-tune from a YAML config"),
    "eval": ("timesformer.commands.eval", "multi-view evaluation of a checkpoint"),
    "predict": ("timesformer.commands.predict", "top-k labels for videos of any length"),
    "explain": ("timesformer.commands.explain", "space-time attention maps over a video"),
    "bench": ("timesformer.commands.bench", "cost, speed and memory, side by side with peers"),
    "convert": ("timesformer.commands.convert", "convert checkpoints between formats"),
    "demo": ("timesformer.commands.demo", "the embedded default, end to end"),
    "data": ("timesformer.commands.data", "check, re-encode and list a folder of your videos"),
    "export": (
        "timesformer.commands.export",
        "verified ONNX / torch.export model with its contract",
    ),
    "serve": ("timesformer.commands.serve", "HTTP API and web page for a checkpoint"),
    "extract": ("timesformer.commands.extract", "embeddings per video or per window, sharded"),
    "study": ("timesformer.commands.study", "the paper's ablations in miniature, over seeds"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    parser = argparse.ArgumentParser(
        prog="timesformer",
        description="TimeSformer video transformers: train, evaluate, predict, explain, bench.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    available: dict[str, str] = {}
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:  # command not built (yet)
                continue
            raise
        mod.register(sub.add_parser(name, help=help_text, description=help_text))
        available[name] = module
    return parser, available


def _version() -> str:
    """The installed package's version (importlib.metadata), or "unknown" from a bare tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("timesformer")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _one_line_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can fix: printed as one line (the full traceback with --debug).

    ValueError covers its subclasses (the config's, InputError, ConfigChangedError, ...);
    OutputError (an OSError) is an output location that cannot be written.
    """
    from .files import OutputError

    return (FileNotFoundError, OutputError, ValueError, RuntimeError, KeyError)


def main(argv: list[str] | None = None) -> int:
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    mod = importlib.import_module(COMMANDS[args.command][0])
    try:
        code = int(mod.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler below
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `timesformer predict ... --json | head -1`: the reader left; exit quietly, and point
        # stdout at devnull so the interpreter's final flush does not complain
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports it
    except _one_line_errors() as e:
        if getattr(args, "debug", False):
            raise
        text = str(e).strip()
        if isinstance(e, KeyError) and e.args:
            text = str(e.args[0])
        msg = text.splitlines()[0] if text else type(e).__name__
        print(f"timesformer {args.command}: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
