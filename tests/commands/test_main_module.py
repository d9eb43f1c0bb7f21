"""`python -m timesformer` runs the same command as the `timesformer` script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import timesformer


def test_python_m_timesformer_runs_the_cli():
    src = str(Path(timesformer.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "timesformer", "predict", "--help"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: timesformer predict")
