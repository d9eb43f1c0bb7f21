"""Fuzz: corrupted tiny checkpoints (.pt and .safetensors: flipped bytes, cuts at random
offsets, damaged zip / safetensors headers, random garbage) through read_checkpoint and
from_pretrained. Each either loads or raises CheckpointError with one line naming the file:
never another exception type, a hang (bounded time per file) or a crashed process."""

from __future__ import annotations

import random
from pathlib import Path

import _fuzz_runner

from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint, save_safetensors

CASES = 200
PER_FILE_S = 5  # the child's own alarm; the parent allows a little more before killing it
TINY = dict(img_size=16, patch_size=8, num_frames=2, embed_dim=32, depth=1, num_heads=2,
            mlp_ratio=2.0, num_classes=3)  # fmt: skip


def corrupt(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One seeded corruption of ``data``, with its name."""
    b = bytearray(data)
    kind = rng.choice(["flip", "head", "tail", "cut", "cut+flip", "zero-block", "garbage"])
    if kind in ("flip", "cut+flip"):
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    if kind == "head":  # zip local header / safetensors length and JSON header
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(min(200, len(b)))] = rng.randrange(256)
    if kind == "tail":  # the zip central directory
        for _ in range(rng.randint(1, 6)):
            b[len(b) - 1 - rng.randrange(min(300, len(b)))] = rng.randrange(256)
    if kind in ("cut", "cut+flip"):
        del b[rng.randint(0, len(b) - 1) :]
    if kind == "zero-block":
        a, n = rng.randrange(len(b)), rng.randint(16, 1024)
        b[a : a + n] = bytes(len(b[a : a + n]))
    if kind == "garbage":
        prefix = rng.choice([b"", b"PK\x03\x04", b"\x80\x02", bytes(b[:9])])
        b = bytearray(prefix + rng.randbytes(rng.randint(0, 4096)))
    return kind, bytes(b)


def run_children(paths: list[Path]) -> dict[int, str]:
    """Read every path in child processes (see tests/_fuzz_runner.py): case -> outcome line."""
    return _fuzz_runner.run_children(
        Path(__file__).with_name("_ckpt_fuzz_child.py"), paths, PER_FILE_S
    )


def test_corrupted_checkpoints_load_or_fail_with_one_checkpoint_error(tmp_path) -> None:
    model = TimeSformer(TimeSformerConfig(**TINY)).eval()
    sources = {
        ".pt": save_checkpoint(model, tmp_path / "src.pt", epoch=2).read_bytes(),
        ".safetensors": save_safetensors(model, tmp_path / "src.safetensors").read_bytes(),
    }
    rng = random.Random(20240611)
    paths, kinds = [], []
    for k in range(CASES):
        suffix = list(sources)[k % len(sources)]
        kind, data = corrupt(sources[suffix], rng)
        p = tmp_path / f"case{k:03d}{suffix}"
        p.write_bytes(data)
        paths.append(p)
        kinds.append(f"{kind} {suffix}")
    outcome = run_children(paths)
    bad = {f"{k} ({kinds[k]})": v for k, v in outcome.items() if not v.startswith("DONE")}
    assert not bad, bad
    loaded = sum(v == "DONE loaded" for v in outcome.values())
    assert len(outcome) == CASES and 0 < loaded < CASES  # both outcomes occur
