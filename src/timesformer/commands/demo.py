"""`timesformer demo`: placeholder until the engine lands; lists the presets."""

from __future__ import annotations

import argparse

from . import models


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.set_defaults(json=False, attention_type=None)
    return p


def run(args: argparse.Namespace) -> int:
    return models.run(args)
