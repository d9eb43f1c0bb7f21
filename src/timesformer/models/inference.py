"""The eval fast path of a Block: the same function as its reference path, for inference.

Used when the model is in eval mode and autograd is off (see `Block.forward`); outputs agree
with the reference path to float rounding. What makes it faster and leaner:

- fewer layout copies: the temporal step writes straight into the layout of the spatial step;
- residuals added in place into buffers the block owns (`_add_into`, `_mlp_inplace`);
- `temporal_fc` folded into `temporal_attn.proj` (nothing lies between them in eval), one
  linear instead of two, formed in fp32 and cached per (weights, device, dtype, autocast)
  until a weight changes, an optimizer steps, the module switches train/eval mode or is
  moved / cast (fused optimizers update weights without bumping their version counters, so
  versions alone are not enough: see `packed._optimizer_steps`);
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

from . import packed
from .kernels import DEFAULT_KERNEL, check_kernel

if TYPE_CHECKING:  # the Block dispatches here; this module never builds one
    from .timesformer import Block

# Inference runs each step over chunks of at most this many tokens.
DEFAULT_CHUNK_TOKENS = 4096


def set_options(
    blocks: Iterable[Block],
    fast: bool = True,
    chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
    attention_kernel: str = DEFAULT_KERNEL,
    packed_linears: bool = True,
) -> None:
    """Switch the fast path on or off, set its chunk size (None: no chunking) and the inference
    attention kernel ("sdpa", "explicit", "auto": see kernels.py) and whether linears run on
    oneDNN-packed weights (`packed_linears`, CPU: see packed.py) on `blocks`. Also drops the
    fused weight cache: call it after changing weights behind autograd's back (`p.data[...]`)."""
    if chunk_tokens is not None and chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1 or None; got {chunk_tokens}")
    check_kernel(attention_kernel)
    for blk in blocks:
        blk.fast_inference = fast
        blk.inference_chunk_tokens = chunk_tokens
        blk.packed_linears = packed_linears
        blk._fused_cache = None
        packed.drop_caches(blk)
        for m in blk.modules():
            if hasattr(m, "kernel") and hasattr(m, "attend"):  # every Attention of the block
                m.kernel = attention_kernel


