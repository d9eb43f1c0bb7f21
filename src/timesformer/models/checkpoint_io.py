"""Reading and writing checkpoint files: the one place that touches the disk for weights.

Reading never executes code: torch files go through `torch.load(weights_only=True)` with a
short list of harmless globals that real releases hold (argparse.Namespace, numpy scalars,
arrays and dtypes, yacs CfgNode read as a plain dict); a file needing anything else is refused
in one line unless the caller opts in with `allow_pickle=True` (`--allow-pickle`), which runs
code from the file. safetensors files are parsed by `safetensors`. Every failure to read a file
is a `CheckpointError` (a ValueError) naming the file; a missing file stays FileNotFoundError.

Integrity: our writers store a SHA-256 of the payload (`integrity.payload_digest`) and every
reader here verifies it when present. Writing goes through `files.atomic_write`, so a crash
never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch import Tensor

from ..files import atomic_write, atomic_write_text, ensure_dir
from .formats.common import ACCEPTED_FORMATS, tensors
from .integrity import DIGEST_KEY, CheckpointError, payload_digest, verify_digest

__all__ = ["CheckpointError"]

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PICKLE_HINT = "pass allow_pickle=True (command line: --allow-pickle)"


# ------------------------------------------------------------------ reading


def is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= os.path.getsize(path) - 8


ST_HEADER_LIMIT = 100_000_000  # safetensors' own cap on the JSON header's length
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip format


def refuse_damaged(path: Path) -> None:
    """CheckpointError saying what is wrong with a file that is empty or cut short (a
    safetensors file shorter than its header says), before its format is guessed from it.
    Reads the first bytes and a safetensors header (JSON) only: nothing is unpickled."""
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(
            f"{path}: empty file (0 bytes), expected a .pt/.safetensors checkpoint"
        )
    with open(path, "rb") as f:
        head = f.read(9)
        n = int.from_bytes(head[:8], "little")
        if len(head) < 9 or head[8:9] != b"{" or not 2 <= n <= ST_HEADER_LIMIT:
            if len(head) < 9 and path.suffix.lower() == ".safetensors":
                raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, shorter "
                                      "than its 8-byte header length)")  # fmt: skip
            if size < len(ZIP_MAGIC) and ZIP_MAGIC.startswith(head):
                raise CheckpointError(_TRUNCATED_ZIP.format(path=path))
            return
        if 8 + n > size:
            raise CheckpointError(f"{path}: truncated safetensors file (header says at least "
                                  f"{8 + n} bytes, file has {size})")  # fmt: skip
        f.seek(8)
        try:
            header = json.loads(f.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items()
                       if k != "__metadata__"), default=0)  # fmt: skip
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
            return  # not a header this can read: safetensors says what is wrong with it
    if 8 + n + end > size:
        raise CheckpointError(f"{path}: truncated safetensors file (header says {8 + n + end} "
                              f"bytes, file has {size})")  # fmt: skip


_TRUNCATED_ZIP = "{path}: truncated or damaged torch checkpoint (zip archive incomplete)"


def _zip_complete(path: Path) -> bool:
    """Whether a zip file's central directory (at its end) can be read: a cut file's cannot."""
    import zipfile

    try:
        with zipfile.ZipFile(path):
            return True
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of a .safetensors file, on the CPU; the payload hash is verified
    (and removed from the metadata) when the file carries one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - any parse failure means "not readable"
        refuse_damaged(path)  # a cut file: said as such (header says N bytes, file has M)
        raise CheckpointError(f"{path}: unreadable safetensors file ({_first_line(e)})") from e
    digest = meta.pop(DIGEST_KEY, None)
    if digest is not None:
        verify_digest({"tensors": state, "metadata": meta}, digest, str(path))
    return state, meta


class _CfgNodeAsDict:
    """Stand-in for `yacs.config.CfgNode` (the official code's config class, a dict subclass):
    unpickling makes a plain OrderedDict instead, whose attributes take the node's flags."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return OrderedDict()


def _safe_globals() -> list[Any]:
    """Globals the safe unpickler may use beyond torch's own: harmless data types only."""
    import argparse

    out: list[Any] = [
        argparse.Namespace,
        OrderedDict,
        (_CfgNodeAsDict, "yacs.config.CfgNode"),
    ]
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return out
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    out += [np.ndarray, np.dtype]
    for name in ("scalar", "_reconstruct"):
        fn = getattr(core.multiarray, name)
        # files name them under the numpy that wrote them: numpy.core or numpy._core
        out += [(fn, f"numpy.core.multiarray.{name}"), (fn, f"numpy._core.multiarray.{name}")]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    else:  # pragma: no cover
        out += [
            type(np.dtype(t)) for t in ("bool", "uint8", "uint32", "int64", "float32", "float64")
        ]
    return out


def _first_line(e: BaseException) -> str:
    """The line of `e` that says what went wrong (torch's weights-only errors bury it)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error:" in ln:
            rest = ln.split("WeightsUnpickler error:", 1)[1].strip()
            return rest or (lines[i + 1] if i + 1 < len(lines) else ln)
    return lines[0] if lines else type(e).__name__


def _unsafe_globals(path: Path, error: BaseException) -> list[str]:
    """Names of the globals the safe unpickler refused in `path` (empty: not a refusal)."""
    names: list[str] = []
    try:
        names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001 - legacy or damaged file: read torch's message instead
        pass
    if not names:  # the zip format says "Unsupported global: GLOBAL m.f ...", the legacy one
        # "Trying to load unsupported GLOBAL m.f whose module m is blocked"
        names = sorted(
            set(re.findall(r"unsupported (?:global: )?GLOBAL ([\w.]+)", str(error), re.I))
        )
    return names


def _refuse_exports(path: Path, magic: bytes) -> None:
    """CheckpointError naming an export (`timesformer export`'s ONNX or .pt2 file) given
    where a checkpoint goes: it holds a traced graph, not weights this package rebuilds from."""
    hint = "pass the checkpoint it was exported from, or run the export itself (docs/deploy.md)"
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(f"{path}: an ONNX export, not a checkpoint; {hint}")
    if magic == b"PK\x03\x04":
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                program = any(n.endswith("/archive_format") for n in z.namelist())
        except (zipfile.BadZipFile, OSError):
            return
        if program:
            raise CheckpointError(
                f"{path}: a torch.export program (.pt2), not a checkpoint; {hint}"
            )


def torch_load(path: Path, *, allow_pickle: bool = False) -> Any:
    """torch.load with the safe unpickler; the payload hash is verified when present.

    A file needing globals the safe unpickler refuses raises CheckpointError naming them,
    unless `allow_pickle=True` (then it is unpickled fully: that runs code from the file).
    An empty or cut-short file (a safetensors one too: it comes here when not recognised) is
    refused saying so (`refuse_damaged`).
    """
    refuse_damaged(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    _refuse_exports(path, magic)
    if magic != b"PK\x03\x04" and magic[:1] != b"\x80":  # neither zip nor pickle
        raise CheckpointError(
            f"{path}: unknown checkpoint format (not a torch or safetensors file). "
            f"Accepted formats: {ACCEPTED_FORMATS}"
        )
    with torch.serialization.safe_globals(_safe_globals()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")  # damaged files
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - damaged files fail in many ways: one error
            names = _unsafe_globals(path, e) if isinstance(e, pickle.UnpicklingError) else []
            if not names and magic == ZIP_MAGIC and not _zip_complete(path):
                raise CheckpointError(_TRUNCATED_ZIP.format(path=path)) from None
            if not names:
                raise CheckpointError(
                    f"{path}: cannot read it as a torch checkpoint: damaged or not a checkpoint "
                    f"({_first_line(e)})"
                ) from None
            if not allow_pickle:
                raise CheckpointError(
                    f"{path}: refused to load: it holds {', '.join(names)}, which only full "
                    f"unpickling can build, and that runs code from the file; if you trust the "
                    f"file, {PICKLE_HINT}"
                ) from None
            obj = _load_unsafe(path)
    return _checked(obj, path)


def _load_unsafe(path: Path) -> Any:
    """Full unpickling, only on the caller's explicit opt-in."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(
            f"{path}: cannot unpickle the torch file ({_first_line(e)})"
        ) from None


def _checked(obj: Any, path: Path) -> Any:
    """`obj` with its payload hash verified and removed; a yacs cfg turned into plain dicts."""
    if not isinstance(obj, Mapping):
        return obj
    obj = dict(obj)
    digest = obj.pop(DIGEST_KEY, None)
    if digest is not None:
        verify_digest(obj, digest, str(path))
    if isinstance(obj.get("cfg"), Mapping):
        obj["cfg"] = _plain(obj["cfg"])
    return obj


def _plain(node: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in node.items()}


def read_weights_file(path: Path, *, allow_pickle: bool = False) -> dict[str, Tensor]:
    """The tensors of one weights file (safetensors or a torch-saved state dict)."""
    if is_safetensors(path):
        return read_safetensors(path)[0]
    obj = torch_load(path, allow_pickle=allow_pickle)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    return tensors(obj, str(path))


def read_hf_config(path: Path) -> dict[str, Any]:
    """config.json of a Hugging Face model directory; errors say what the folder lacks."""
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(
            f"{path}: directory has no config.json, so it is not a Hugging Face model "
            f"directory. Accepted formats: {ACCEPTED_FORMATS}"
        )
    try:
        conf = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_file}: not valid JSON ({e})") from e
    if not isinstance(conf, dict):
        raise CheckpointError(f"{cfg_file}: expected a JSON object, found {type(conf).__name__}")
    return conf


