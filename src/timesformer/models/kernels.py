"""Attention kernels chosen per shape: SDPA, or an explicit batched matmul + softmax.

Why: PyTorch's CPU flash kernel for SDPA is tuned for long sequences; for the short ones of a
TimeSformer (8-token temporal groups, 197-token frames, head size 64) an explicit
`q @ k^T -> softmax -> @ v` over batched matmuls can be faster on some CPUs and slower on
others. So the choice is a measurement, not a rule:

- "sdpa": always `F.scaled_dot_product_attention`;
- "explicit": always the batched matmul path (scores in the input dtype, softmax in fp32);
- "joined": SDPA over k consecutive groups joined into one sequence of k*L tokens, with a
  block-diagonal mask so that each token still attends only within its own group: the same
  function, k times fewer and k times longer sequences (the flash kernel's cost per sequence
  dominates at L = 8; k = `joined_groups`, where the inputs' layout allows it, else SDPA);
- "auto" (the default, `DEFAULT_KERNEL`): per (sequence length, groups x heads, head size,
  dtype, device), time the candidates once (SDPA, explicit, and joined with k = 2, 4, 8 where
  k*L <= 64; a few runs each, the fastest median wins) and remember the winner for the
  process. `TIMESFORMER_ATTENTION_KERNEL=sdpa|explicit|joined` fixes the choice for
  every "auto" model of the process (reproducible numbers across processes). Inside a
  torch.compile graph nothing is timed: "auto" follows the fixed training rule below; exports
  (torch.export, ONNX) keep SDPA, the op every runtime knows.

Training (autograd on, or attention dropout) has its own setting, `Attention.train_kernel`,
and its "auto" is a fixed rule, never a timing: every rank of a DDP run and every resumed run
must compute the same thing, and torch.compile keeps the rule in its graph. On the CPU the
explicit path runs where the sequence is short (`TRAIN_EXPLICIT_MAX_LEN`: PyTorch's CPU flash
backward is 2-4x slower than the batched-matmul one there, docs/performance.md), except fp32 on
CPUs with AMX (`CPU_HAS_AMX`, where the explicit one is the slower); longer sequences, CUDA and
everything else use SDPA, which never keeps the (L, L) weights for the
backward pass.
"""

from __future__ import annotations

import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor

