"""The child-process runner both fuzz tests use: every case read in a child that may hang
or crash without taking the test run with it."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path


def run_children(child: Path, paths: list[Path], per_file_s: float) -> dict[int, str]:
    """Load every path in child processes; returns case -> outcome line. A child that hangs
    past the limit is killed ("KILLED"), one that dies records "CRASH rc"; the remaining cases
    go to a fresh child."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    outcome: dict[int, str] = {}
    todo = list(range(len(paths)))
    while todo:
        proc = subprocess.Popen(
            [sys.executable, str(child), str(per_file_s)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        assert proc.stdin and proc.stdout
        proc.stdin.write("".join(f"{i}\t{paths[i]}\n" for i in todo))
        proc.stdin.close()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        current, deadline = None, time.monotonic() + 60  # the child's start-up
        while True:
            if not sel.select(timeout=max(deadline - time.monotonic(), 0)):
                proc.kill()
                if current is not None:
                    outcome[current] = "KILLED"
                break
            line = proc.stdout.readline()
            if not line:  # the child ended
                if current is not None:
                    outcome[current] = f"CRASH {proc.wait()}"
                break
            word, i, *rest = line.rstrip("\n").split(" ", 2)
            if word == "START":
                current, deadline = int(i), time.monotonic() + per_file_s + 10
            else:
                outcome[int(i)] = " ".join([word, *rest])
                current = None
        proc.wait()
        sel.close()
        todo = [i for i in todo if i not in outcome]
    return outcome
