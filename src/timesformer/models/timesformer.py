"""TimeSformer, top to bottom: DropPath, Mlp, PatchEmbed, Block (the five space-time attention
schemes, reference path), embedding resampling, and the model.

Read it in order: each part uses only what comes above it. The Block's eval fast path (same
function, fewer copies, chunked) lives in `inference.py`; checkpoint formats in `weights.py`
and `formats/`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from . import inference, packed
from .attention import Attention, AttentionStep, attend_partition, partition
from .config import EXTRA_STEPS, TimeSformerConfig
from .inference import DEFAULT_CHUNK_TOKENS
from .kernels import check_kernel


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per row of the leading axis.

    The leading axis is the sample for the MLP and whole-sequence steps; the divided block
    applies it, as the official block does, to the reshaped step inputs: per (sample, spatial
    position) row of the temporal step and per (sample, frame) of the spatial step.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}"


class Mlp(nn.Module):
    """The block's feed-forward part: fc1 -> GELU -> fc2, (.., D) -> (.., D)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = packed.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = packed.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class PatchEmbed(nn.Module):
    """Per-frame patch embedding: (B, C, T, H, W) -> (B*T, N, D)."""

    packed_training: bool = True  # CPU fp32 training: the matmul on packed weights (packed.py)

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        # A stride-P convolution over P x P patches is one matmul over the flattened patches:
        # same result, and faster (4x under bf16 autocast on CPUs without native bf16 convs).
        B, C, T, H, W = x.shape
        P = self.patch_size
        gh, gw = H // P, W // P
        x = x.reshape(B, C, T, gh, P, gw, P).permute(0, 2, 3, 5, 1, 4, 6)  # (B, T, gh, gw, C, P, P)
        x = x.reshape(B * T * gh * gw, C * P * P)
        w = self.proj.weight.flatten(1)  # (D, C*P*P)
        x = packed.autograd_linear(x, w, self.proj.bias, self.packed_training)  # (B*T*N, D)
        return x.view(B * T, gh * gw, -1)  # (B*T, N, D)


def _ln(dim: int, eps: float) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=eps)


