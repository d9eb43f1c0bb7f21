"""Shared pytest setup: small CPU thread count and deterministic seeds."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
