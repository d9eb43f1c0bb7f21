"""The last block's class-token-only path (`model.trim_last_block`), on and off, in one process.

Times `model(x)` under `torch.inference_mode()` (bf16 autocast, then fp32) with the trim on and
off alternating (A B, B A, ...), so both see the same machine load, and prints the medians and
the median of the paired ratios. Outputs of the two agree to float rounding (tested in
tests/models/test_trim_last.py); this measures only the time.

    python benchmarks/trim_last.py                        # base 8x224 b1, 7 pairs, 2 threads
    python benchmarks/trim_last.py --model timesformer_small --pairs 11 --dtype bf16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from timesformer.models import create_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="timesformer_base")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=7, help="timed pairs per dtype (default 7)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--dtype", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = create_model(args.model).eval()
    cfg = model.config
    size = cfg.img_size if isinstance(cfg.img_size, int) else cfg.img_size[0]
    x = torch.randn(args.batch_size, 3, cfg.num_frames, size, size)  # (B, C, T, H, W)

    def run(trim: bool, amp: bool) -> float:
        model.trim_last_block = trim
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=amp):
            t = time.perf_counter()
            model(x)
            return time.perf_counter() - t

    print(f"{args.model} {cfg.num_frames}x{size} b{args.batch_size}, "
          f"{args.threads} threads, {torch.backends.cpu.get_cpu_capability()}")  # fmt: skip
    for name in args.dtype:
        amp = name == "bf16"
        run(True, amp), run(False, amp)  # warm-up: kernel choices, packed weights
        times: dict[bool, list[float]] = {True: [], False: []}
        for i in range(args.pairs):
            for trim in (True, False) if i % 2 else (False, True):
                times[trim].append(run(trim, amp))
        paired = statistics.median(a / b for a, b in zip(times[True], times[False]))
        on, off = statistics.median(times[True]), statistics.median(times[False])
        print(f"{name}: trimmed {on * 1e3:.0f} ms, every token {off * 1e3:.0f} ms, "
              f"paired ratio {paired:.3f} ({args.pairs} pairs)")  # fmt: skip


if __name__ == "__main__":
    main()
