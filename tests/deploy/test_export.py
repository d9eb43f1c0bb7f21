"""Exports: ONNX parity with onnxruntime, the .pt2 program without our package, the contract inside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from timesformer.cli import main
from timesformer.deploy.export import ExportError, export_model, load_export, read_contract
from timesformer.models.preprocess import Preprocess

from .conftest import NAMES, tiny_model

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("attention", ["divided_space_time", "joint_space_time", "space_only"])
def test_onnx_matches_pytorch_at_batch_1_and_2(tmp_path, attention):
    model = tiny_model(attention)
    pre = Preprocess.for_geometry(4, 32, sampling_rate=3, class_names=NAMES)
    report = export_model(model, tmp_path / "m.onnx", "onnx", preprocess=pre)
    assert set(report.max_abs_diff) == {"1", "2"}
    assert max(report.max_abs_diff.values()) <= 1e-4
    run = load_export(tmp_path / "m.onnx")
    x = torch.randn(3, 3, 4, 32, 32)  # a batch size never traced: the axis is dynamic
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(run(x.numpy()) - ref).max() <= 1e-4
    contract = read_contract(tmp_path / "m.onnx")
    assert Preprocess.from_dict(contract["preprocess"]) == pre
    assert contract["class_names"] == NAMES and contract["config"]["attention_type"] == attention


def test_exported_program_runs_without_our_package(tmp_path):
    model = tiny_model()
    export_model(model, tmp_path / "m.pt2", "exported-program")
    x = torch.randn(2, 3, 4, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        ref = model(x)
    script = f"""
import sys
class Refuse:
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "timesformer":
            raise ImportError("timesformer must not be needed")
sys.meta_path.insert(0, Refuse())
import json, torch
extra = {{"preprocess.json": ""}}
ep = torch.export.load({str(tmp_path / "m.pt2")!r}, extra_files=extra)
y = ep.module()(torch.load({str(tmp_path / "x.pt")!r}))
torch.save(y, {str(tmp_path / "y.pt")!r})
print(json.loads(extra["preprocess.json"])["num_frames"])
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "4"
    assert torch.allclose(torch.load(tmp_path / "y.pt"), ref, atol=1e-5)


def test_a_failed_check_leaves_nothing(tmp_path):
    with pytest.raises(ExportError, match="does not reproduce"):
        export_model(tiny_model(), tmp_path / "m.pt2", "exported-program", atol=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_command_line(tmp_path, checkpoint, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "onnx" and Path(report["path"]) == out and out.is_file()
    assert report["contract"]["class_names"] == NAMES
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["export", str(checkpoint), "--out", str(afile / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Traceback" not in err
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(out)]) == 1
    assert "not found" in capsys.readouterr().err
    before = out.read_bytes()
    assert main(["export", str(checkpoint), "--out", str(out)]) == 1  # an old export is kept
    assert "exists; pass --force" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["export", str(checkpoint), "--out", str(out), "--force"]) == 0


def test_the_format_follows_the_suffix(tmp_path, checkpoint, capsys):
    """`--out m.pt2` without --format is a torch.export archive; a suffix of the other format
    with --format is refused before anything is written."""
    from timesformer.commands.export import format_for

    assert format_for("m.pt2", None) == "exported-program" and format_for("m.onnx", None) == "onnx"
    assert format_for("m.bin", None) == "onnx" and format_for("m.bin", "exported-program")
    out = tmp_path / "m.pt2"
    assert main(["export", str(checkpoint), "--out", str(out), "--no-verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "exported-program"
    torch.export.load(str(out))  # a real .pt2
    assert main(["export", str(checkpoint), "-f", "onnx", "--out", str(tmp_path / "x.pt2")]) == 2
    err = capsys.readouterr().err
    assert "suffix of exported-program" in err and not (tmp_path / "x.pt2").exists()


def test_a_program_under_another_name_writes_quietly(tmp_path, checkpoint, capfd):
    """torch.export logs warnings for names not ending in .pt2: the temporary file is a .pt2 and
    our loads read a buffer, so the export and its reading log nothing; the CLI notes the name."""
    out = tmp_path / "model.bin"
    assert main(["export", str(checkpoint), "-f", "exported-program", "--out", str(out)]) == 0
    err = capfd.readouterr().err
    assert "pt2_archive" not in err and "Expect archive" not in err, err
    assert "note: torch.export.load warns on names not ending in .pt2" in err
    assert read_contract(out)["config"]["attention_type"]
    load_export(out)(torch.randn(1, 3, 4, 32, 32))
    assert "pt2_archive" not in capfd.readouterr().err


def test_an_export_given_as_a_checkpoint_is_named(tmp_path, checkpoint):
    from timesformer.models.checkpoint_io import CheckpointError
    from timesformer.models.weights import from_pretrained

    for name in ("m.pt2", "m.onnx", "program.bin"):
        fmt = "onnx" if name.endswith(".onnx") else "exported-program"
        out = tmp_path / name
        assert main(["export", str(checkpoint), "-f", fmt, "--out", str(out), "--no-verify"]) == 0
        kind = "an ONNX export" if fmt == "onnx" else "a torch.export program"
        with pytest.raises(CheckpointError, match=f"{kind}.*, not a checkpoint"):
            from_pretrained(out)
