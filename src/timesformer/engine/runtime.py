"""Where and how a model runs: the device pick and the one autocast helper for the whole engine.

`amp` is spelled the same everywhere (config, every command's `--amp`, the bench's dtypes):
"off"/"fp32" (full precision), "bf16", "fp16" (CUDA only).
"""

from __future__ import annotations

import contextlib

import torch

from .distributed import pick_device as pick_device

AMP_CHOICES = ("off", "bf16", "fp16")
_DTYPES = {"off": None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(amp: str | torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype for an `amp` name (None means full precision)."""
    if amp is None or isinstance(amp, torch.dtype):
        return None if amp in (None, torch.float32) else amp
    if amp not in _DTYPES:
        raise ValueError(f"amp={amp!r} is not one of {', '.join(map(repr, AMP_CHOICES))}")
    return _DTYPES[amp]


def autocast(
    device: torch.device | str, amp: str | torch.dtype | None
) -> contextlib.AbstractContextManager:
    """Autocast context for `amp` on `device`; a no-op for full precision. fp16 needs CUDA."""
    device = torch.device(device)
    dtype = amp_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    if dtype == torch.float16 and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use 'bf16' on the CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)