class Block(nn.Module):
    """One pre-norm transformer block of the configured space-time scheme.

    x is (B, 1 + T*N, D) (class token, then frame-major patches), or (B*T, 1 + N, D) for
    `space_only`. Extra steps per scheme (the table `config.EXTRA_STEPS`), each
    `norm -> attention -> drop path -> fc`, added to the patch tokens before the last attention
    step (which also serves the class token): divided: temporal; sparse_local_global: local;
    axial: temporal, width. In eval without autograd, `forward` hands over to the equivalent
    fast path in `inference.py`.
    """

    def __init__(self, cfg: TimeSformerConfig, drop_path: float) -> None:
        super().__init__()
        D, eps = cfg.embed_dim, cfg.layer_norm_eps
        self.attention_type = cfg.attention_type

        def attention() -> Attention:
            return Attention(D, cfg.num_heads, cfg.qkv_bias, cfg.attn_drop_rate, cfg.drop_rate)

        self.norm1 = _ln(D, eps)
        self.attn = attention()
        for norm, attn, fc in EXTRA_STEPS[self.attention_type]:  # e.g. temporal_norm1, ...
            self.add_module(norm, _ln(D, eps))
            self.add_module(attn, attention())
            self.add_module(fc, packed.Linear(D, D))
        self.drop_path = DropPath(drop_path)
        self.norm2 = _ln(D, eps)
        self.mlp = Mlp(D, int(D * cfg.mlp_ratio), cfg.drop_rate)
        # eval fast path (see inference.py and TimeSformer.set_inference_options)
        self.fast_inference = True
        self.inference_chunk_tokens: int | None = inference.DEFAULT_CHUNK_TOKENS
        self._fused_cache: tuple | None = None  # temporal_fc folded into temporal_attn.proj
        self.packed_linears = True  # fast path linears on oneDNN-packed weights (packed.py)
        self.fold_temporal_out = True  # training: temporal_fc folded into proj (_divided)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Module.to / .float / .cuda: also drop the fast path's weight caches."""
        self._fused_cache = None
        packed.drop_caches(self)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> Block:
        """Module.train / .eval: also drop the fast path's weight caches (weights change in
        training)."""
        self._fused_cache = None
        packed.drop_caches(self)
        return super().train(mode)

    def extra_steps(self) -> list[tuple[nn.LayerNorm, Attention, nn.Linear]]:
        """(norm, attention, output linear) of each step before the final attention step."""
        return [
            tuple(getattr(self, n) for n in names) for names in EXTRA_STEPS[self.attention_type]
        ]

    def forward(
        self,
        x: Tensor,
        geom: tuple[int, int, int],
        steps: list[AttentionStep] | None = None,
        cls_only: bool = False,
    ) -> Tensor:
        """x -> x after attention and MLP; `steps` (a list) collects the attention weights.

        `cls_only` (the last block when only the class token is read): return only the class
        token's rows (rows, 1, D); the MLP, and in the eval fast path also the last attention
        step's queries and output projection, then run for that token alone.
        """
        need = steps is not None
        if (
            not need
            and self.fast_inference
            and not self.training
            and not torch.is_grad_enabled()
            and x.device.type != "meta"  # count_flops traces the reference path
        ):
            return inference.block_forward(self, x, geom, cls_only)
        if self.attention_type in ("space_only", "joint_space_time"):
            y, w = self.attn(self.norm1(x), need)  # one step over the whole sequence
            if need:
                steps.append(self._whole_sequence_step(w, x.shape[0], geom))
            x = x + self.drop_path(y)
        elif self.attention_type == "divided_space_time":
            x = self._divided(x, geom, steps)
        else:
            x = self._partitioned(x, geom, steps)
        if cls_only:
            x = x[:, :1]  # (rows, 1, D): the patch tokens' MLP outputs would never be read
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _divided(
        self, x: Tensor, geom: tuple[int, int, int], steps: list[AttentionStep] | None
    ) -> Tensor:
        """Official order: temporal (patches only), spatial (class token per frame), MLP."""
        T, gh, gw = geom
        N = gh * gw
        B, _, D = x.shape
        need = steps is not None
        cls, xp = x[:, :1], x[:, 1:]  # (B, 1, D), (B, T*N, D)

        # temporal: each spatial position attends over its T frames
        xt = self.temporal_norm1(xp).view(B, T, N, D).transpose(1, 2).reshape(B * N, T, D)
        # (meta: count_flops counts the model as defined, two linears)
        if need or x.device.type == "meta" or not self._fold_temporal_out():
            y, w = self.temporal_attn(xt, need)  # (B*N, T, D)
            if need:
                idx = partition("time", T, gh, gw, x.device)[0] + 1  # (N, T)
                steps.append(AttentionStep("temporal", w.view(B, N, *w.shape[1:]), idx))
            y = self.drop_path(y)  # (B*N, T, D): one draw per (sample, position) row, as official
            y = y.view(B, N, T, D).transpose(1, 2).reshape(B, T * N, D)
            xp = xp + self.temporal_fc(y)
        else:  # proj and temporal_fc as one linear (see _fold_temporal_out)
            y = self._temporal_out_folded(self.temporal_attn.attend(xt))  # (B*N, T, D)
            y = self.drop_path(y).view(B, N, T, D).transpose(1, 2).reshape(B, T * N, D)
            xp = xp + (y + self.temporal_fc.bias)

        # spatial: each frame attends over its N patches plus a copy of the class token
        xs = self.norm1(xp).view(B * T, N, D)
        c = self.norm1(cls).expand(B, T, D).reshape(B * T, 1, D)
        y, w = self.attn(torch.cat([c, xs], dim=1), need)  # (B*T, 1+N, D)
        if need:
            sp = partition("space", T, gh, gw, x.device)[0] + 1  # (T, N)
            idx = torch.cat([torch.zeros_like(sp[:, :1]), sp], dim=1)
            steps.append(AttentionStep("spatial", w.view(B, T, *w.shape[1:]), idx, True))
        y = self.drop_path(y).view(B, T, 1 + N, D)  # one draw per (sample, frame), as official
        res = torch.cat([y[:, :, 0].mean(1, keepdim=True), y[:, :, 1:].reshape(B, T * N, D)], 1)
        return torch.cat([cls, xp], dim=1) + res  # (B, 1+T*N, D)

    def _fold_temporal_out(self) -> bool:
        """Whether the training path folds temporal_fc into temporal_attn.proj: nothing but drop
        path (a per-row scale, which commutes with a linear) may lie between them, so not with
        projection dropout; `fold_temporal_out = False` turns it off. One linear instead of two
        saves 1/17 of the block's linear work forward and backward (docs/performance.md)."""
        drop = self.temporal_attn.proj_drop.p if self.training else 0.0
        return self.fold_temporal_out and drop == 0.0 and self.temporal_fc.bias is not None

    def _temporal_out_folded(self, a: Tensor) -> Tensor:
        """temporal_fc(proj(a)) less temporal_fc's bias, as one differentiable linear: weight
        W_fc W_proj (D x D, formed in fp32 outside autocast), bias W_fc b_proj. a (.., D)."""
        proj, fc = self.temporal_attn.proj, self.temporal_fc
        with torch.autocast(a.device.type, enabled=False):
            w = fc.weight.float() @ proj.weight.float()  # (D, D)
            b = None if proj.bias is None else fc.weight.float() @ proj.bias.float()  # (D,)
        w, b = w.to(proj.weight.dtype), None if b is None else b.to(proj.weight.dtype)
        return packed.autograd_linear(a, w, b, fc.packed_training)

    def _partitioned(
        self, x: Tensor, geom: tuple[int, int, int], steps: list[AttentionStep] | None
    ) -> Tensor:
        """sparse_local_global (local, then strided global) and axial (time, width, height)."""
        T, gh, gw = geom
        need = steps is not None
        cls, xp = x[:, :1], x[:, 1:]  # (B, 1, D), (B, T*N, D)
        if self.attention_type == "axial":
            names = ["time", "width"]
            last = "height"
        else:
            names = ["local"]
            last = "global"
        for name, (norm, attn, fc) in zip(names, self.extra_steps()):
            parts = partition(name, T, gh, gw, x.device)
            _, y = attend_partition(attn, norm(xp), parts, None, name, need, steps)
            xp = xp + fc(self.drop_path(y))
        parts = partition(last, T, gh, gw, x.device)
        c, y = attend_partition(
            self.attn, self.norm1(xp), parts, self.norm1(cls), last, need, steps
        )
        return torch.cat([cls, xp], dim=1) + self.drop_path(torch.cat([c, y], dim=1))

    def _whole_sequence_step(
        self, w: Tensor, rows: int, geom: tuple[int, int, int]
    ) -> AttentionStep:
        """The AttentionStep of joint / space-only attention, from weights w (rows, h, L, L)."""
        T, gh, gw = geom
        N = gh * gw
        if self.attention_type == "joint_space_time":
            index = torch.arange(1 + T * N, device=w.device).unsqueeze(0)  # (1, 1+TN)
            return AttentionStep("joint", w.unsqueeze(1), index, cls_shared=False)
        # space_only: rows = B*T, each frame with its own copy of the class token
        patches = torch.arange(T * N, device=w.device).view(T, N) + 1
        index = torch.cat([torch.zeros_like(patches[:, :1]), patches], dim=1)  # (T, 1+N)
        return AttentionStep("space", w.view(rows // T, T, *w.shape[1:]), index, cls_shared=True)


def resample_pos_embed(
    pos: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int], mode: str = "bicubic"
) -> Tensor:
    """Resample a (1, 1 + gh*gw, D) spatial embedding (class slot first) on its 2-D grid.

    mode "bicubic" (default) or "nearest" (what the official code does).
    """
    if tuple(old_grid) == tuple(new_grid):
        return pos
    D = pos.shape[-1]
    cls, grid = pos[:, :1], pos[:, 1:]
    if grid.shape[1] != old_grid[0] * old_grid[1]:
        raise ValueError(
            f"pos_embed has {grid.shape[1]} patch slots, not {old_grid[0]}x{old_grid[1]}"
        )
    grid = grid.reshape(1, old_grid[0], old_grid[1], D).permute(0, 3, 1, 2).float()
    kw: dict[str, Any] = {"align_corners": False} if mode == "bicubic" else {}
    grid = F.interpolate(grid, size=tuple(new_grid), mode=mode, **kw)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], D).to(pos.dtype)
    return torch.cat([cls, grid], dim=1)