def read_hf_weights(path: Path, *, allow_pickle: bool = False) -> dict[str, Tensor]:
    """The weights of a Hugging Face model directory: one file, or shards named by an index
    (each shard inside the directory: absolute paths and `..` are refused)."""
    for name in HF_WEIGHT_FILES:
        if (path / name).is_file():
            return read_weights_file(path / name, allow_pickle=allow_pickle)
        index = path / f"{name}.index.json"
        if index.is_file():
            state: dict[str, Tensor] = {}
            for f in _shard_files(index):
                if not (path / f).is_file():
                    raise FileNotFoundError(f"{path / f}: shard listed in {index.name} is missing")
                state.update(read_weights_file(path / f, allow_pickle=allow_pickle))
            return state
    raise CheckpointError(
        f"{path}: no weights found; expected model.safetensors or pytorch_model.bin "
        "(or a sharded *.index.json)"
    )


def _shard_files(index: Path) -> list[str]:
    """The shard names of a `*.index.json`, each a relative path inside its folder."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted({str(v) for v in weight_map.values()})
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(
            f"{index}: not a shard index (expected JSON with a 'weight_map' object: {e})"
        ) from None
    for f in files:
        parts = PurePosixPath(f.replace("\\", "/"))
        if not f or parts.is_absolute() or Path(f).is_absolute() or ".." in parts.parts:
            raise CheckpointError(
                f"{index}: weight_map entry {f!r} points outside the model folder; shards "
                "must be files inside it"
            )
    return files


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
    """torch.save `obj` to `path` atomically; a dict gets its payload hash (`DIGEST_KEY`)."""
    if isinstance(obj, Mapping):
        body = {k: v for k, v in obj.items() if k != DIGEST_KEY}
        obj = {**body, DIGEST_KEY: payload_digest(body)}
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def write_safetensors(
    state: Mapping[str, Tensor], path: str | Path, metadata: Mapping[str, str]
) -> Path:
    """Write contiguous CPU tensors as .safetensors with string `metadata` and the payload
    hash (over the tensors and the metadata), atomically."""
    from safetensors.torch import save_file

    meta = {k: v for k, v in metadata.items() if k != DIGEST_KEY}
    meta[DIGEST_KEY] = payload_digest({"tensors": dict(state), "metadata": meta})
    return atomic_write(path, lambda tmp: save_file(dict(state), str(tmp), metadata=meta))


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
