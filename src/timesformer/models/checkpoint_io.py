"""Reading and writing checkpoint files: the one place that touches the disk for weights.

Reading never executes code: torch files go through `torch.load(weights_only=True)` with the
numpy globals that training checkpoints need (full unpickling only after a warning), and
safetensors files are parsed by `safetensors`. Writing goes through `files.atomic_write`, so a
crash never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..files import atomic_write, atomic_write_text, ensure_dir
from .formats.common import ACCEPTED_FORMATS, tensors

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


# ------------------------------------------------------------------ reading


def is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= os.path.getsize(path) - 8


def read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of a .safetensors file, on the CPU."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - any parse failure means "not readable"
        raise ValueError(f"{path}: unreadable safetensors file ({e})") from e
    return state, meta


def _numpy_safe_globals() -> list[Any]:
    """Globals that numpy arrays (e.g. RNG states in training checkpoints) need to unpickle."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return []
    out: list[Any] = [np.ndarray, np.dtype]
    try:
        out.append(np._core.multiarray._reconstruct)
    except AttributeError:  # numpy < 2
        out.append(np.core.multiarray._reconstruct)
    out += [type(np.dtype(t)) for t in ("uint32", "int64", "float32", "float64", "uint8")]
    return out


def torch_load(path: Path) -> Any:
    """torch.load with the safe unpickler first; full unpickling only with a warning."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04" and magic[:1] != b"\x80":  # neither zip nor pickle
        raise ValueError(
            f"{path}: unknown checkpoint format (not a torch or safetensors file). "
            f"Accepted formats: {ACCEPTED_FORMATS}"
        )
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        reason = next((ln for ln in lines if "Unsupported global" in ln), lines[-1])
        warnings.warn(
            f"{path}: holds objects the safe loader refuses ({reason}); unpickling it fully. "
            "Only load checkpoints you trust.",
            stacklevel=3,
        )
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        raise ValueError(
            f"{path}: unknown checkpoint format (not a torch or safetensors file: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}). "
            f"Accepted formats: {ACCEPTED_FORMATS}"
        ) from e


def read_weights_file(path: Path) -> dict[str, Tensor]:
    """The tensors of one weights file (safetensors or a torch-saved state dict)."""
    if is_safetensors(path):
        return read_safetensors(path)[0]
    return tensors(torch_load(path), str(path))


def read_hf_config(path: Path) -> dict[str, Any]:
    """config.json of a Hugging Face model directory; errors say what the folder lacks."""
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(
            f"{path}: directory has no config.json, so it is not a Hugging Face model "
            f"directory. Accepted formats: {ACCEPTED_FORMATS}"
        )
    try:
        return json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_file}: not valid JSON ({e})") from e


def read_hf_weights(path: Path) -> dict[str, Tensor]:
    """The weights of a Hugging Face model directory: one file, or shards named by an index."""
    for name in HF_WEIGHT_FILES:
        if (path / name).is_file():
            return read_weights_file(path / name)
        index = path / f"{name}.index.json"
        if index.is_file():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state: dict[str, Tensor] = {}
            for f in files:
                if not (path / f).is_file():
                    raise FileNotFoundError(f"{path / f}: shard listed in {index.name} is missing")
                state.update(read_weights_file(path / f))
            return state
    raise FileNotFoundError(
        f"{path}: no weights found; expected model.safetensors or pytorch_model.bin "
        "(or a sharded *.index.json)"
    )


def sibling_config(folder: Path | None, model_type: str) -> dict[str, Any] | None:
    """config.json next to a bare Hugging Face weights file, when it describes `model_type`."""
    if folder is None or not (folder / "config.json").is_file():
        return None
    try:
        conf = json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError:
        return None
    return conf if conf.get("model_type") == model_type else None


def hub_hint(path: Path) -> str:
    """A hint for 'org/name' paths, which look like Hugging Face Hub ids (no downloads here)."""
    if path.is_absolute() or path.suffix or len(path.parts) != 2:
        return ""
    return (
        f" (a Hugging Face Hub id? Download it first, e.g. `hf download {path.as_posix()} "
        "--local-dir DIR`, and pass DIR)"
    )


# ------------------------------------------------------------------ writing


def torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save `obj` to `path` atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def write_safetensors(
    state: Mapping[str, Tensor], path: str | Path, metadata: Mapping[str, str]
) -> Path:
    """Write contiguous CPU tensors as .safetensors with string `metadata`, atomically."""
    from safetensors.torch import save_file

    return atomic_write(path, lambda tmp: save_file(dict(state), str(tmp), metadata=dict(metadata)))


def write_hf_dir(
    state: Mapping[str, Tensor], config: Mapping[str, Any], directory: str | Path
) -> Path:
    """A Hugging Face model directory: model.safetensors and config.json."""
    directory = ensure_dir(directory)
    write_safetensors(state, directory / "model.safetensors", {"format": "pt"})
    atomic_write_text(
        directory / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n"
    )
    return directory
