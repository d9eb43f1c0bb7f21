"""Which scaled-dot-product-attention kernels run, and which ones accept a shape here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .cases import DTYPES

# ---------------------------------------------------------------------------------------------
# SDPA kernels and gradient checkpointing checks


_SDPA_KERNELS = (
    ("flash", "flash"),
    ("efficient", "memory-efficient"),
    ("cudnn", "cudnn"),
    ("math", "math"),
)


def sdpa_kernels_used(fn: Callable[[], Any]) -> list[str]:
    """Names of the SDPA kernels that ran during `fn` (flash / memory-efficient / cudnn / math).

    Counts the calls of `scaled_dot_product_attention` and the fused aten kernels they reached at
    the dispatcher; calls that reached none ran the math path (plain matmul and softmax ops).
    """
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

    calls = [0]
    fused: dict[str, int] = {}

    class Calls(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is F.scaled_dot_product_attention:
                calls[0] += 1
            return func(*args, **(kwargs or {}))

    class Kernels(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.name()
            if "scaled_dot_product" in name and "backward" not in name:
                fused[name] = fused.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    with Calls(), Kernels():
        fn()
    found = [label for key, label in _SDPA_KERNELS[:-1] if any(key in n for n in fused)]
    if calls[0] > sum(fused.values()):
        found.append("math")
    return found


def sdpa_backends_available(
    shape: tuple[int, int, int, int], dtype: str = "fp32", device: str = "cpu"
) -> dict[str, bool]:
    """Which SDPA backends accept q, k, v of `shape` (B, heads, L, head_dim) here."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "memory-efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }
    q = torch.randn(shape, device=device, dtype=DTYPES[dtype])
    out: dict[str, bool] = {}
    for name, backend in backends.items():
        try:
            with sdpa_kernel([backend]):
                F.scaled_dot_product_attention(q, q, q)
            out[name] = True
        except RuntimeError:
            out[name] = False
    return out


def sdpa_report(dtypes: set[str], device: str) -> dict[str, dict[str, bool]]:
    """For each dtype: which SDPA backends accept the base model's spatial-attention shape."""
    return {d: sdpa_backends_available((8, 12, 197, 64), d, device) for d in sorted(dtypes)}


def attention_choices() -> list[str]:
    """The "auto" attention kernel's choices so far in this process, one line per shape:
    "L=8 x2352 bf16 cpu: explicit" (sequence length x groups*heads, dtype, device)."""
    from ...models import kernels

    return [
        f"L={L} x{gh} {str(dtype).removeprefix('torch.')} {dev}: {k}"
        for (L, gh, _d, dtype, dev), k in sorted(kernels.choices().items(), key=str)
    ]
