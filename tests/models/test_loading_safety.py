"""Loading never runs code from a file, stays inside a model folder, and refuses damaged weights.

Crafted and damaged files are made here: a pickle that would write a marker file, official-style
files holding a yacs CfgNode, shard indexes pointing outside their folder, flipped tensor bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from _checkpoint_helpers import _logits, _ours, _video  # conftest puts this folder on sys.path

from timesformer.cli import build_parser, main
from timesformer.engine.checkpoint import read_training_checkpoint
from timesformer.models.weights import (
    CheckpointError,
    from_pretrained,
    read_checkpoint,
    save_checkpoint,
    save_hf,
    save_safetensors,
    to_official_state_dict,
)

CORRUPT = r"is corrupt: tensor payload hash mismatch; re-download or re-export it"


class _WritesMarker:
    """Unpickling this calls open(marker, "w"): code run by merely loading the file."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _crafted(tmp_path, zip_format: bool = True):
    model = _ours(num_heads=1)  # 64 per head: a bare state dict leaves nothing to guess
    path, marker = tmp_path / "crafted.pt", tmp_path / "marker"
    torch.save({"model": model.state_dict(), "extra": _WritesMarker(marker)}, path,
               _use_new_zipfile_serialization=zip_format)  # fmt: skip
    return model, path, marker


# ---------------------------------------------------------------------------- no code runs


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_crafted_pickle_is_refused_in_one_line_and_runs_only_on_the_opt_in(
    tmp_path, zip_format: bool
) -> None:
    model, path, marker = _crafted(tmp_path, zip_format)
    for load in (read_checkpoint, from_pretrained):
        with pytest.raises(CheckpointError) as err:
            load(path)
        msg = str(err.value)
        assert "\n" not in msg and str(path) in msg and "io.open" in msg, msg
        assert "allow_pickle=True" in msg and "--allow-pickle" in msg and "runs code" in msg
        assert not marker.exists()
    loaded = from_pretrained(path, allow_pickle=True)  # the explicit opt-in: the code runs
    assert marker.exists()
    assert torch.equal(_logits(loaded, _video()), _logits(model, _video()))


