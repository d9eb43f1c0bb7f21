"""The eval fast path of a Block: the same function as its reference path, for inference.

Used when the model is in eval mode and autograd is off (see `Block.forward`); outputs agree
with the reference path to float rounding. What makes it faster and leaner:

- fewer layout copies: the temporal step writes straight into the layout of the spatial step;
- residuals added in place into buffers the block owns (`_add_into`, `_mlp_inplace`);
- `temporal_fc` folded into `temporal_attn.proj` (nothing lies between them in eval), one
  linear instead of two, formed in fp32 and cached per (weights, device, dtype, autocast)
  until a weight changes, an optimizer steps, the module switches train/eval mode or is
  moved / cast (fused optimizers update weights without bumping their version counters, so
  versions alone are not enough: see `_optimizer_steps`);
- every step run over chunks of at most `inference_chunk_tokens` tokens, so that temporaries
  stay small for long clips.

`set_inference_options` switches it per model (`fast=False` runs the reference path, which is
the benchmark's baseline).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from .kernels import check_kernel

if TYPE_CHECKING:  # the Block dispatches here; this module never builds one
    from .timesformer import Block

# Inference runs each step over chunks of at most this many tokens.
DEFAULT_CHUNK_TOKENS = 4096

# Optimizer steps taken in this process (any torch.optim optimizer, fused ones included): part
# of the fused cache's key. `torch.optim.AdamW(fused=True)` writes new weights without bumping
# their `_version`, so a key of versions alone would keep serving the weights of before the step
# (it did: validation during training scored the first epoch's weights).
_optimizer_steps = 0


def _count_optimizer_step(optimizer: object, args: object, kwargs: object) -> None:
    global _optimizer_steps
    _optimizer_steps += 1


register_optimizer_step_post_hook(_count_optimizer_step)


def set_options(
    blocks: Iterable[Block],
    fast: bool = True,
    chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
    attention_kernel: str = "sdpa",
) -> None:
    """Switch the fast path on or off, set its chunk size (None: no chunking) and the inference
    attention kernel ("sdpa", "explicit", "auto": see kernels.py) on `blocks`. Also drops the
    fused weight cache: call it after changing weights behind autograd's back (`p.data[...]`)."""
    if chunk_tokens is not None and chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1 or None; got {chunk_tokens}")
    check_kernel(attention_kernel)
    for blk in blocks:
        blk.fast_inference = fast
        blk.inference_chunk_tokens = chunk_tokens
        blk._fused_cache = None
        for m in blk.modules():
            if hasattr(m, "kernel") and hasattr(m, "attend"):  # every Attention of the block
                m.kernel = attention_kernel