KERNELS = ("sdpa", "explicit", "joined", "auto")
# The inference default: measured per shape (docs/performance.md: on one CPU the explicit path
# won 8-token temporal attention 2x in fp32 and both shapes 2-4x in bf16, SDPA won 197-token
# spatial attention in fp32; on an AMX Xeon joined SDPA won 8-token temporal attention 2x in
# bf16 (4 groups, 32 tokens) and 1.5x in fp32 (2 groups); on CUDA "auto" is always SDPA).
DEFAULT_KERNEL = "auto"
ENV_KERNEL = "TIMESFORMER_ATTENTION_KERNEL"  # fixes what "auto" picks, for every shape
_CHOICE: dict[tuple, str] = {}  # "auto" winners, per shape key
# Training on the CPU: the explicit kernel up to this sequence length per dtype, SDPA above.
# Measured fwd+bwd, 2 cores of an AVX-512 BF16 EPYC, head size 64 (docs/performance.md): fp32
# explicit 2.4x faster at L=8 and 16, even at 197, 1.6x slower at 394; bf16 explicit 2.5-7x faster
# from 8 to 197 and 1.9x at 394. The bound also caps the (L, L) weights the backward keeps.
TRAIN_EXPLICIT_MAX_LEN: dict[torch.dtype, int] = {
    torch.float32: 128,
    torch.bfloat16: 256,
    torch.float16: 256,
}
# CPUs with AMX tiles (Intel Xeon since Sapphire Rapids): fp32 batched matmuls of these small
# shapes measured slow there (fwd+bwd of the 8-token step, timesformer_small b4: explicit 57 ms,
# SDPA 30 ms, round 8 of docs/performance.md; inference 8.8 against 1.9 ms), so fp32 training
# keeps SDPA at every length on them; bf16 keeps the rule above (explicit 24 ms, SDPA 36 ms).
# A property of the machine, not a timing: every process on one kind of machine computes alike.
CPU_HAS_AMX = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def check_kernel(kernel: str) -> str:
    """`kernel` if it is one of KERNELS, else a ValueError naming the choices."""
    if kernel not in KERNELS:
        raise ValueError(f"attention kernel {kernel!r} is not one of {', '.join(KERNELS)}")
    return kernel


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """softmax(q k^T / sqrt(d)) v by batched matmuls: q, k, v (G, h, L, d) -> (G, h, L, d).

    Scores are computed in the input dtype (a bf16 matmul where inputs are bf16), the softmax in
    fp32 (as SDPA's kernels do), the weights cast back for the second matmul; `dropout_p` drops
    attention weights (training). Differentiable: training on the CPU uses it for short sequences.
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
    if dropout_p > 0.0:
        p = F.dropout(p, dropout_p, training=True)
    return torch.bmm(p, v.reshape(G * h, L, d)).view(G, h, L, d)


# "joined": the joined sequence length the fixed rule aims at, per element size (bytes), and
# the longest joined sequence "auto" tries (docs/performance.md, round 8).
JOINED_TARGET_LEN = {2: 32, 4: 16}
JOINED_MAX_LEN = 64
_MASKS: dict[tuple, Tensor] = {}


def joined_groups(length: int, dtype: torch.dtype) -> int:
    """How many groups of `length` tokens the fixed "joined" rule joins (1: none)."""
    target = JOINED_TARGET_LEN.get(torch.empty((), dtype=dtype).element_size(), 0)
    return max(1, target // length)


def _joinable(t: Tensor) -> bool:
    """Whether the groups of t (G, h, L, d) lie one after another in memory, token-major, so
    that k consecutive groups are one (h, k*L, d) sequence of the same layout (a view)."""
    G, h, L, d = t.shape
    return G == 1 or t.stride(0) == L * t.stride(2)


def _block_mask(groups: int, length: int, device: torch.device) -> Tensor:
    """(k*L, k*L) boolean mask, True within each of the k diagonal L x L blocks."""
    key = (groups, length, device)
    mask = _MASKS.get(key)
    if mask is None:
        blk = torch.arange(groups * length, device=device) // length  # (k*L,) group of a token
        mask = _MASKS[key] = blk[:, None] == blk[None, :]
    return mask


def _join(t: Tensor, groups: int) -> Tensor:
    """(G, h, L, d) with G a multiple of k -> the view (G/k, h, k*L, d) (see `_joinable`)."""
    G, h, L, d = t.shape
    s0, s1, s2, s3 = t.stride()
    return t.as_strided((G // groups, h, groups * L, d), (s0 * groups, s1, s2, s3))


def joined_attention(
    q: Tensor, k: Tensor, v: Tensor, groups: int, dropout_p: float = 0.0
) -> Tensor:
    """SDPA on q, k, v (G, h, L, d) with `groups` consecutive groups joined into one masked
    sequence: (G, h, L, d), the same function as SDPA on the groups. Falls back to plain SDPA
    where k is 1 or the layout is not joinable; the G % k groups left over run plainly."""
    G, h, L, d = q.shape
    if groups <= 1 or G < groups or not all(_joinable(t) for t in (q, k, v)):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    main = G - G % groups
    mask = _block_mask(groups, L, q.device)
    qj, kj, vj = (_join(t[:main], groups) for t in (q, k, v))  # (main/k, h, k*L, d) views
    o = F.scaled_dot_product_attention(qj, kj, vj, attn_mask=mask, dropout_p=dropout_p)
    # back to (main, h, L, d): a view where the kernel wrote token-major (the CPU kernels do)
    o = o.transpose(1, 2).reshape(main, L, h, d).transpose(1, 2)
    if main == G:
        return o
    rest = F.scaled_dot_product_attention(q[main:], k[main:], v[main:], dropout_p=dropout_p)
    return torch.cat([o, rest], dim=0)


def _candidates(L: int) -> dict[str, tuple[str, int]]:
    """ "auto"'s candidates for sequences of L tokens: name -> (kernel, groups)."""
    cands = {"sdpa": ("sdpa", 1), "explicit": ("explicit", 1)}
    for k in (2, 4, 8):
        if k * L <= JOINED_MAX_LEN:
            cands[f"joined{k}"] = ("joined", k)
    return cands


