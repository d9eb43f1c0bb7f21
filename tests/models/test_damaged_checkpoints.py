"""Empty and cut-short checkpoint files are refused in one line that says what is wrong with
them (not "unknown checkpoint format"), and nothing in them is unpickled on the way."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from _checkpoint_helpers import _ours  # conftest puts this folder on sys.path

from timesformer.cli import main
from timesformer.engine.checkpoint import read_training_checkpoint
from timesformer.models.weights import (
    CheckpointError,
    from_pretrained,
    read_checkpoint,
    save_checkpoint,
    save_hf,
    save_safetensors,
)

ZIP = "truncated or damaged torch checkpoint (zip archive incomplete)"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, bytes]:
    """The bytes of one small model saved as .pt and as .safetensors."""
    root = tmp_path_factory.mktemp("saved")
    model = _ours(num_heads=1)
    save_checkpoint(model, root / "m.pt")
    save_safetensors(model, root / "m.safetensors")
    return {s: (root / f"m{s}").read_bytes() for s in (".pt", ".safetensors")}


def _refusal(path: Path) -> str:
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: "), msg
    assert "unknown checkpoint format" not in msg and len(msg) < 200 + len(str(path)), msg
    return msg[len(str(path)) + 2 :]


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".pyth"])
def test_an_empty_file_says_so(tmp_path, suffix) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    assert _refusal(path) == "empty file (0 bytes), expected a .pt/.safetensors checkpoint"


def test_a_safetensors_file_cut_in_its_tensors_gives_both_sizes(tmp_path, saved) -> None:
    data = saved[".safetensors"]
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    assert _refusal(path) == (
        f"truncated safetensors file (header says {len(data)} bytes, file has {len(data) // 2})"
    )


def test_a_safetensors_file_cut_in_its_header(tmp_path, saved) -> None:
    data = saved[".safetensors"]
    header = 8 + int.from_bytes(data[:8], "little")
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:40])
    assert _refusal(path) == (
        f"truncated safetensors file (header says at least {header} bytes, file has 40)"
    )
    path.write_bytes(data[:5])
    assert _refusal(path) == (
        "truncated safetensors file (5 bytes, shorter than its 8-byte header length)"
    )


@pytest.mark.parametrize("keep", [3, 40, 0.5, -30])
def test_a_cut_torch_zip_says_the_archive_is_incomplete(tmp_path, saved, keep) -> None:
    data = saved[".pt"]
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "cut.pt"
    path.write_bytes(data[:n])
    assert _refusal(path) == ZIP


def test_every_reader_of_checkpoints_says_it(tmp_path, saved, capsys) -> None:
    """The command line (one line, exit 1), a training checkpoint, a Hugging Face folder."""
    data = saved[".pt"]
    cut = tmp_path / "last.pt"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"zip archive incomplete\)$"):
        read_training_checkpoint(cut)
    (tmp_path / "a.mp4").write_bytes(b"not read: the checkpoint is refused first")
    rc = main(["predict", str(tmp_path / "a.mp4"), "-c", str(cut)])
    err = capsys.readouterr().err
    assert rc == 1 and err == f"timesformer predict: error: {cut}: {ZIP}\n", err
    folder = save_hf(_ours(num_heads=1), tmp_path / "hf")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model.safetensors: truncated safetensors file"):
        from_pretrained(folder)


class _WritesMarker:
    """Unpickling this calls open(marker, "w")."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("allow_pickle", [False, True])
def test_a_cut_crafted_pickle_is_not_unpickled(tmp_path, allow_pickle) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "crafted.pt"
    torch.save({"extra": _WritesMarker(marker), "w": torch.zeros(64)}, path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CheckpointError, match="zip archive incomplete"):
        read_checkpoint(path, allow_pickle=allow_pickle)
    assert not marker.exists()
    legacy = tmp_path / "legacy.pt"  # a bare pickle, cut: refused before any opt-in
    legacy.write_bytes(pickle.dumps({"extra": _WritesMarker(marker)})[:-3])
    with pytest.raises(CheckpointError):
        read_checkpoint(legacy)
    assert not marker.exists()
