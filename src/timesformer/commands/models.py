"""`timesformer models`: every preset with its parameters and cost per view."""

from __future__ import annotations

import argparse
import json

import torch

from ..models import PRESETS, TimeSformer, count_flops
from ..models.config import ATTENTION_TYPES


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--attention-type", default=None, choices=ATTENTION_TYPES,
                   help="cost under another attention scheme (default: each preset's, "
                        "divided_space_time)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    return p


def run(args: argparse.Namespace) -> int:
    rows = []
    for name, cfg in PRESETS.items():
        if args.attention_type:
            cfg = cfg.replace(attention_type=args.attention_type)
        with torch.device("meta"):
            model = TimeSformer(cfg)
        cost = count_flops(model)
        h, w = cost["img_size"]
        rows.append(
            {
                "model": name,
                "attention_type": cfg.attention_type,
                "frames": cfg.num_frames,
                "size": int(h) if h == w else [int(h), int(w)],  # pixels (JSON: a number)
                "embed_dim": cfg.embed_dim,
                "depth": cfg.depth,
                "heads": cfg.num_heads,
                "params_m": round(cost["params"] / 1e6, 2),
                "gmacs_per_view": round(cost["gmacs"], 1),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = f"{'model':<20}{'attention':<22}{'frames':>7}{'size':>6}{'dim':>6}{'params (M)':>12}{'GMAC/view':>11}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['model']:<20}{r['attention_type']:<22}{r['frames']:>7}{_size(r['size']):>6}"
            f"{r['embed_dim']:>6}{r['params_m']:>12.2f}{r['gmacs_per_view']:>11.1f}"
        )
    print("(GMAC: multiply-accumulates of one clip; the paper's 'FLOPs' count the same thing)")
    return 0


def _size(size: int | list[int]) -> str:
    return str(size) if isinstance(size, int) else "x".join(map(str, size))