def test_the_cli_refuses_a_crafted_pickle_and_every_loading_command_has_the_flag(
    tmp_path, capsys
) -> None:
    _, path, marker = _crafted(tmp_path)
    assert main(["convert", str(path), str(tmp_path / "out.pt")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("timesformer convert: error:") and "\n" not in err
    assert "refused to load" in err and "--allow-pickle" in err and not marker.exists()
    assert main(["convert", str(path), str(tmp_path / "out.pt"), "--allow-pickle"]) == 0
    assert marker.exists() and read_checkpoint(tmp_path / "out.pt").format == "ours"

    parser, available = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    loading = {"predict", "eval", "explain", "train", "convert", "export", "serve", "extract"}
    assert loading <= set(available)
    for name in sorted(loading):
        flag = next((a for a in subs.choices[name]._actions if "--allow-pickle" in a.option_strings), None)  # fmt: skip
        assert flag is not None, name
        assert "runs code from the file" in flag.help and "only for files you trust" in flag.help


def test_harmless_types_of_real_releases_load_without_the_opt_in(tmp_path) -> None:
    model = _ours()
    extra = {
        "args": argparse.Namespace(lr=0.1, model="vit_base_patch16_224"),  # timm / DeiT files
        "best_acc": np.float64(81.5),  # numpy scalars and dtypes
        "step": np.int64(7),
        "dtype": np.dtype("float32"),
        "hist": np.arange(3, dtype=np.float32),
        "sched": OrderedDict(milestones=[3, 5]),
    }
    path = tmp_path / "deit_like.pth"
    torch.save({"model": model.state_dict(), **extra}, path)
    ck = read_checkpoint(path)
    assert ck.format == "state_dict" and ck.extra["args"].lr == 0.1
    assert ck.extra["best_acc"] == 81.5 and ck.extra["step"] == 7
    assert ck.extra["dtype"] == np.float32 and ck.extra["hist"].tolist() == [0, 1, 2]
    # the same file as numpy < 2 names its globals (numpy.core, not numpy._core)
    legacy = tmp_path / "legacy.pth"
    torch.save({"model": model.state_dict(), **extra}, legacy, _use_new_zipfile_serialization=False)
    raw = legacy.read_bytes()
    assert b"numpy._core.multiarray" in raw
    legacy.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert read_checkpoint(legacy).extra["best_acc"] == 81.5


def test_an_official_file_holding_a_yacs_cfgnode_loads_as_plain_dicts(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_site" / "yacs"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text(
        "class CfgNode(dict):\n"
        "    def __init__(self, d=None):\n"
        "        super().__init__(d or {})\n"
        "        self.__dict__['__immutable__'] = False\n"
        "        self.__dict__['__deprecated_keys__'] = set()\n"
    )
    model = _ours(num_frames=4)
    official = to_official_state_dict(model)
    monkeypatch.syspath_prepend(str(pkg.parent))
    from yacs.config import CfgNode  # the fake, pickled by reference

    official["cfg"] = CfgNode(
        {"DATA": CfgNode({"NUM_FRAMES": 4, "SAMPLING_RATE": 32}), "TRAIN": CfgNode({"X": 1})}
    )
    path = tmp_path / "release.pyth"
    torch.save(official, path)
    monkeypatch.delitem(sys.modules, "yacs.config")
    monkeypatch.delitem(sys.modules, "yacs")
    sys.path.remove(str(pkg.parent))  # monkeypatch restores sys.path afterwards
    (pkg / "config.py").unlink()  # the class is gone: only a stand-in can read it
    ck = read_checkpoint(path)
    assert ck.format == "official" and type(ck.extra["cfg"]) is dict
    assert ck.extra["cfg"]["DATA"] == {"NUM_FRAMES": 4, "SAMPLING_RATE": 32}
    assert "yacs" not in sys.modules
    loaded = from_pretrained(path)
    assert torch.allclose(_logits(loaded, _video()), _logits(model, _video()), atol=1e-5)


# ---------------------------------------------------------------------------- shard indexes


def _sharded(tmp_path, entries=None):
    """A Hugging Face directory with its weights in two shards and an index naming them."""
    from safetensors.torch import load_file, save_file

    d = save_hf(_ours(), tmp_path / "hf")
    state = load_file(d / "model.safetensors")
    (d / "model.safetensors").unlink()
    keys = sorted(state)
    half = {k: state[k] for k in keys[::2]}, {k: state[k] for k in keys[1::2]}
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    for part, name in zip(half, names, strict=True):
        save_file(part, str(d / name))
    weight_map = {k: names[i % 2] for i, k in enumerate(keys)}
    if entries:
        weight_map[keys[1]] = entries
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return d, names


def test_a_shard_index_reads_its_shards(tmp_path) -> None:
    d, _ = _sharded(tmp_path)
    assert read_checkpoint(d).format == "hf"


@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_a_shard_index_pointing_outside_the_folder_is_refused(tmp_path, where) -> None:
    outside = tmp_path / "outside.safetensors"
    entry = "../outside.safetensors" if where == "parent" else str(outside)
    d, names = _sharded(tmp_path, entries=entry)
    (d / names[1]).rename(outside)  # a real file there: reading it would succeed
    with pytest.raises(CheckpointError, match="points outside the model folder") as err:
        read_checkpoint(d)
    assert repr(entry) in str(err.value) and "index.json" in str(err.value)


# ---------------------------------------------------------------------------- integrity


def _flip_inside(path, tensor: torch.Tensor) -> None:
    """Flip one byte inside `tensor`'s stored bytes in `path`."""
    raw = bytearray(path.read_bytes())
    at = raw.find(tensor.contiguous().numpy().tobytes()[:32])
    assert at > 0
    raw[at + 5] ^= 0x40
    path.write_bytes(bytes(raw))


def test_flipped_tensor_bytes_are_caught_by_the_payload_hash(tmp_path) -> None:
    model = _ours()
    target = model.state_dict()["blocks.1.mlp.fc1.weight"]
    pt = save_checkpoint(model, tmp_path / "ck.pt", epoch=1)
    st = save_safetensors(model, tmp_path / "w.safetensors")
    for path in (pt, st):
        assert read_checkpoint(path).format == "ours"  # intact: verified silently
        _flip_inside(path, target)
        for load in (read_checkpoint, from_pretrained):
            with pytest.raises(CheckpointError, match=CORRUPT) as err:
                load(path)
            assert str(path) in str(err.value)
    with pytest.raises(CheckpointError, match=CORRUPT):  # resume reads it the same way
        read_training_checkpoint(pt)


def test_files_without_a_hash_still_load(tmp_path) -> None:
    model = _ours()
    path = tmp_path / "old.pt"  # written before payload hashes existed
    torch.save({"format": "timesformer", "version": 1, "config": model.config.to_dict(),
                "model": model.state_dict()}, path)  # fmt: skip
    assert torch.equal(_logits(from_pretrained(path), _video()), _logits(model, _video()))


def test_a_non_finite_weight_is_named_for_every_format(tmp_path) -> None:
    model = _ours()
    official = to_official_state_dict(model)
    official["model_state"]["model.blocks.0.attn.qkv.weight"][3, 2] = float("nan")
    with pytest.raises(CheckpointError, match=r"weight blocks\.0\.attn\.qkv\.weight has 1 non"):
        read_checkpoint(official)
    torch.save(official, tmp_path / "nan.pyth")
    with pytest.raises(CheckpointError, match=r"nan\.pyth: weight blocks\.0\.attn\.qkv\.weight"):
        from_pretrained(tmp_path / "nan.pyth")
    state = {k: v.clone() for k, v in _ours(seed=3).state_dict().items()}
    state["head.bias"][0] = float("inf")
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "bare.safetensors"))
    with pytest.raises(CheckpointError, match=r"weight head\.bias has 1 non-finite"):
        from_pretrained(tmp_path / "bare.safetensors")


def test_integer_weights_are_refused_and_half_precision_loads(tmp_path) -> None:
    from safetensors.torch import save_file

    model = _ours()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["blocks.0.attn.qkv.weight"] = state["blocks.0.attn.qkv.weight"].to(torch.int32)
    save_file(state, str(tmp_path / "int.safetensors"))  # no hash: nothing else would notice
    with pytest.raises(ValueError, match=r"wrong dtype \(blocks\.0\.attn\.qkv\.weight is int32\)"):
        from_pretrained(tmp_path / "int.safetensors", **model.config.to_dict())
    half = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
    save_file(half, str(tmp_path / "half.safetensors"))
    loaded = from_pretrained(tmp_path / "half.safetensors", **model.config.to_dict())
    assert next(loaded.parameters()).dtype == torch.float32


def test_a_guessed_head_count_of_an_unusual_width_is_warned(tmp_path) -> None:
    """Heads are not visible in the weights: a bare state dict of width 64 is read with
    64 channels per head, and the user is told, with the fix."""
    bare = tmp_path / "bare.pt"
    torch.save(_ours(num_heads=1).state_dict(), bare)
    with pytest.warns(UserWarning, match=r"assumed num_heads=1 .*--num-heads"):
        from_pretrained(bare)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # given: no warning
        assert from_pretrained(bare, num_heads=1).config.num_heads == 1