def block_forward(block: Block, x: Tensor, geom: tuple[int, int, int]) -> Tensor:
    """`block(x, geom)` without autograd: x (rows, L, D) -> a new (rows, L, D) tensor."""
    chunk = block.inference_chunk_tokens or (1 << 62)
    if block.attention_type == "divided_space_time":
        out = _divided(block, x, geom, chunk)
    elif block.attention_type in ("space_only", "joint_space_time"):
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)  # (rows, L, D)
        rows = max(1, chunk // x.shape[1])  # joint: whole clips; space_only: frames
        for r0 in range(0, x.shape[0], rows):
            xr = x[r0 : r0 + rows]  # (r, L, D)
            y = block.attn.proj(block.attn.attend(block.norm1(xr)))  # (r, L, D)
            _add_into(out[r0 : r0 + rows], xr, y)
    else:  # partitioned schemes: the reference attention, then the MLP in place
        out = block._partitioned(x, geom, None)
    _mlp_inplace(block, out, chunk)
    return out


def _add_into(dst: Tensor, a: Tensor, b: Tensor, alpha: float = 1.0) -> None:
    """dst[...] = a + alpha * b in one pass, dst being a (possibly strided) view."""
    if torch.compiler.is_compiling():  # dynamo takes no strided out=; inductor fuses this
        dst.copy_(torch.add(a, b, alpha=alpha))
    else:
        torch.add(a, b, alpha=alpha, out=dst)


def _mlp_inplace(block: Block, x: Tensor, chunk: int) -> None:
    """x += mlp(norm2(x)), chunk by chunk of tokens; x: a contiguous (.., D) this block made."""
    flat = x.view(-1, x.shape[-1])  # (tokens, D)
    act = block.mlp.act
    for c in flat.split(chunk):  # each (c, D), a view of x
        h = block.mlp.fc1(block.norm2(c))  # (c, hidden)
        # in place: no second hidden-sized buffer (its fresh pages cost more than the GELU)
        if type(act) is nn.GELU:
            h = torch.ops.aten.gelu_(h, approximate=act.approximate)
        else:
            h = act(h)
        c.add_(block.mlp.fc2(h))  # (c, D)


def _temporal_out(block: Block) -> tuple[Tensor, Tensor]:
    """temporal_fc(temporal_attn.proj(a)) as one linear (nothing lies between them in eval):
    W = W_fc W_proj, b = W_fc b_proj + b_fc, formed in fp32 then cast to the dtype the linear
    runs in (autocast's, else the weights'). Cached per weights (address and version), device,
    dtype and autocast state, so a bf16-autocast call never leaks into an fp32 one; and per
    optimizer step (see `_optimizer_steps`)."""
    proj, fc = block.temporal_attn.proj, block.temporal_fc
    params = (proj.weight, proj.bias, fc.weight, fc.bias)
    device = proj.weight.device
    amp = torch.is_autocast_enabled(device.type)
    dtype = torch.get_autocast_dtype(device.type) if amp else proj.weight.dtype
    versions = tuple((t.data_ptr(), t._version) for t in params)
    key = (versions, _optimizer_steps, device, proj.weight.dtype, amp, dtype)
    cache = block._fused_cache
    if cache is None or cache[0] != key:
        with torch.autocast(device.type, enabled=False):
            wp, bp, wf, bf = (t.float() for t in params)
            w = (wf @ wp).to(dtype)  # (D, D)
            b = torch.addmv(bf, wf, bp).to(dtype)  # (D,)
        cache = block._fused_cache = (key, w, b)
    return cache[1], cache[2]


def _divided(block: Block, x: Tensor, geom: tuple[int, int, int], chunk: int) -> Tensor:
    """Divided space-time attention (temporal, then spatial) of x (B, 1 + T*N, D), no MLP."""
    T, gh, gw = geom
    N = gh * gw
    B, _, D = x.shape
    cls = x[:, :1]  # (B, 1, D)
    xp = x[:, 1:].view(B, T, N, D)
    # temporal step, over chunks of spatial positions; the result lands in the layout of the
    # spatial step: per frame, a class-token slot then the frame's N patches
    frames = x.new_empty(B, T, 1 + N, D)
    frames[:, :, 0] = cls
    # (inside torch.compile: no Python-side weight cache; the compiler fuses what it can)
    fused = None if torch.compiler.is_compiling() else _temporal_out(block)
    step = max(1, chunk // (B * T))
    for n0 in range(0, N, step):
        n = min(step, N - n0)
        xt = xp[:, :, n0 : n0 + n].transpose(1, 2).reshape(B * n, T, D)  # (B*n, T, D)
        a = block.temporal_attn.attend(block.temporal_norm1(xt))  # (B*n, T, D)
        if fused is not None:
            y = F.linear(a, *fused)  # temporal_fc(temporal_attn.proj(a))
        else:
            y = block.temporal_fc(block.temporal_attn.proj(a))
        y = y.view(B, n, T, D).transpose(1, 2)  # (B, T, n, D) view
        _add_into(frames[:, :, 1 + n0 : 1 + n0 + n], xp[:, :, n0 : n0 + n], y)
    # spatial step, over chunks of frames: each frame attends over its class-token copy and
    # its patches; the class token's outputs are averaged over the frames
    out = x.new_empty(B, 1 + T * N, D)
    out_p = out[:, 1:].view(B, T, N, D)
    cls_sum = x.new_zeros(B, D)
    step = max(1, chunk // (B * (1 + N)))
    for t0 in range(0, T, step):
        t = min(step, T - t0)
        s = frames[:, t0 : t0 + t]  # (B, t, 1+N, D)
        h = block.norm1(s).reshape(B * t, 1 + N, D)
        y = block.attn.proj(block.attn.attend(h)).view(B, t, 1 + N, D)
        _add_into(out_p[:, t0 : t0 + t], s[:, :, 1:], y[:, :, 1:])
        cls_sum += y[:, :, 0].sum(1)  # (B, D)
    _add_into(out[:, 0], x[:, 0], cls_sum, alpha=1.0 / T)
    return out