def block_forward(
    block: Block, x: Tensor, geom: tuple[int, int, int], cls_only: bool = False
) -> Tensor:
    """`block(x, geom, cls_only=...)` without autograd: x (rows, L, D) -> a new (rows, L, D)
    tensor, or (rows, 1, D) with `cls_only` (the class token's rows alone)."""
    chunk = block.inference_chunk_tokens or (1 << 62)
    if block.attention_type == "divided_space_time":
        out = _divided(block, x, geom, chunk, cls_only)
    elif block.attention_type in ("space_only", "joint_space_time"):
        L = 1 if cls_only else x.shape[1]
        out = torch.empty((x.shape[0], L, x.shape[2]), dtype=x.dtype, device=x.device)
        rows = max(1, chunk // x.shape[1])  # joint: whole clips; space_only: frames
        for r0 in range(0, x.shape[0], rows):
            xr = x[r0 : r0 + rows]  # (r, L, D)
            h = block.norm1(xr)
            if cls_only:
                a = cls_attend(block.attn, h, block.packed_linears)  # (r, 1, D)
            else:
                a = block.attn.attend(h, block.packed_linears)  # (r, L, D)
            _add_into(out[r0 : r0 + rows], xr[:, :L], _proj(block.attn, a, block))
    else:  # partitioned schemes: the reference attention, then the MLP in place
        out = block._partitioned(x, geom, None)
        if cls_only:
            out = out[:, :1].contiguous()  # (rows, 1, D)
    _mlp_inplace(block, out, chunk)
    return out


def cls_attend(attn: nn.Module, h: Tensor, packed_qkv: bool) -> Tensor:
    """The attention output of each group's first token (the class token) over its whole group,
    before the output projection: h (G, L, D) -> (G, 1, D). Keys and values of every token,
    one query per group (plain SDPA: one query row is no work for any kernel)."""
    G, L, D = h.shape
    qkv = packed.module_linear(attn.qkv, h) if packed_qkv else attn.qkv(h)  # (G, L, 3D)
    qkv = qkv.view(G, L, 3, attn.num_heads, attn.head_dim)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (G, h, L, d), views
    out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # (G, h, 1, d)
    return out.transpose(1, 2).reshape(G, 1, D)


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
    fc1, fc2 = block.mlp.fc1, block.mlp.fc2
    for c in flat.split(chunk):  # each (c, D), a view of x
        n = block.norm2(c)
        if block.packed_linears and type(act) is nn.GELU and packed.run_dtype(n, fc1.weight):
            h = packed.module_linear(fc1, n, gelu=act.approximate)  # GELU fused: (c, hidden)
        else:
            h = fc1(n)  # (c, hidden)
            # in place: no second hidden-sized buffer (its fresh pages cost more than the GELU)
            if type(act) is nn.GELU:
                h = torch.ops.aten.gelu_(h, approximate=act.approximate)
            else:
                h = act(h)
        c.add_(packed.module_linear(fc2, h) if block.packed_linears else fc2(h))  # (c, D)


def _proj(attn: nn.Module, a: Tensor, block: Block) -> Tensor:
    """attn.proj(a), on a packed weight where the block allows it."""
    return packed.module_linear(attn.proj, a) if block.packed_linears else attn.proj(a)


def _fused_linear(block: Block, a: Tensor, fused: tuple[Tensor, Tensor]) -> Tensor:
    """The folded temporal output linear on a (.., D): packed where the block allows it (the
    packed copy is keyed on the fused weight's own cache key, so it follows every rebuild)."""
    if not block.packed_linears:
        return F.linear(a, *fused)
    version = block._fused_cache[0] if block._fused_cache is not None else None
    return packed.linear(block.temporal_fc, a, fused[0], fused[1], version)


def _temporal_out(block: Block) -> tuple[Tensor, Tensor]:
    """temporal_fc(temporal_attn.proj(a)) as one linear (nothing lies between them in eval):
    W = W_fc W_proj, b = W_fc b_proj + b_fc, formed in fp32 then cast to the dtype the linear
    runs in (autocast's, else the weights'). Cached per weights (address and version), device,
    dtype and autocast state, so a bf16-autocast call never leaks into an fp32 one; and per
    optimizer step (see `packed._optimizer_steps`)."""
    proj, fc = block.temporal_attn.proj, block.temporal_fc
    params = (proj.weight, proj.bias, fc.weight, fc.bias)
    device = proj.weight.device
    amp = torch.is_autocast_enabled(device.type)
    dtype = torch.get_autocast_dtype(device.type) if amp else proj.weight.dtype
    versions = tuple((t.data_ptr(), packed.version_of(t)) for t in params)
    key = (versions, packed.optimizer_steps(), device, proj.weight.dtype, amp, dtype)
    cache = block._fused_cache
    if cache is None or cache[0] != key:
        with torch.autocast(device.type, enabled=False):
            wp, bp, wf, bf = (t.float() for t in params)
            w = (wf @ wp).to(dtype)  # (D, D)
            b = torch.addmv(bf, wf, bp).to(dtype)  # (D,)
        cache = block._fused_cache = (key, w, b)
    return cache[1], cache[2]


def _divided(
    block: Block, x: Tensor, geom: tuple[int, int, int], chunk: int, cls_only: bool = False
) -> Tensor:
    """Divided space-time attention (temporal, then spatial) of x (B, 1 + T*N, D), no MLP;
    with `cls_only` the spatial step runs the class token's queries alone: (B, 1, D)."""
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
        a = block.temporal_attn.attend(block.temporal_norm1(xt), block.packed_linears)
        if fused is not None:  # temporal_fc(temporal_attn.proj(a)), a: (B*n, T, D)
            y = _fused_linear(block, a, fused)
        else:
            y = block.temporal_fc(block.temporal_attn.proj(a))
        y = y.view(B, n, T, D).transpose(1, 2)  # (B, T, n, D) view
        _add_into(frames[:, :, 1 + n0 : 1 + n0 + n], xp[:, :, n0 : n0 + n], y)
    # spatial step, over chunks of frames: each frame attends over its class-token copy and
    # its patches; the class token's outputs are averaged over the frames
    step = max(1, chunk // (B * (1 + N)))
    if cls_only:
        cls_sum = x.new_zeros(B, D)
        for t0 in range(0, T, step):
            t = min(step, T - t0)
            h = block.norm1(frames[:, t0 : t0 + t]).reshape(B * t, 1 + N, D)
            a = cls_attend(block.attn, h, block.packed_linears)  # (B*t, 1, D)
            cls_sum += _proj(block.attn, a, block).view(B, t, D).sum(1)  # (B, D)
        return torch.add(x[:, :1], cls_sum.unsqueeze(1), alpha=1.0 / T)  # (B, 1, D)
    out = x.new_empty(B, 1 + T * N, D)
    out_p = out[:, 1:].view(B, T, N, D)
    cls_sum = x.new_zeros(B, D)
    for t0 in range(0, T, step):
        t = min(step, T - t0)
        s = frames[:, t0 : t0 + t]  # (B, t, 1+N, D)
        h = block.norm1(s).reshape(B * t, 1 + N, D)
        a = block.attn.attend(h, block.packed_linears)  # (B*t, 1+N, D)
        y = _proj(block.attn, a, block).view(B, t, 1 + N, D)
        _add_into(out_p[:, t0 : t0 + t], s[:, :, 1:], y[:, :, 1:])
        cls_sum += y[:, :, 0].sum(1)  # (B, D)
    _add_into(out[:, 0], x[:, 0], cls_sum, alpha=1.0 / T)
    return out
