"""Attention kernels chosen per shape: SDPA, or an explicit batched matmul + softmax.

Why: PyTorch's CPU flash kernel for SDPA is tuned for long sequences; for the short ones of a
TimeSformer (8-token temporal groups, 197-token frames, head size 64) an explicit
`q @ k^T -> softmax -> @ v` over batched matmuls can be faster on some CPUs and slower on
others. So the choice is a measurement, not a rule:

- "sdpa": always `F.scaled_dot_product_attention`;
- "explicit": always the batched matmul path (scores in the input dtype, softmax in fp32);
- "auto" (the default, `DEFAULT_KERNEL`): per (sequence length, groups x heads, head size,
  dtype, device), time both once (a few runs each, the faster median wins) and remember the
  winner for the process. `TIMESFORMER_ATTENTION_KERNEL=sdpa|explicit` fixes the choice for
  every "auto" model of the process (reproducible numbers across processes).

The explicit path is used only without autograd (inference); with autograd every mode is SDPA,
which never keeps the (L, L) weights for the backward pass.
"""

from __future__ import annotations

import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor

KERNELS = ("sdpa", "explicit", "auto")
# The inference default: measured per shape (docs/performance.md: on one CPU the explicit path
# won 8-token temporal attention 2x in fp32 and both shapes 2-4x in bf16, SDPA won 197-token
# spatial attention in fp32; on CUDA "auto" is always SDPA).
DEFAULT_KERNEL = "auto"
ENV_KERNEL = "TIMESFORMER_ATTENTION_KERNEL"  # fixes what "auto" picks, for every shape
_CHOICE: dict[tuple, str] = {}  # "auto" winners, per shape key


def check_kernel(kernel: str) -> str:
    """`kernel` if it is one of KERNELS, else a ValueError naming the choices."""
    if kernel not in KERNELS:
        raise ValueError(f"attention kernel {kernel!r} is not one of {', '.join(KERNELS)}")
    return kernel


def explicit_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d)) v by batched matmuls: q, k, v (G, h, L, d) -> (G, h, L, d).

    Scores are computed in the input dtype (a bf16 matmul where inputs are bf16), the softmax in
    fp32 (as SDPA's kernels do), the weights cast back for the second matmul.
    """
    G, h, L, d = q.shape
    qs = (q * d**-0.5).reshape(G * h, L, d)  # (G*h, L, d), one copy with the scale folded in
    kt = k.reshape(G * h, L, d).transpose(1, 2)  # (G*h, d, L)
    s = torch.bmm(qs, kt)  # (G*h, L, L)
    if s.dtype in (torch.bfloat16, torch.float16) and s.device.type == "cpu":
        # the CPU kernel accumulates in fp32 and writes the input dtype in one pass (an fp32
        # softmax, then a cast, wrote and re-read an fp32 (L, L) copy: 3.5% of a bf16 forward)
        p = torch.softmax(s, dim=-1)  # (G*h, L, L)
    else:
        p = torch.softmax(s, dim=-1, dtype=torch.float32).to(v.dtype)  # (G*h, L, L)
    return torch.bmm(p, v.reshape(G * h, L, d)).view(G, h, L, d)


def _median_time(fn, runs: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def measure_choice(q: Tensor, k: Tensor, v: Tensor, runs: int = 3) -> dict[str, float]:
    """Median seconds of each kernel on this shape (no autograd): {"sdpa": s, "explicit": s}."""
    with torch.no_grad():
        return {
            "sdpa": _median_time(lambda: F.scaled_dot_product_attention(q, k, v), runs),
            "explicit": _median_time(lambda: explicit_attention(q, k, v), runs),
        }


def choose(q: Tensor, k: Tensor, v: Tensor) -> str:
    """The remembered "auto" winner for this shape, measured the first time it is seen."""
    G, h, L, d = q.shape
    key = (L, G * h, d, q.dtype, q.device.type)
    got = _CHOICE.get(key)
    if got is None:
        forced = os.environ.get(ENV_KERNEL, "").strip()
        if forced:
            if forced not in ("sdpa", "explicit"):
                raise ValueError(f"{ENV_KERNEL}={forced!r}: expected 'sdpa' or 'explicit'")
            got = forced
        elif q.device.type != "cpu":  # cuda: flash / memory-efficient kernels; meta: counting
            got = "sdpa"
        else:
            t = measure_choice(q, k, v)
            got = min(t, key=t.get)
        _CHOICE[key] = got
    return got


def choices() -> dict[tuple, str]:
    """The "auto" choices made so far in this process, {(L, G*h, d, dtype, device): kernel}."""
    return dict(_CHOICE)


def attend(q: Tensor, k: Tensor, v: Tensor, kernel: str = "sdpa", dropout_p: float = 0.0) -> Tensor:
    """Attention of q, k, v (G, h, L, d) -> (G, h, L, d) with `kernel` (see the module doc)."""
    if kernel != "sdpa" and dropout_p == 0.0 and not torch.is_grad_enabled():
        if torch.compiler.is_compiling():  # no timing inside a graph: fixed SDPA
            kernel = "sdpa"
        elif kernel == "auto":
            kernel = choose(q, k, v)
        if kernel == "explicit":
            return explicit_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
