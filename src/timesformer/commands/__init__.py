"""Subcommands of the `timesformer` CLI: each module has `register(parser)` and `run(args)`."""
