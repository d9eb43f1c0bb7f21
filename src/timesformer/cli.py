"""The `timesformer` command: parses arguments and hands each subcommand to its module.

Each subcommand lives in `timesformer.commands.<name>` and exposes
`register(subparsers) -> argparse.ArgumentParser` and `run(args) -> int`. Modules are imported
only when their command runs, so `timesformer --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, NoReturn

from .commands import UsageError, usage_line

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
    """The top-level parser and {command: module} of the commands that import."""
    parser, available, _ = _build()
    return parser, available


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: `timesformer predict: error: argument --frames: ...
    (see timesformer predict --help)`, exit status 2; subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        text = " ".join(message.split())
        self.exit(2, usage_line(self.prog, text) + "\n")


def _build() -> tuple[argparse.ArgumentParser, dict[str, str], dict[str, argparse.ArgumentParser]]:
    parser = _Parser(
        prog="timesformer",
        description="TimeSformer video transformers: train, evaluate, predict, explain, bench.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    available: dict[str, str] = {}
    parsers: dict[str, argparse.ArgumentParser] = {}
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:  # command not built (yet)
                continue
            raise
        parsers[name] = sub.add_parser(name, help=help_text, description=help_text)
        mod.register(parsers[name])
        available[name] = module
    return parser, available, parsers


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse `argv`: the command's own parser reads everything after the command name, with
    options and positionals intermixed where argparse allows it (so `eval --config c.yaml
    data.root=x -c best.pt data.test_list=y` keeps both overrides), and its own usage line in
    errors (an unknown flag of `predict` shows predict's usage, not the top level's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, _, parsers = _build()
    if not argv or argv[0] not in parsers:
        return parser.parse_args(argv)  # --help, --version, an unknown command, no command
    name, rest = argv[0], argv[1:]
    sub = parsers[name]
    rest = _attach_negative_values(sub, rest)
    if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
        args = sub.parse_args(rest)  # nested commands (data check/...): argparse's own rules
    else:
        try:
            args = sub.parse_intermixed_args(rest)
        except TypeError:  # a feature intermixed parsing does not support
            args = sub.parse_args(rest)
    args.command = name
    return args


def _attach_negative_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`--views -1x3` as `--views=-1x3`: argparse takes a value that starts with "-" and a
    digit (but is not a plain number) for an option, and says only "expected one argument";
    attached, the option's own check names what is wrong with the value."""
    takes_one = {
        s for a in parser._actions if a.option_strings and a.nargs is None for s in a.option_strings
    }
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if (
            tok in takes_one
            and len(nxt) > 1
            and nxt[0] == "-"
            and (nxt[1].isdigit() or nxt[1] == ".")
        ):
            out.append(f"{tok}={nxt}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


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
    OutputError (an OSError) is an output location that cannot be written; any other OSError
    (a full disk, a permission) is printed as its file and reason.
    """
    from .files import OutputError

    return (FileNotFoundError, OutputError, ValueError, RuntimeError, KeyError, OSError)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status. Ctrl-C at any point (importing torch included) is
    "interrupted" and 130, not a traceback."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8: its own bytes
        if hasattr(stream, "reconfigure") and getattr(stream, "errors", "") == "strict":
            stream.reconfigure(errors="surrogateescape")
    args = _parse(argv)
    if args.command is None:
        build_parser()[0].print_help()
        return 2
    mod = importlib.import_module(COMMANDS[args.command][0])
    import warnings

    python_format = warnings.formatwarning
    if not getattr(args, "debug", False):
        _compact_warnings(args.command)
    try:
        return _run(mod, args)
    finally:
        warnings.formatwarning = python_format  # main() called in-process leaves it as it was


def _run(mod: Any, args: argparse.Namespace) -> int:
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
    except UsageError as e:
        if getattr(args, "debug", False):
            raise
        print(usage_line(f"timesformer {args.command}", str(e)), file=sys.stderr)
        return 2
    except _one_line_errors() as e:
        if getattr(args, "debug", False):
            raise
        text = str(e).strip()
        if isinstance(e, KeyError) and e.args:
            text = str(e.args[0])
        elif type(e) in (OSError, PermissionError, IsADirectoryError) and e.strerror:
            # a bare OSError (a full disk, a permission): the file and the reason, no errno
            text = f"{e.filename}: {e.strerror}" if e.filename else e.strerror
        msg = text.splitlines()[0] if text else type(e).__name__
        rank = _rank_of_job()
        if rank:
            from .engine.config import ConfigError

            if isinstance(e, ConfigError):
                return 1  # the same on every rank: rank 0 says it once
            msg = f"[rank {rank}] {msg}"
        print(f"timesformer {args.command}: error: {msg}", file=sys.stderr)
        return 1


def _compact_warnings(command: str) -> None:
    """Python warnings as one line each ("timesformer predict: warning: ..."), without the
    file, line and source of the code that raised them (--debug keeps Python's format)."""
    import warnings

    glyphs: list[str] = []

    def fmt(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
        if str(message).startswith("Glyph ") and "missing from font" in str(message):
            # matplotlib warns once per missing character of a class name: say it once
            glyphs.append(str(message))
            if len(glyphs) > 1:
                return ""
            message = "a label has characters the plot's font lacks: figures show them as boxes"
        return f"timesformer {command}: warning: {message}\n"

    warnings.formatwarning = fmt  # type: ignore[assignment]


def _rank_of_job() -> int:
    """This process's rank under torchrun (0 alone or on the main rank)."""
    import os

    try:
        return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0
    except ValueError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
