"""Where and how a model runs: the device pick, the one autocast helper, the stop flag.

`amp` is spelled the same everywhere (config, every command's `--amp`, the bench's dtypes):
"off"/"fp32" (full precision), "bf16", "fp16" (CUDA only).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import sysconfig
import threading
from typing import Any

import torch

from .config import ConfigError
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
    device: torch.device | str, amp: str | torch.dtype | None, *, fp16_on_cpu: bool = False
) -> contextlib.AbstractContextManager:
    """Autocast context for `amp` on `device`; a no-op for full precision.

    fp16 needs CUDA for inference; training (with its grad scaler) passes `fp16_on_cpu=True`,
    since CPU autocast in float16 works there and the tests run it.
    """
    device = torch.device(device)
    dtype = amp_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    if dtype == torch.float16 and device.type != "cuda" and not fp16_on_cpu:
        raise ValueError("amp='fp16' needs a CUDA device; use 'bf16' on the CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)


class StopFlag:
    """SIGINT/SIGTERM set a flag that a long loop checks at safe points (training: after each
    optimizer step); a second Ctrl-C stops at once. Signal handlers only on the main thread."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def compile_for_training(net: torch.nn.Module, device: torch.device, mode: str = "default") -> Any:
    """`net` under torch.compile (inductor) for training steps; the eager module stays reachable
    as `._orig_mod` (validation runs it: another graph would cost another compile).

    Why: inductor fuses the step's pointwise work (LayerNorm, GELU, softmax, casts, residuals)
    around the matmuls; measured on a 2-core CPU, a bf16 timesformer_small step ran about 15%
    faster after a compile of about 2.5 minutes (docs/performance.md). Raises ConfigError (one
    line) where inductor cannot run: no C++ compiler on the CPU, no Triton on CUDA.
    """
    check_inductor(device, "train.compile=true", "set train.compile=false")
    return torch.compile(net, mode=mode)


def check_inductor(device: torch.device, what: str, instead: str) -> None:
    """ConfigError (one line naming `what`) where inductor cannot run on `device`: no C++
    compiler on the CPU, no Triton on CUDA."""
    if device.type == "cpu":
        cxx = os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "g++"
        found = [c for c in (cxx.split()[0], "g++", "clang++", "c++") if shutil.which(c)]
        if not found:
            raise ConfigError(
                f"{what} needs a C++ compiler (g++ or clang++) for inductor on the CPU, and "
                f"none is on PATH; install one or {instead}"
            )
    elif device.type == "cuda" and importlib.util.find_spec("triton") is None:
        raise ConfigError(
            f"{what} needs Triton on CUDA (pip install triton), which is not installed; {instead}"
        )


def compile_for_inference(model: torch.nn.Module, device: torch.device, rows: int) -> None:
    """Run `model.forward` and `model.forward_features` through torch.compile (inductor, weights
    frozen into the graph), in place, always on batches of exactly `rows` inputs.

    Why: inductor fuses attention and the pointwise work around the matmuls; measured on 2 AMX
    cores, base 8x224 bf16 ran at 0.67x its eager time (docs/performance.md, round 7). A graph is
    compiled per input shape (minutes for a base model on a few cores), so every call is cut
    into batches of `rows` and the last one is padded with copies of its last input (their
    outputs are dropped): one compile per function for the whole process. Calls must come
    under torch.no_grad() (freezing is for inference). ConfigError where inductor cannot run.
    """
    check_inductor(device, "--compile", "leave --compile out")
    options = {"freezing": True}
    for name in ("forward", "forward_features"):
        fn = torch.compile(getattr(model, name), options=options, dynamic=False)
        setattr(model, name, _fixed_rows(fn, rows))


def _fixed_rows(fn: Any, rows: int) -> Any:
    """`fn(x, ...)` on x (N, ...) as calls on exactly `rows` inputs each, the outputs joined."""

    def run(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        outs = []
        for i in range(0, x.shape[0], rows):
            part = x[i : i + rows]  # (k, ...), k <= rows
            k = part.shape[0]
            if k < rows:  # pad with the last input: the same shape for every call
                part = torch.cat([part, part[-1:].expand(rows - k, *part.shape[1:])])
            outs.append(fn(part, *args, **kwargs)[:k])  # (k, ...)
        return torch.cat(outs)

    return run