def resample_time_embed(time: Tensor, num_frames: int, mode: str = "bicubic") -> Tensor:
    """Resample a (1, T, D) time embedding to `num_frames` (linear, or official "nearest")."""
    if time.shape[1] == num_frames:
        return time
    t = time.transpose(1, 2).float()  # (1, D, T)
    if mode == "nearest":
        t = F.interpolate(t, size=num_frames, mode="nearest")
    else:
        t = F.interpolate(t, size=num_frames, mode="linear", align_corners=False)
    return t.transpose(1, 2).to(time.dtype)


NO_HEAD = "the model has no classification head (num_classes=0)"


def head_missing(
    model: nn.Module, where: str | None = None, extract: str | None = None
) -> str | None:
    """The one-line refusal (prefixed `where`) when `model` has no classifier, else None: it
    gives features, not labels, and the line points to `extract` (default: the CLI's)."""
    cfg = getattr(model, "config", None)
    if cfg is None or int(getattr(cfg, "num_classes", 1) or 0) > 0:
        return None  # a module without our config is not judged here
    prefix = f"{where}: " if where else ""
    how = extract or "`timesformer extract`"
    return f"{prefix}{NO_HEAD}: it gives features, not labels; use {how} for them"


def require_head(model: nn.Module, where: str | None = None, extract: str | None = None) -> None:
    """ValueError with `head_missing`'s line when `model` has no classification head."""
    why = head_missing(model, where, extract)
    if why is not None:
        raise ValueError(why)


