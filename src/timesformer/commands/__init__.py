"""Subcommands of the `timesformer` CLI: each module has `register(parser)` and `run(args)`."""


class UsageError(ValueError):
    """A bad flag value or combination found after parsing: exit 2, as argparse's own errors.

    Here, not in cli.py: `python -m timesformer.cli` runs cli.py as `__main__`, and a class
    defined there would be a second class, which its handler would not catch."""


def usage_line(prog: str, text: str) -> str:
    """The one-line usage error every command prints (argparse's and UsageError's alike)."""
    return f"{prog}: error: {text} (see {prog} --help)"
