"""Fixtures for the checkpoint-format tests: Hugging Face model directories made here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(
    0, str(Path(__file__).parent)
)  # importlib mode: make _checkpoint_helpers importable

from _checkpoint_helpers import _hf_model  # noqa: E402


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory) -> dict[str, tuple[object, Path, Path]]:
    """attention type -> (HF model, safetensors directory, pytorch_model.bin directory)."""
    out = {}
    for i, at in enumerate(("divided_space_time", "joint_space_time", "space_only")):
        hf = _hf_model(at, seed=i)
        st = tmp_path_factory.mktemp(f"hf_{at}_st")
        pt = tmp_path_factory.mktemp(f"hf_{at}_bin")
        hf.save_pretrained(st)
        # transformers 5 writes safetensors only: the legacy layout is config.json plus a
        # torch.save'd state dict, which transformers itself still reads (checked below)
        hf.config.save_pretrained(pt)
        torch.save(hf.state_dict(), pt / "pytorch_model.bin")
        out[at] = (hf, st, pt)
    return out