class TimeSformer(nn.Module):
    """Video transformer over frame patches. Input (B, 3, T, H, W), normalised floats.

    Attribute names follow timm's ViT plus the official `time_embed` / `temporal_*`, so that
    official and ImageNet checkpoints map with a small filter.
    """

    def __init__(self, config: TimeSformerConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = (config or TimeSformerConfig()).replace(**overrides)
        self.config = cfg
        D = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, D)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        if cfg.pos_embed in ("space_time", "space"):
            self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, D))
        else:
            self.register_parameter("pos_embed", None)
        if cfg.pos_embed == "space_time" and cfg.attention_type != "space_only":
            self.time_embed = nn.Parameter(torch.zeros(1, cfg.num_frames, D))
        else:
            # space_only never uses a time embedding (the official code keeps an unused one)
            self.register_parameter("time_embed", None)
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        dpr = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(Block(cfg, dpr[i]) for i in range(cfg.depth))
        self.norm = _ln(D, cfg.layer_norm_eps)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head: nn.Module = nn.Linear(D, cfg.num_classes) if cfg.num_classes else nn.Identity()
        self.grad_checkpointing = False
        # the last block computes the class token alone when nothing else is read (pool="cls")
        self.trim_last_block = True
        self.init_weights()

    # ------------------------------------------------------------------ init and housekeeping
    @torch.no_grad()
    def init_weights(self) -> None:
        """The official init: trunc-normal(0.02) linears and embeddings, zero time embedding,
        zero `temporal_fc` (and the other extra-step outputs) in every block, the first too (the
        official loop's counter is consumed by the ModuleList itself, so no block is skipped)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.time_embed is not None:
            nn.init.zeros_(self.time_embed)
        if self.config.zero_init_temporal_fc:
            for blk in self.blocks:
                for _, _, fc in blk.extra_steps():
                    nn.init.zeros_(fc.weight)
                    nn.init.zeros_(fc.bias)

    def no_weight_decay(self) -> set[str]:
        """Parameter names that conventionally get no weight decay (embeddings, class token)."""
        return {n for n in ("pos_embed", "cls_token", "time_embed") if getattr(self, n) is not None}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass: same results, far less activation memory."""
        self.grad_checkpointing = enable

    def set_inference_options(
        self,
        fast: bool = True,
        chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
        attention_kernel: str = "auto",
        packed_linears: bool = True,
    ) -> None:
        """Inference fast path (eval mode without autograd; on by default): same outputs to float
        rounding, fewer copies, and steps run over chunks of at most `chunk_tokens` tokens (None:
        no chunking), so that long clips need far less memory. `fast=False` runs the training
        path (used by the benchmark as the baseline). `attention_kernel`: "sdpa", "explicit"
        (batched matmul + softmax), "joined" (SDPA over groups joined under a block mask) or
        "auto" (the fastest per shape, measured once);
        see `inference.py` and `kernels.py`. `packed_linears`: on the CPU, the fast path's linears
        run on weights packed once for oneDNN (faster; `packed.py`)."""
        inference.set_options(self.blocks, fast, chunk_tokens, attention_kernel, packed_linears)

    def set_training_options(
        self, attention_kernel: str = "auto", packed_linears: bool = True
    ) -> None:
        """How training (autograd) computes: `attention_kernel` "auto" (a fixed rule per sequence
        length and dtype: the explicit batched matmul for short sequences on the CPU, else SDPA),
        "sdpa", "explicit" or "joined"; `packed_linears`: CPU fp32 linears on oneDNN-packed weights. Both
        change results only by float rounding; see `kernels.py` and `packed.py`."""
        check_kernel(attention_kernel)
        for m in self.modules():
            if isinstance(m, Attention):
                m.train_kernel = attention_kernel
            if isinstance(m, (packed.Linear, PatchEmbed)):
                m.packed_training = packed_linears

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one of `num_classes` outputs (0: none)."""
        self.config = self.config.replace(num_classes=num_classes, labels=None)
        D = self.config.embed_dim
        if num_classes:
            ref = next(self.parameters())
            head = nn.Linear(D, num_classes).to(device=ref.device, dtype=ref.dtype)
            nn.init.trunc_normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)
            self.head = head
        else:
            self.head = nn.Identity()

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: Tensor) -> tuple[int, int, int]:
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_chans:
            raise ValueError(
                f"expected video of shape (B, {cfg.in_chans}, T, H, W); got {tuple(x.shape)}"
            )
        T, H, W = x.shape[2:]
        P = cfg.patch_size
        if H % P or W % P:
            raise ValueError(f"frame size {H}x{W} is not divisible by the patch size {P}")
        return T, H // P, W // P

    def embeddings(self, T: int, gh: int, gw: int) -> tuple[Tensor | None, Tensor | None]:
        """Spatial (1, 1+gh*gw, D) and time (1, T, D) embeddings for this geometry, resampled
        from the trained ones when it differs."""
        mode = self.config.embed_resample
        pos = self.pos_embed
        if pos is not None:
            pos = resample_pos_embed(pos, self.config.grid_size, (gh, gw), mode)
        time = self.time_embed
        if time is not None:
            time = resample_time_embed(time, T, mode)
        return pos, time

    def _tokens(self, x: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
        """Video (B, C, T, H, W) -> initial token sequence and (T, gh, gw)."""
        T, gh, gw = self._check_input(x)
        B, N, D = x.shape[0], gh * gw, self.config.embed_dim
        x = self.patch_embed(x).view(B, T, N, D)  # (B, T, N, D)
        cls = self.cls_token  # (1, 1, D)
        pos, time = self.embeddings(T, gh, gw)
        if pos is not None:
            x = x + pos[:, 1:].unsqueeze(1)
            cls = cls + pos[:, :1]
        if time is not None:
            x = x + time.unsqueeze(2)  # (1, T, 1, D)
        if self.config.attention_type == "space_only":
            x = x.reshape(B * T, N, D)
            seq = torch.cat([cls.expand(B * T, 1, D), x], dim=1)  # (B*T, 1+N, D)
        else:
            seq = torch.cat([cls.expand(B, 1, D), x.reshape(B, T * N, D)], dim=1)  # (B, 1+TN, D)
        return self.pos_drop(seq), (T, gh, gw)

    def forward_features(
        self, x: Tensor, return_attention: bool = False, pool: str = "cls"
    ) -> Tensor | tuple[Tensor, list[list[AttentionStep]]]:
        """Class-token embedding (B, D) after the final norm (`pool="mean"`: the mean of the
        normed patch tokens instead).

        With `return_attention`, also the attention weights of every block: a list (one per
        block) of `AttentionStep`s (one per attention step: temporal, spatial, ...).

        With `pool="cls"` the last block computes only the class token's output (its MLP, and
        at inference its last attention step's queries and projection, for that token alone):
        the same result for about 1/20 less work. `model.trim_last_block = False` keeps every
        token's output (e.g. for a forward hook on the last block).
        """
        B = x.shape[0]
        seq, geom = self._tokens(x)
        attentions: list[list[AttentionStep]] = []
        # (not on the meta device: count_flops counts the model as defined)
        trim = (
            pool == "cls"
            and not return_attention
            and self.trim_last_block
            and x.device.type != "meta"
        )
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            cls_only = trim and i == last
            if return_attention:
                steps: list[AttentionStep] = []
                seq = blk(seq, geom, steps)
                attentions.append(steps)
            elif self.grad_checkpointing and torch.is_grad_enabled():
                seq = checkpoint(blk, seq, geom, None, cls_only, use_reentrant=False)
            else:
                seq = blk(seq, geom, cls_only=cls_only)
        if self.config.attention_type == "space_only":
            T = geom[0]
            seq = seq.view(B, T, *seq.shape[1:]).mean(1)  # average the frames' tokens
        if pool == "mean":
            feats = self.norm(seq[:, 1:]).mean(1)  # (B, D) mean over the patch tokens
        else:
            feats = self.norm(seq[:, 0])  # LayerNorm is per token: the class token alone suffices
        return (feats, attentions) if return_attention else feats

    def forward_head(self, feats: Tensor, pre_logits: bool = False) -> Tensor:
        feats = self.head_drop(feats)
        return feats if pre_logits else self.head(feats)

    def forward(
        self, x: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, list[list[AttentionStep]]]:
        """Logits (B, num_classes); with `return_attention`, (logits, attention steps)."""
        if return_attention:
            feats, att = self.forward_features(x, return_attention=True)
            return self.forward_head(feats), att
        return self.forward_head(self.forward_features(x))

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
