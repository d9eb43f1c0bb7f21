"""Multi-head attention on SDPA, and the token partitions of the five space-time schemes.

Token layout used everywhere in the model: a sequence (B, 1 + T*N, D) holding the class token
first, then the patch tokens frame-major: patch (t, h, w) sits at 1 + t*N + h*gw + w, with
N = gh*gw. (The official code orders patches position-major; attention does not care, and the
checkpoints hold no token order.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import kernels, packed


@dataclass
class AttentionStep:
    """Attention weights of one attention step of one block, for visualisation.

    weights: (B, G, heads, L, L) softmax weights of G groups of L tokens each.
    index: (G, L) position of each group member in the full sequence (0 = class token,
        1 + t*N + h*gw + w = patch). Where the class token is copied into every group
        (`cls_shared`), its output is the mean over the groups.
    """

    name: str
    weights: Tensor
    index: Tensor
    cls_shared: bool = False


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection, computed by SDPA.

    Weight names (`qkv`, `proj`) follow timm's ViT and the official TimeSformer.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = packed.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = packed.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)
        self.kernel = kernels.DEFAULT_KERNEL  # inference: one of kernels.KERNELS
        self.train_kernel = "auto"  # training: "auto" is a fixed rule per length (kernels.py)

    def forward(self, x: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x: (G, L, D) -> (G, L, D), and (G, heads, L, L) weights when asked."""
        if not need_weights:
            return self.proj_drop(self.proj(self.attend(x))), None
        G, L, D = x.shape
        qkv = self.qkv(x).view(G, L, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (G, h, L, d)
        scores = (q.float() * self.scale) @ k.float().transpose(-2, -1)  # (G, h, L, L)
        weights = scores.softmax(dim=-1)
        p = F.dropout(weights, self.attn_drop, self.training).to(v.dtype)
        out = (p @ v).transpose(1, 2).reshape(G, L, D)  # (G, L, D)
        return self.proj_drop(self.proj(out)), weights

    def attend(self, x: Tensor, packed_qkv: bool = False) -> Tensor:
        """The heads' attention output before the output projection, by SDPA: (G, L, D) -> same.

        SDPA never builds the (L, L) weights (flash / memory-efficient kernels where available);
        `self.kernel` (inference) and `self.train_kernel` (training) may pick an explicit batched
        matmul instead (kernels.py), and `packed_qkv` (the eval fast path) runs qkv on a
        oneDNN-packed weight (packed.py).
        """
        G, L, D = x.shape
        qkv = packed.module_linear(self.qkv, x) if packed_qkv else self.qkv(x)
        qkv = qkv.view(G, L, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (G, h, L, d), views
        drop = self.attn_drop if self.training else 0.0
        out = kernels.attend(q, k, v, self.kernel, drop, self.train_kernel)  # (G, h, L, d)
        return out.transpose(1, 2).reshape(G, L, D)


# ----------------------------------------------------------------------------------------------
# Token partitions: which patches attend together in each step of each scheme.
# Each partition is a list of (G, L) index tensors over the patch tokens (0-based, frame-major,
# excluding the class token); groups in one tensor have equal length, so odd grids simply give
# more than one tensor.


def _grid(T: int, gh: int, gw: int) -> Tensor:
    return torch.arange(T * gh * gw).view(T, gh, gw)


@lru_cache(maxsize=64)
def _partition(kind: str, T: int, gh: int, gw: int) -> tuple[Tensor, ...]:
    g = _grid(T, gh, gw)
    if kind == "time":  # same (h, w) across frames
        return (g.permute(1, 2, 0).reshape(gh * gw, T),)
    if kind == "space":  # one frame
        return (g.reshape(T, gh * gw),)
    if kind == "width":  # one row of one frame
        return (g.reshape(T * gh, gw),)
    if kind == "height":  # one column of one frame
        return (g.permute(0, 2, 1).reshape(T * gw, gh),)
    if kind == "local":  # F x H/2 x W/2 windows (the halves of an odd side differ by one)
        hs = [slice(0, (gh + 1) // 2), slice((gh + 1) // 2, gh)]
        ws = [slice(0, (gw + 1) // 2), slice((gw + 1) // 2, gw)]
        windows = [g[:, a, b].reshape(-1) for a in hs for b in ws]
        return _stack_by_length([w for w in windows if w.numel()])
    if kind == "global":  # stride 2 in time, height and width: 8 interleaved subsets
        subsets = [
            g[t0::2, h0::2, w0::2].reshape(-1) for t0 in (0, 1) for h0 in (0, 1) for w0 in (0, 1)
        ]
        return _stack_by_length([s for s in subsets if s.numel()])
    raise ValueError(f"unknown partition {kind!r}")


def _stack_by_length(groups: list[Tensor]) -> tuple[Tensor, ...]:
    by_len: dict[int, list[Tensor]] = {}
    for grp in groups:
        by_len.setdefault(grp.numel(), []).append(grp)
    return tuple(torch.stack(v) for _, v in sorted(by_len.items(), reverse=True))


def partition(kind: str, T: int, gh: int, gw: int, device: torch.device) -> tuple[Tensor, ...]:
    """Index tensors (G, L) over the T*gh*gw patch tokens for the step `kind`."""
    return tuple(p.to(device) for p in _partition(kind, T, gh, gw))


def attend_partition(
    attn: Attention,
    x: Tensor,
    parts: tuple[Tensor, ...],
    cls: Tensor | None,
    name: str,
    need_weights: bool,
    steps: list[AttentionStep] | None,
) -> tuple[Tensor | None, Tensor]:
    """Attention within groups of (already normalised) patch tokens.

    x: (B, P, D) normalised patch tokens; cls: (B, 1, D) normalised class token, copied into
    every group (its outputs are averaged) or None. Returns (cls_out (B, 1, D) or None,
    patch outputs (B, P, D)).
    """
    B, P, D = x.shape
    out = torch.empty_like(x)
    cls_sum = None
    n_groups = 0
    for idx in parts:
        G, L = idx.shape
        xg = x[:, idx.reshape(-1)].view(B, G, L, D)  # (B, G, L, D)
        if cls is not None:
            xg = torch.cat([cls.unsqueeze(1).expand(B, G, 1, D), xg], dim=2)
        y, w = attn(xg.reshape(B * G, -1, D), need_weights)
        y = y.view(B, G, -1, D)
        if cls is not None:
            c = y[:, :, 0].sum(1, keepdim=True)  # (B, 1, D)
            cls_sum = c if cls_sum is None else cls_sum + c
            n_groups += G
            y = y[:, :, 1:]
        out[:, idx.reshape(-1)] = y.reshape(B, G * L, D).to(out.dtype)  # autocast: y is bf16
        if need_weights and steps is not None:
            full_idx = idx + 1
            if cls is not None:
                full_idx = torch.cat([torch.zeros_like(idx[:, :1]), full_idx], dim=1)
            steps.append(AttentionStep(name, w.view(B, G, *w.shape[1:]), full_idx, cls is not None))
    cls_out = cls_sum / n_groups if cls_sum is not None else None
    return cls_out, out
