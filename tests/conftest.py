"""Shared pytest setup: small CPU thread count and deterministic seeds."""

import sys
from pathlib import Path

import pytest
import torch

# importlib mode: make the shared test helpers here (e.g. _fuzz_runner) importable
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
