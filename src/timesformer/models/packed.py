"""Linears on oneDNN-packed weights (CPU): cached for inference (GELU fused), per step in training.

Why: on the CPU, `F.linear` hands the weight to the matmul library in its plain layout on every
call, and the library re-blocks it each time; a weight packed once into oneDNN's blocked layout
skips that work. Measured on the model's shapes (2 cores of an AVX-512 BF16 EPYC, see
docs/performance.md): bf16 1.05-1.25x and fp32 about 1.35x the GFLOP/s of `F.linear`, bf16
results bit-identical to it, fp32 equal to float rounding (another accumulation order). fc1's
GELU runs as the matmul's post-op (computed before rounding to bf16, not after).

Used only by the eval fast path (`inference.py`), only without autograd, on a CPU tensor, in
fp32 or bf16 (autocast's dtype where autocast is on), and only where this torch has the oneDNN
ops; everywhere else `F.linear`. A packed weight is cached on its module with the same rules as
the fused temporal weight: per weight (address, version), optimizer step, dtype and autocast,
dropped by `Block._apply` / `Block.train` / `set_inference_options`.

Training (`Linear`, the model's nn.Linear): on a CPU in fp32 with autograd, the forward and the
input gradient run on a weight packed for that call (the weights change every step; packing is
one pass over the weight, small next to the rows x in x out matmul), the weight gradient on
`mm`. Measured at timesformer_small's shapes (6276 rows), fp32 GFLOP/s `F.linear` -> packed:
forward 113-121 -> 182-202, input gradient 112-128 -> 152-200 (docs/performance.md). bf16 gains
little there (about 1.15x forward only) and stays on `F.linear`, as do autocast, graphs
(compile, export, tracing) and every other device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.optim.optimizer import register_optimizer_step_post_hook

ROWS_HINT = 1576  # a typical row count (8 frames x 197 tokens): the packing's size hint


def available() -> bool:
    """Whether this torch build has the oneDNN packed-linear ops (CPU builds normally do)."""
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


_AVAILABLE = available()


def _bf16_ok() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


_BF16_OK = _AVAILABLE and _bf16_ok()

# Optimizer steps taken in this process (any torch.optim optimizer, fused ones included): part
# of every inference weight cache's key (here and the fused temporal weight in inference.py).
# `torch.optim.AdamW(fused=True)` writes new weights without bumping their `_version`, so a key
# of versions alone would keep serving the weights of before the step (it did: validation during
# training scored the first epoch's temporal weights).
_optimizer_steps = 0


def _count_optimizer_step(optimizer: object, args: object, kwargs: object) -> None:
    global _optimizer_steps
    _optimizer_steps += 1


register_optimizer_step_post_hook(_count_optimizer_step)


def optimizer_steps() -> int:
    """Optimizer steps taken in this process so far (see `_optimizer_steps`)."""
    return _optimizer_steps


def version_of(t: Tensor) -> int | None:
    """`t._version` for a cache key; None for an inference tensor (made under
    `torch.inference_mode()`), which keeps no version counter: its address and the optimizer
    step count stand for it."""
    return None if t.is_inference() else t._version


def run_dtype(x: Tensor, weight: Tensor) -> torch.dtype | None:
    """The dtype a packed linear runs in for input `x`, or None where it does not apply."""
    if not _AVAILABLE or x.device.type != "cpu" or torch.is_grad_enabled():
        return None
    if torch.compiler.is_compiling():
        return None
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
    else:
        if x.dtype != weight.dtype:
            return None
        dtype = x.dtype
    if dtype == torch.float32 or (dtype == torch.bfloat16 and _BF16_OK):
        return dtype
    return None


def _packed(
    owner: nn.Module, weight: Tensor, bias: Tensor | None, dtype: torch.dtype, version: object
) -> tuple[Tensor, Tensor | None]:
    """(packed weight, bias) in `dtype`, cached on `owner` under `version` (see module doc)."""
    key = (weight.data_ptr(), version_of(weight), _optimizer_steps, version, weight.dtype, dtype)
    cache = getattr(owner, "_packed_cache", None)
    if cache is None or cache[0] != key:
        with torch.autocast("cpu", enabled=False):
            w = weight.detach().to(dtype).contiguous()  # (out, in)
            packed = torch.ops.mkldnn._reorder_linear_weight(w, ROWS_HINT)
            b = None if bias is None else bias.detach().to(dtype).contiguous()  # (out,)
        cache = (key, packed, b)
        owner._packed_cache = cache  # type: ignore[assignment]
    return cache[1], cache[2]


def linear(
    owner: nn.Module,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    version: object = None,
    gelu: str | None = None,
) -> Tensor:
    """`F.linear(x, weight, bias)` (then GELU with approximation `gelu`, "none" or "tanh",
    where given): x (..., in) -> (..., out). Packed for oneDNN where that applies, the packed
    weight cached on `owner`; `version` is whatever else must match for the cache to hold."""
    dtype = run_dtype(x, weight)
    if dtype is None:
        y = F.linear(x, weight, bias)
        return y if gelu is None else F.gelu(y, approximate=gelu)
    packed, b = _packed(owner, weight, bias, dtype, version)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]).to(dtype)  # (rows, in)
    if gelu is None:
        y = torch.ops.mkldnn._linear_pointwise(x2, packed, b, "none", [], "")
    else:
        y = torch.ops.mkldnn._linear_pointwise(x2, packed, b, "gelu", [], gelu)
    return y.view(*lead, y.shape[-1])  # (..., out)


def module_linear(
    module: nn.Linear, x: Tensor, version: object = None, gelu: str | None = None
) -> Tensor:
    """`module(x)` (an nn.Linear), packed where that applies: see `linear`."""
    return linear(module, x, module.weight, module.bias, version, gelu)


def drop_caches(module: nn.Module) -> None:
    """Forget every packed weight under `module`."""
    for m in module.modules():
        if getattr(m, "_packed_cache", None) is not None:
            m._packed_cache = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------- training


def train_applies(x: Tensor, weight: Tensor) -> bool:
    """Whether `Linear` runs the packed training path for input `x` (see the module doc)."""
    return (
        _AVAILABLE
        and torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and (x.requires_grad or weight.requires_grad)
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
    )


class _PackedLinearFn(torch.autograd.Function):
    """y = x W^T + b with the forward and dx on oneDNN-packed weights, dW and db on plain ops."""

    @staticmethod
    def forward(ctx, x2: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # type: ignore[override]
        # x2: (rows, in), weight: (out, in) -> (rows, out)
        ctx.save_for_backward(x2, weight)
        ctx.has_bias = bias is not None
        w = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), x2.shape[0])
        return torch.ops.mkldnn._linear_pointwise(x2, w, bias, "none", [], "")

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:  # type: ignore[override]
        x2, weight = ctx.saved_tensors
        dy = dy.contiguous()  # (rows, out)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:  # dx = dy W: a linear with weight W^T (in, out)
            wt = torch.ops.mkldnn._reorder_linear_weight(weight.t().contiguous(), dy.shape[0])
            dx = torch.ops.mkldnn._linear_pointwise(dy, wt, None, "none", [], "")  # (rows, in)
        if ctx.needs_input_grad[1]:
            dw = dy.t().mm(x2)  # (out, in)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dy.sum(0)  # (out,)
        return dx, dw, db


def train_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """`F.linear(x, weight, bias)` by the packed training path: x (..., in) -> (..., out)."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]).contiguous()  # (rows, in)
    y = _PackedLinearFn.apply(x2, weight, bias)
    return y.view(*lead, weight.shape[0])


def autograd_linear(x: Tensor, weight: Tensor, bias: Tensor | None, packed: bool = True) -> Tensor:
    """`F.linear(x, weight, bias)`, by the packed training path where `packed` and
    `train_applies`: the one dispatch of `Linear`, the patch embedding and the folded temporal
    linear. x (..., in) -> (..., out)."""
    if packed and train_applies(x, weight):
        return train_linear(x, weight, bias)
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """`nn.Linear` (same parameters and state dict) whose CPU fp32 training forward and backward
    run on oneDNN-packed weights where `train_applies`; `packed_training = False` turns it off
    (`TimeSformer.set_training_options(packed_linears=False)`)."""

    packed_training: bool = True

    def forward(self, x: Tensor) -> Tensor:
        return autograd_linear(x, self.weight, self.bias, self.packed_training)
