"""Training step, eager against `torch.compile`, ours and Hugging Face's, in one process.

Builds four runners with `timesformer.tools.bench.cases.make_runner` (forward + backward + the
fused AdamW step, the bench's training case), warms each up (the compiled ones compile here:
minutes at full depth on a few cores), then steps them in turn for --rounds rounds, so that every
runner sees the same machine load, and prints the medians, each round's times and the paired
ratios (per round, then the median). What `train.compile=true` buys is the "ours, compile" row.

    python benchmarks/train_compile.py                          # small 8x224 b4 bf16, 12 blocks
    python benchmarks/train_compile.py --depth 2 --dtype fp32 --no-hf
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from timesformer.tools.bench.cases import Case, make_runner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="timesformer_small")
    ap.add_argument("--depth", type=int, default=None, help="blocks (default: the model's)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--dtype", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--no-hf", action="store_true", help="ours only (no transformers needed)")
    ap.add_argument("--json", default=None, help="also write the times here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    over = {} if args.depth is None else {"depth": args.depth}
    impls = ["ours"] if args.no_hf else ["ours", "hf"]
    runners = {}
    for impl in impls:
        for comp in (False, True):
            case = Case(model=args.model, batch_size=args.batch_size, train=True, optimizer=True,
                        dtype=args.dtype, compile=comp, overrides=over)  # fmt: skip
            runners[f"{impl}, {'compile' if comp else 'eager'}"] = make_runner(case, impl)
    warm = {}
    for name, r in runners.items():
        t = time.perf_counter()
        r.step()
        r.step()
        warm[name] = time.perf_counter() - t
        print(f"{name}: 2 warm-up steps (compile included) {warm[name]:.1f} s", flush=True)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.rounds):
        for name, r in runners.items():
            t = time.perf_counter()
            r.step()
            times[name].append(time.perf_counter() - t)
    print(f"\n{args.model} depth {args.depth or 'full'}, batch {args.batch_size}, {args.dtype}, "
          f"{args.threads} threads, {torch.backends.cpu.get_cpu_capability()}, "
          f"{args.rounds} rounds\n")  # fmt: skip
    print("| step | median | rounds (s) |\n|---|---:|---|")
    for name, v in times.items():
        print(f"| {name} | {statistics.median(v):.3f} s | {' '.join(f'{x:.2f}' for x in v)} |")
    print()
    wanted = [("ours, compile", "ours, eager"), ("ours, eager", "hf, eager"),
              ("ours, compile", "hf, eager"), ("ours, compile", "hf, compile"),
              ("hf, compile", "hf, eager")]  # fmt: skip
    for a, b in wanted:
        if a in times and b in times:
            pairs = [x / y for x, y in zip(times[a], times[b])]
            print(f"time {a} / {b}: median of pairs {statistics.median(pairs):.2f} "
                  f"({min(pairs):.2f}-{max(pairs):.2f})")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "warm_s": warm, "times_s": times}, f, indent=2)


if __name__ == "__main__":
    main()
