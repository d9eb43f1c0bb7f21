"""Checkpoint integrity: the payload hash our writers store, and the finite-weights check.

The zip container of torch files checks no CRCs, and safetensors stores raw bytes, so a flipped
byte inside a tensor loads silently. Our writers store `payload_digest` of what they write (every
tensor's name, dtype, shape and bytes, and every plain value, in sorted key order) and readers
verify it (`verify_digest`). `check_finite` refuses NaN or infinite weights, for every format.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

DIGEST_KEY = "payload_sha256"
_PLAIN = (str, int, float, bool, bytes, type(None))


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: damaged, refused (unsafe), or not a checkpoint."""


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name where it has none)."""
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


def named(message: str, source: str) -> str:
    """`message`, prefixed with `source` unless it names it already."""
    return message if source in message else f"{source}: {message}"


def payload_digest(obj: Any) -> str:
    """SHA-256 (hex) over the tensors and plain values of `obj`, walked in sorted key order."""
    h = hashlib.sha256()
    _feed(h, "", obj)
    return h.hexdigest()


def verify_digest(obj: Any, expected: Any, source: str) -> None:
    """Raise CheckpointError when `obj` does not hash to `expected` (the stored digest)."""
    if not isinstance(expected, str) or payload_digest(obj) != expected:
        raise CheckpointError(
            f"checkpoint {source} is corrupt: tensor payload hash mismatch; "
            "re-download or re-export it"
        )


def check_finite(state: Mapping[str, Tensor], source: str) -> None:
    """Raise CheckpointError naming the first floating-point weight with NaN or inf values."""
    for name, t in state.items():
        if isinstance(t, Tensor) and (t.is_floating_point() or t.is_complex()) and t.numel():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise CheckpointError(
                    f"{source}: weight {name} has {bad} non-finite value(s) (NaN or inf) of "
                    f"{t.numel()}; the checkpoint is damaged or its training diverged"
                )


def _feed(h: Any, name: str, obj: Any) -> None:
    """Hash `obj` under its path `name` (tensors: dtype, shape and raw bytes)."""
    if isinstance(obj, Tensor):
        t = obj.detach()
        h.update(f"{name}\0tensor\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel() and t.layout == torch.strided:
            data = t.cpu().contiguous().reshape(-1)
            if data.dtype != torch.uint8:
                data = data.view(torch.uint8)
            h.update(data.numpy().data)
    elif isinstance(obj, Mapping):
        h.update(f"{name}\0map\0{len(obj)}\0".encode())
        for key in sorted(obj, key=repr):
            _feed(h, f"{name}/{key!r}", obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{name}\0{type(obj).__name__}\0{len(obj)}\0".encode())
        for i, v in enumerate(obj):
            _feed(h, f"{name}/{i}", v)
    elif isinstance(obj, _PLAIN):
        h.update(f"{name}\0{type(obj).__name__}\0{obj!r}\0".encode())
    elif type(obj).__name__ == "ndarray" and hasattr(obj, "tobytes"):  # numpy (RNG states)
        h.update(f"{name}\0ndarray\0{obj.dtype}\0{obj.shape}\0".encode())
        if obj.dtype != object:
            h.update(obj.tobytes())
    else:  # other objects: their type only (their repr may hold addresses)
        h.update(f"{name}\0{type(obj).__module__}.{type(obj).__qualname__}\0".encode())