def _run(name: str, q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0) -> Tensor:
    """Run the kernel `name` ("sdpa", "explicit", "joined" (the fixed rule's k) or "joined<k>")."""
    if name == "explicit":
        return explicit_attention(q, k, v, dropout_p)
    if name.startswith("joined"):
        groups = int(name[6:]) if name[6:] else joined_groups(q.shape[-2], q.dtype)
        return joined_attention(q, k, v, groups, dropout_p)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)


def _median_time(fn, runs: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def measure_choice(q: Tensor, k: Tensor, v: Tensor, runs: int = 3) -> dict[str, float]:
    """Median seconds of each candidate on this shape (no autograd): {"sdpa": s, "explicit": s,
    "joined4": s, ...} (joined k groups, see `_candidates`)."""
    times = {}
    with torch.no_grad():
        for name in _candidates(q.shape[-2]):
            times[name] = _median_time(lambda n=name: _run(n, q, k, v), runs)
    return times


def _forced() -> str | None:
    """The kernel `TIMESFORMER_ATTENTION_KERNEL` fixes, or None where it is unset."""
    forced = os.environ.get(ENV_KERNEL, "").strip()
    if forced and forced not in ("sdpa", "explicit", "joined"):
        raise ValueError(f"{ENV_KERNEL}={forced!r}: expected 'sdpa', 'explicit' or 'joined'")
    return forced or None


def training_kernel(length: int, dtype: torch.dtype, device_type: str) -> str:
    """What "auto" runs in training for sequences of `length` tokens: a fixed rule (module doc)."""
    forced = _forced()
    if forced:
        return forced
    if device_type != "cpu" or (CPU_HAS_AMX and dtype == torch.float32):
        return "sdpa"
    return "explicit" if length <= TRAIN_EXPLICIT_MAX_LEN.get(dtype, 0) else "sdpa"


def choose(q: Tensor, k: Tensor, v: Tensor) -> str:
    """The remembered "auto" winner for this shape, measured the first time it is seen."""
    G, h, L, d = q.shape
    key = (L, G * h, d, q.dtype, q.device.type)
    got = _CHOICE.get(key)
    if got is None:
        forced = _forced()
        if forced:
            got = forced
        elif q.device.type != "cpu":  # cuda: flash / memory-efficient kernels; meta: counting
            got = "sdpa"
        else:
            t = measure_choice(q, k, v)
            got = min(t, key=t.get)
        _CHOICE[key] = got
    return got


def choices() -> dict[tuple, str]:
    """The "auto" choices made so far in this process, {(L, G*h, d, dtype, device): kernel}
    ("sdpa", "explicit", "joined<k>" for k groups joined, or a forced kernel's name)."""
    return dict(_CHOICE)


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    kernel: str = "sdpa",
    dropout_p: float = 0.0,
    train_kernel: str = "sdpa",
) -> Tensor:
    """Attention of q, k, v (G, h, L, d) -> (G, h, L, d): `kernel` in inference, `train_kernel`
    with autograd or dropout (see the module doc)."""
    if torch.is_grad_enabled() or dropout_p > 0.0:
        if train_kernel == "auto":  # a fixed rule, no timing: graphs (torch.compile) keep it
            train_kernel = training_kernel(q.shape[-2], q.dtype, q.device.type)
        return _run(train_kernel, q, k, v, dropout_p)
    if kernel != "sdpa":
        if torch.compiler.is_exporting():  # exported graphs (ONNX, .pt2): the standard op
            kernel = "sdpa"
        elif torch.compiler.is_compiling():  # no timing inside a graph: the fixed rule
            kernel = (
                training_kernel(q.shape[-2], q.dtype, q.device.type) if kernel == "auto" else kernel
            )
        elif kernel == "auto":
            kernel = choose(q, k, v)
    return _run(kernel, q, k, v)
