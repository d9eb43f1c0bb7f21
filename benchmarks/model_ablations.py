"""Microbenchmarks behind the optimisation log of docs/performance.md.

Each experiment times alternatives of one piece of the model in one process, alternating, and
prints the best and median milliseconds (and the ratio to the first alternative, paired run by
run). One thread by default: on a shared machine a single thread is disturbed least.

    python benchmarks/model_ablations.py attention      # SDPA vs explicit attention, base shapes
    python benchmarks/model_ablations.py patch-embed    # Conv2d vs one matmul, fp32 and bf16
    python benchmarks/model_ablations.py mlp            # GELU in place or not, token chunks
    python benchmarks/model_ablations.py linear-bias    # addmm vs mm + add_(bias)
    python benchmarks/model_ablations.py chunks --frames 96 --depth 1   # fast-path chunk sizes
    python benchmarks/model_ablations.py all
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import timesformer
from timesformer.tools.bench import paired_ratio, time_alternating

D, HEADS, T, N, P = 768, 12, 8, 196, 16  # timesformer_base, 8 x 224


def report(title: str, fns: dict[str, Callable[[], object]], repeats: int) -> None:
    """Time `fns` alternating; print one line per alternative."""
    times = time_alternating(fns, repeats=repeats, warmup=1)
    first = next(iter(times))
    print(f"\n{title}")
    for k, t in times.items():
        wall = t["wall"]
        ratio = paired_ratio(wall, times[first]["wall"])
        print(
            f"  {k:<28} best {min(wall) * 1e3:8.2f} ms   median {statistics.median(wall) * 1e3:8.2f}"
            f" ms   x{ratio:.3f} of {first}"
        )


def attention(repeats: int) -> None:
    """The temporal (196 groups of 8) and spatial (8 groups of 197) steps of one block."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    for name, (G, L) in {"temporal": (N, T), "spatial": (T, N + 1)}.items():
        qkv = torch.randn(3, G, HEADS, L, D // HEADS)  # q, k, v: (G, h, L, d) each

        def sdpa(qkv: torch.Tensor = qkv) -> torch.Tensor:
            return F.scaled_dot_product_attention(*qkv.unbind(0))

        def explicit(qkv: torch.Tensor = qkv) -> torch.Tensor:
            q, k, v = qkv.unbind(0)
            return ((q * (D // HEADS) ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v

        def math(qkv: torch.Tensor = qkv) -> torch.Tensor:
            with sdpa_kernel([SDPBackend.MATH]):
                return F.scaled_dot_product_attention(*qkv.unbind(0))

        fns = {"sdpa (default kernel)": sdpa, "explicit softmax(QK^T)V": explicit}
        fns |= {"sdpa math backend": math}
        report(f"attention, {name} step: {G} x {HEADS} heads x {L}^2", fns, repeats)


def patch_embed(repeats: int) -> None:
    """The patch embedding of one clip: a stride-16 Conv2d, or one matmul over the patches."""
    x = torch.randn(1, 3, T, 224, 224)
    conv = torch.nn.Conv2d(3, D, P, P)
    g = 224 // P

    def as_conv() -> torch.Tensor:
        return conv(x.transpose(1, 2).reshape(T, 3, 224, 224)).flatten(2).transpose(1, 2)

    def as_matmul() -> torch.Tensor:
        p = x.reshape(1, 3, T, g, P, g, P).permute(0, 2, 3, 5, 1, 4, 6).reshape(-1, 3 * P * P)
        return F.linear(p, conv.weight.flatten(1), conv.bias).view(T, g * g, D)

    with torch.no_grad():
        diff = (as_conv() - as_matmul()).abs().max().item()
        report(
            f"patch embedding, fp32 (max |diff| {diff:.1e})",
            {"conv": as_conv, "matmul": as_matmul},
            repeats,
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            report("patch embedding, bf16 autocast", {"conv": as_conv, "matmul": as_matmul}, 2)


def mlp(repeats: int) -> None:
    """One block's MLP over 1569 tokens, residual added in place; GELU in place or not."""
    x = torch.randn(1 + T * N, D)
    ln, fc1, fc2 = torch.nn.LayerNorm(D), torch.nn.Linear(D, 4 * D), torch.nn.Linear(4 * D, D)

    def variant(chunk: int, inplace: bool) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            out = x.clone()
            for c in out.split(chunk):
                h = fc1(ln(c))
                h = torch.ops.aten.gelu_(h) if inplace else F.gelu(h)
                c.add_(fc2(h))
            return out

        return run

    fns = {f"chunk {c}, gelu {'in place' if ip else 'new buffer'}": variant(c, ip)
           for c in (1569, 800, 512) for ip in (False, True)}  # fmt: skip
    with torch.no_grad():
        report("MLP of one block (1569 tokens)", fns, repeats)


def linear_bias(repeats: int) -> None:
    """addmm (bias copied into the output, then C += A B) against mm then add_(bias)."""
    for k, n in ((D, 3 * D), (D, D), (D, 4 * D), (4 * D, D)):
        x, w, b = torch.randn(1 + T * N, k), torch.randn(n, k) * 0.02, torch.randn(n)
        fns = {"addmm": lambda x=x, w=w, b=b: F.linear(x, w, b)}
        fns |= {"mm + add_(bias)": lambda x=x, w=w, b=b: F.linear(x, w).add_(b)}
        report(f"linear 1569 x {k} -> {n}", fns, repeats)


def chunks(repeats: int, frames: int, depth: int) -> None:
    """The whole model: reference path against the fast path at several chunk sizes."""
    model = timesformer.create_model(
        "timesformer_base", num_frames=frames, depth=depth, zero_init_temporal_fc=False
    ).eval()
    x = torch.randn(1, 3, frames, 224, 224)

    def run(fast: bool, chunk: int | None) -> Callable[[], torch.Tensor]:
        def step() -> torch.Tensor:
            model.set_inference_options(fast=fast, chunk_tokens=chunk)
            with torch.no_grad():
                return model(x)

        return step

    fns = {"reference path": run(False, None), "fast, no chunks": run(True, None)}
    fns |= {f"fast, chunks of {c}": run(True, c) for c in (4096, 2048, 1024)}
    report(f"base divided {frames}x224, {depth} blocks", fns, repeats)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "experiment", choices=["attention", "patch-embed", "mlp", "linear-bias", "chunks", "all"]
    )
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--frames", type=int, default=8, help="chunks: frames per clip")
    p.add_argument("--depth", type=int, default=2, help="chunks: blocks (each block is alike)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {time.strftime('%Y-%m-%d %H:%M')}")
    run = {
        "attention": lambda: attention(args.repeats),
        "patch-embed": lambda: patch_embed(args.repeats),
        "mlp": lambda: mlp(args.repeats),
        "linear-bias": lambda: linear_bias(args.repeats),
        "chunks": lambda: chunks(max(3, args.repeats // 2), args.frames, args.depth),
    }
    for name, fn in run.items():
        if args.experiment in (name, "all"):
            fn()


if __name__ == "__main__":
    main()
