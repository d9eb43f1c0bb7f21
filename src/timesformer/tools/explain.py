"""Space-time attention maps: which patches of which frames the class token drew on.

Three methods, all computed from the attention weights the model returns with
`model(x, return_attention=True)` (a list per block of `AttentionStep`s):

- "rollout" (Abnar & Zuidema, 2020), adapted to space-time attention. Every attention step of
  every block (temporal, spatial, joint, local, global, time, width, height) becomes one dense
  (S x S) matrix over the whole sequence, S = 1 + T*N: the head-averaged weights scattered to the
  tokens' positions (`AttentionStep.index`); where the class token is copied into every group
  (`cls_shared`) its row is the mean of its rows in the groups, as its output is; tokens that do
  not take part in a step keep an identity row. Each is mixed with the residual,
  0.5*A + 0.5*I (rows renormalised), and the matrices are multiplied in the order the steps run,
  block after block. The class token's row of the product, over the patches, is the map. For
  divided attention the class token reaches patches only through the spatial step and a patch
  reaches the other frames only through the temporal step before it; the product accounts for
  both. space_only keeps one class token per frame and averages them at the end: the rollout is
  done per frame (each frame's copy of the class token is a token of its own) and averaged.
- "cls": the last block's last attention step alone, read from the class token's row (for
  divided: the last spatial step, one row per frame, averaged over the frames as the class
  token's output is).
- "grad_rollout": class-specific. Each step's attention A is weighted by the gradient of the
  target class's logit, Abar = mean over heads of (dlogit/dA * A)^+, and propagated as
  R <- (I + Abar) R (Chefer, Gur and Wolf, ICCV 2021, "Generic attention-model explainability").
  Where the class token's output is a mean over groups, the gradient already carries the
  1/groups factor, so its row is the sum over the groups (the same effective attention).

Maps are float32 (T, H, W) at the input resolution, non-negative, summing to 1 over the whole
clip, so that each frame's map sums to its share of the total (`frame_relevance`).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.attention import AttentionStep
from ..models.timesformer import require_head

METHODS = ("rollout", "cls", "grad_rollout")
UPSAMPLE_MODES = ("nearest", "bilinear")


@dataclass
class Explanation:
    """What `explain` returns for one video.

    maps: (T, H, W) float32 at input resolution, non-negative, summing to 1 over the clip.
    patch_maps: (T, gh, gw) float32, the same relevance per patch (sums to 1).
    frame_relevance: (T,) float32, each frame's share (sums to 1).
    probabilities: (num_classes,) float32 softmax of the logits.
    """

    maps: np.ndarray
    patch_maps: np.ndarray
    frame_relevance: np.ndarray
    probabilities: np.ndarray
    predicted: int
    probability: float
    target: int
    target_probability: float
    method: str
    attention_type: str
    labels: list[str] | None = field(default=None, repr=False)

    def label(self, index: int) -> str:
        """Class name of `index` (from the model config's labels), else the index as text."""
        if self.labels is not None and 0 <= index < len(self.labels):
            return self.labels[index]
        return str(index)

    def to_dict(self, top_k: int = 5) -> dict[str, Any]:
        """JSON-ready summary: predicted and target class, top-k, per-frame relevance."""
        k = min(top_k, len(self.probabilities))
        order = np.argsort(-self.probabilities)[:k]
        return {
            "method": self.method,
            "attention_type": self.attention_type,
            "predicted": {
                "index": self.predicted,
                "label": self.label(self.predicted),
                "probability": self.probability,
            },
            "target": {
                "index": self.target,
                "label": self.label(self.target),
                "probability": self.target_probability,
            },
            "top_k": [
                {"index": int(i), "label": self.label(int(i)), "probability": float(p)}
                for i, p in zip(order, self.probabilities[order])
            ],
            "frame_relevance": [round(float(r), 6) for r in self.frame_relevance],
            "num_frames": int(self.maps.shape[0]),
            "size": [int(self.maps.shape[1]), int(self.maps.shape[2])],
        }


# ----------------------------------------------------------------------------------------------
# Steps: grouping, head averaging, and the dense matrix of one step


@dataclass
class _Step:
    """One attention step of one block: the pieces (one per group length) it was computed in.

    weights: list of (B, G, L, L) head-reduced weights; index: list of (G, L) positions in the
    (possibly remapped) sequence; cls_shared as in `AttentionStep`.
    """

    name: str
    weights: list[Tensor]
    index: list[Tensor]
    cls_shared: bool

    @property
    def num_groups(self) -> int:
        return sum(int(i.shape[0]) for i in self.index)


def group_steps(block_steps: Sequence[AttentionStep]) -> list[list[AttentionStep]]:
    """Split one block's `AttentionStep`s into attention steps.

    A step whose groups have unequal lengths (local/global windows of odd grids) is reported as
    consecutive `AttentionStep`s of the same name; they form one step.
    """
    out: list[list[AttentionStep]] = []
    for s in block_steps:
        if out and out[-1][0].name == s.name:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def _space_only_index(index: Tensor, num_frames: int) -> Tensor:
    """Remap a space_only index (T, 1+N) to a sequence with one class token per frame.

    Positions: 0..T-1 the frames' class tokens, then T + t*N + n the patches.
    """
    frames = torch.arange(index.shape[0], device=index.device)  # (T,)
    out = index - 1 + num_frames  # patches shift by T - 1
    out[:, 0] = frames  # group t is frame t: its class token
    return out


def _build_steps(
    attentions: Sequence[Sequence[AttentionStep]],
    space_only: bool,
    num_frames: int,
    grads: Sequence[Sequence[Tensor]] | None = None,
) -> list[list[_Step]]:
    """Head-reduced steps per block. With grads: (grad * A)^+ head mean (grad_rollout)."""
    blocks = []
    for b, block_steps in enumerate(attentions):
        steps = []
        k = 0
        for pieces in group_steps(block_steps):
            ws, idxs = [], []
            for s in pieces:
                w = s.weights.detach().float()  # (B, G, heads, L, L)
                if grads is not None:
                    g = grads[b][k].float().reshape(w.shape)
                    w = (g * w).clamp(min=0)
                ws.append(w.mean(2))  # (B, G, L, L)
                idx = s.index
                idxs.append(_space_only_index(idx, num_frames) if space_only else idx)
                k += 1
            cls_shared = pieces[0].cls_shared and not space_only
            steps.append(_Step(pieces[0].name, ws, idxs, cls_shared))
        blocks.append(steps)
    return blocks


def _cls_row_scale(step: _Step, L: int, device: torch.device, sum_cls: bool) -> Tensor:
    """(L, 1) row scale: the shared class token's rows are averaged (or summed) over groups."""
    scale = torch.ones(L, 1, device=device)
    if step.cls_shared and not sum_cls:
        scale[0] = 1.0 / step.num_groups
    return scale


def step_matrix(step: _Step, seq_len: int, sum_cls: bool = False) -> Tensor:
    """Dense (B, S, S) matrix of one attention step over the whole sequence.

    Row i holds where token i's output draws from; tokens outside the step keep an identity row
    (plain attention) or a zero row (`sum_cls`, used for gradient-weighted relevance, where the
    matrix is an increment on top of the identity).
    """
    B = step.weights[0].shape[0]
    device = step.weights[0].device
    A = torch.zeros(B, seq_len, seq_len, device=device)
    present = torch.zeros(seq_len, dtype=torch.bool, device=device)
    for w, idx in zip(step.weights, step.index):
        G, L = idx.shape
        rows = idx.unsqueeze(2).expand(G, L, L).reshape(-1)
        cols = idx.unsqueeze(1).expand(G, L, L).reshape(-1)
        vals = w * _cls_row_scale(step, L, device, sum_cls)  # (B, G, L, L)
        for b in range(B):
            A[b].index_put_((rows, cols), vals[b].reshape(-1), accumulate=True)
        present[idx.reshape(-1)] = True
    if not sum_cls:
        absent = (~present).nonzero().squeeze(1)
        A[:, absent, absent] = 1.0
    return A


def _row_times_step(r: Tensor, step: _Step, sum_cls: bool) -> tuple[Tensor, Tensor]:
    """r @ A_part for r (B, S), without building A: A_part holds only the rows of tokens that
    take part in the step. Returns (B, S) product and the (S,) mask of those tokens."""
    out = torch.zeros_like(r)
    present = torch.zeros(r.shape[1], dtype=torch.bool, device=r.device)
    for w, idx in zip(step.weights, step.index):
        G, L = idx.shape
        coeff = r[:, idx] * _cls_row_scale(step, L, r.device, sum_cls).view(1, 1, L)  # (B, G, L)
        contrib = torch.einsum("bgi,bgij->bgj", coeff, w)  # (B, G, L)
        out.index_add_(1, idx.reshape(-1), contrib.reshape(r.shape[0], -1))
        present[idx.reshape(-1)] = True
    return out, present


# ----------------------------------------------------------------------------------------------
# Relevance of every patch to the class token


def _start_vector(B: int, seq_len: int, n_cls: int, device: torch.device) -> Tensor:
    r = torch.zeros(B, seq_len, device=device)
    r[:, :n_cls] = 1.0 / n_cls  # the final feature: the class token (space_only: their mean)
    return r


def propagate(
    blocks: list[list[_Step]], seq_len: int, n_cls: int, method: str, residual: float = 0.5
) -> Tensor:
    """The class token's row of the rollout product (or of the last step for "cls"): (B, S).

    Computed as a row vector times the step matrices from the last step to the first, which is
    the class row of A_last @ ... @ A_first at the cost of the attention weights themselves.
    """
    ref = blocks[0][0].weights[0]
    r = _start_vector(ref.shape[0], seq_len, n_cls, ref.device)
    if method == "cls":
        out, _ = _row_times_step(r, blocks[-1][-1], sum_cls=False)
        return out
    for steps in reversed(blocks):
        for step in reversed(steps):
            if method == "grad_rollout":  # r (I + Abar)
                out, _ = _row_times_step(r, step, sum_cls=True)
                r = r + out
            else:  # r (a A + (1 - a) I), A with identity rows for absent tokens
                out, present = _row_times_step(r, step, sum_cls=False)
                r = residual * (out + r * (~present)) + (1.0 - residual) * r
    return r


def rollout_matrix(
    attentions: Sequence[Sequence[AttentionStep]], seq_len: int, residual: float = 0.5
) -> Tensor:
    """Dense (B, S, S) rollout product over the full sequence (class token + frame-major
    patches); for inspection and small inputs: memory grows as S^2.

    Not for space_only, whose class token is per frame (see `explain`).
    """
    blocks = _build_steps(attentions, space_only=False, num_frames=1)
    B = blocks[0][0].weights[0].shape[0]
    eye = torch.eye(seq_len, device=blocks[0][0].weights[0].device)
    M = eye.expand(B, seq_len, seq_len).clone()
    for steps in blocks:
        for step in steps:
            A = residual * step_matrix(step, seq_len) + (1.0 - residual) * eye
            A = A / A.sum(-1, keepdim=True)  # rows renormalised
            M = A @ M  # this step runs after everything already in M
    return M


def class_relevance(
    attentions: Sequence[Sequence[AttentionStep]],
    geom: tuple[int, int, int],
    method: str = "rollout",
    space_only: bool = False,
    grads: Sequence[Sequence[Tensor]] | None = None,
) -> Tensor:
    """Relevance of every patch to the class token, (B, T, gh, gw), each clip summing to 1."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {', '.join(METHODS)}")
    if method == "grad_rollout" and grads is None:
        raise ValueError("method='grad_rollout' needs the gradients of the attention weights")
    if not attentions:
        raise ValueError("no attention weights: the model has no blocks")
    T, gh, gw = geom
    n_cls = T if space_only else 1
    seq_len = n_cls + T * gh * gw
    blocks = _build_steps(attentions, space_only, T, grads)
    r = propagate(blocks, seq_len, n_cls, method)
    patches = r[:, n_cls:].clamp(min=0)  # (B, T*N)
    total = patches.sum(1, keepdim=True)
    # a map with no mass at all (e.g. zero gradients) is reported as uniform, not as NaN, and
    # said so: a uniform map would otherwise read as "everything matters equally"
    if bool((total <= 0).any()):
        warnings.warn(
            f"{method}: the relevance has no mass (zero attention or gradients to the class "
            "token); the map is uniform and says nothing",
            RuntimeWarning,
            stacklevel=2,
        )
    patches = torch.where(total > 0, patches / total.clamp(min=1e-30), 1.0 / patches.shape[1])
    return patches.view(-1, T, gh, gw)


def upsample_maps(patch_maps: Tensor, size: tuple[int, int], mode: str = "nearest") -> Tensor:
    """(B, T, gh, gw) patch relevance -> (B, T, H, W) pixel relevance keeping every frame's sum.

    nearest: each pixel holds its patch's relevance / pixels per patch (exact); bilinear: a
    smooth density, renormalised so that every frame keeps its share.
    """
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"upsample={mode!r} is not one of {', '.join(UPSAMPLE_MODES)}")
    B, T, gh, gw = patch_maps.shape
    H, W = size
    frame_sum = patch_maps.sum((2, 3), keepdim=True)  # (B, T, 1, 1)
    x = patch_maps.reshape(B * T, 1, gh, gw)
    if mode == "nearest":
        x = F.interpolate(x, size=(H, W), mode="nearest")
    else:
        x = F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False).clamp(min=0)
    x = x.view(B, T, H, W)
    s = x.sum((2, 3), keepdim=True)
    return torch.where(s > 0, x / s.clamp(min=1e-30) * frame_sum, x)


# ----------------------------------------------------------------------------------------------
# The public entry point


def _graph_tensor(w: Tensor) -> Tensor:
    """The tensor the model's forward pass used for the weights `w` reports (a view of it)."""
    base = w._base
    return base if base is not None and base.numel() == w.numel() else w


def _resolve_target(
    target: int | str | None, predicted: int, labels: list[str] | None, n: int
) -> int:
    """Class index from an index, a class name, or an index written as text."""
    if target is None:
        return predicted
    if isinstance(target, str):
        if labels is not None and target in labels:
            return labels.index(target)
        if not target.strip().lstrip("-").isdigit():
            if labels is None:
                raise ValueError(
                    f"class {target!r}: the model has no class names; give an index 0..{n - 1}"
                )
            close = difflib.get_close_matches(target, labels, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"class {target!r} is not one of the model's {n} classes.{hint}")
    t = int(target)
    if not 0 <= t < n:
        raise ValueError(f"class {t} is out of range: the model has {n} classes (0..{n - 1})")
    return t


def explain(
    model: nn.Module,
    video: Tensor,
    target: int | str | None = None,
    method: str = "rollout",
    upsample: str = "nearest",
    labels: Sequence[str] | None = None,
) -> Explanation:
    """Space-time relevance maps of one clip.

    model: a `TimeSformer` (run in eval mode; its mode is restored). video: normalised float (3, T, H, W) or
    (1, 3, T, H, W). target: class index or name for the reported probability and for
    "grad_rollout" (default: the predicted class); "rollout" and "cls" maps do not depend on
    it. method: "rollout", "cls" or "grad_rollout". upsample: "nearest" (exact patch blocks) or
    "bilinear" (smooth). labels: class names (default: the model config's). Returns an
    `Explanation` whose maps are (T, H, W) float32.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {', '.join(METHODS)}")
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"upsample={upsample!r} is not one of {', '.join(UPSAMPLE_MODES)}")
    if not isinstance(video, Tensor):
        raise ValueError(
            f"video: expected a normalised clip tensor (3, T, H, W), got {type(video).__name__}"
            " (read a file with timesformer.tools.explain.load_clip or the CLI's"
            " `timesformer explain VIDEO`)"
        )
    if video.ndim == 4:
        video = video.unsqueeze(0)
    if video.ndim != 5 or video.shape[0] != 1:
        raise ValueError(
            f"expected one video (3, T, H, W) or (1, 3, T, H, W); got {tuple(video.shape)}"
        )
    cfg = model.config
    require_head(model)
    param = next(model.parameters())
    video = video.to(device=param.device, dtype=param.dtype)
    T, H, W = video.shape[2:]
    P = cfg.patch_size
    geom = (T, H // P, W // P)
    space_only = cfg.attention_type == "space_only"
    if labels is None and cfg.labels is not None:
        labels = cfg.labels
    if labels is not None:
        labels = [str(n) for n in labels]
        if len(labels) != cfg.num_classes:
            raise ValueError(f"{len(labels)} class names for a {cfg.num_classes}-way model")

    was_training = model.training
    model.eval()  # no dropout or drop path in the maps
    try:
        grads = None
        if method == "grad_rollout":
            if any(p.is_inference() for p in model.parameters()):
                raise ValueError(
                    "grad_rollout needs gradients: the model's weights were made under "
                    "torch.inference_mode(); build or load the model outside it"
                )
            # a graph even under torch.inference_mode() or with frozen weights (the clone is
            # an ordinary tensor: an inference tensor cannot be saved for the backward pass)
            with torch.inference_mode(False), torch.enable_grad():
                x = video.detach().clone().requires_grad_(True)
                logits, att = model(x, return_attention=True)
                probs = logits.float().softmax(-1)[0].detach()
                predicted = int(probs.argmax())
                tgt = _resolve_target(target, predicted, labels, probs.numel())
                flat = [_graph_tensor(s.weights) for steps in att for s in steps]
                g = torch.autograd.grad(logits[0, tgt], flat, allow_unused=True)
            it = iter(g)
            grads = []
            for steps in att:
                grads.append([])
                for s in steps:
                    gi = next(it)
                    grads[-1].append(torch.zeros_like(s.weights) if gi is None else gi.detach())
        else:
            with torch.no_grad():
                logits, att = model(video, return_attention=True)
            probs = logits.float().softmax(-1)[0]
            predicted = int(probs.argmax())
            tgt = _resolve_target(target, predicted, labels, probs.numel())
    finally:
        model.train(was_training)

    with torch.no_grad():
        patch_maps = class_relevance(att, geom, method, space_only, grads)  # (1, T, gh, gw)
        maps = upsample_maps(patch_maps, (H, W), upsample)  # (1, T, H, W)
    frame_rel = patch_maps[0].sum((1, 2))
    probs_np = probs.cpu().numpy().astype(np.float32)
    return Explanation(
        maps=maps[0].cpu().numpy().astype(np.float32),
        patch_maps=patch_maps[0].cpu().numpy().astype(np.float32),
        frame_relevance=frame_rel.cpu().numpy().astype(np.float32),
        probabilities=probs_np,
        predicted=predicted,
        probability=float(probs_np[predicted]),
        target=tgt,
        target_probability=float(probs_np[tgt]),
        method=method,
        attention_type=cfg.attention_type,
        labels=labels,
    )
