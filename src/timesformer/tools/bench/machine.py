"""The machine and the library versions a benchmark ran on."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

import torch

# ---------------------------------------------------------------------------------------------
# Machine


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """CPU, cores, threads, accelerator and library versions of this run."""
    import numpy

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
        have = (
            set(text.split("flags", 1)[1].split("\n", 1)[0].split()) if "flags" in text else set()
        )
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in have)
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "device": device,
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    info["timesformer"] = package_version()
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def package_version() -> str:
    """This package's installed version (from its metadata); "0+unknown" when not installed."""
    try:
        return importlib.metadata.version("timesformer")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
