"""extract resumed after a crash or with other settings: a line cut in a part file does not
swallow the next record, a change of settings is named as such (not as other weights), and
compute precision is part of the settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from timesformer.cli import main
from timesformer.data import write_video
from timesformer.engine.extract_run import run_extract
from timesformer.engine.predict import load_for_inference
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume")
    rng = np.random.default_rng(2)
    for i, n in enumerate((20, 30, 40)):
        frames = rng.integers(0, 255, (n, 32, 40, 3), dtype=np.uint8)
        write_video(root / "in" / f"v{i}.mp4", frames, fps=10)
    torch.manual_seed(0)
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=4, embed_dim=32, depth=1,
                            num_heads=1, num_classes=3, drop_path_rate=0.0)  # fmt: skip
    save_checkpoint(TimeSformer(cfg).eval(), root / "m.pt")
    return {"root": root, "in": root / "in", "ckpt": root / "m.pt"}


def _index(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "index.jsonl").read_text().splitlines()]


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["extract", *args, "--workers", "0", "--no-progress"])
    return code, capsys.readouterr().err


def test_a_line_cut_by_a_crash_does_not_swallow_the_next_record(setup, tmp_path) -> None:
    model, st = load_for_inference(setup["ckpt"])
    out = tmp_path / "f"
    assert run_extract(model, [setup["in"]], out, settings=st, mode="windows").ok == 3
    want = _index(out)
    # as a kill mid-write leaves it: v0 done, v1's line cut short, no index yet
    lines = (out / "index.jsonl").read_text().splitlines()
    (out / "parts").mkdir()
    (out / "parts" / "rank-0.jsonl").write_text(lines[0] + "\n" + lines[1][:40])
    (out / "index.jsonl").unlink()
    for name in ("v1", "v2"):
        (out / "features" / f"{name}.npy").unlink()
    summary = run_extract(model, [setup["in"]], out, settings=st, mode="windows")
    assert (summary.ok, summary.failed, summary.skipped) == (3, 0, 1), summary.failures
    assert _index(out) == want


@pytest.mark.parametrize(
    ("flags", "said"),
    [(["--frames", "2"], "num_frames=4, not 2"), (["--size", "48"], "img_size=32, not 48"),
     (["--amp", "bf16"], "amp='off', not 'bf16'")],
)  # fmt: skip
def test_other_settings_are_refused_naming_the_setting(setup, tmp_path, capsys, flags, said):
    out, ck = tmp_path / "f", str(setup["ckpt"])
    v0 = str(setup["in"] / "v0.mp4")
    assert _cli(capsys, v0, "-c", ck, "--out", str(out))[0] == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, err = _cli(capsys, str(setup["in"]), "-c", ck, "--out", str(out), *flags)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert said in err and "other weights" not in err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_video_given_again_under_its_parent_folder_keeps_its_name(setup, tmp_path, capsys):
    out, ck = tmp_path / "f", str(setup["ckpt"])
    sub = tmp_path / "in" / "sub"
    sub.mkdir(parents=True)
    (sub / "v0.mp4").write_bytes((setup["in"] / "v0.mp4").read_bytes())
    (tmp_path / "in" / "v1.mp4").write_bytes((setup["in"] / "v1.mp4").read_bytes())
    assert _cli(capsys, str(sub), "-c", ck, "--out", str(out))[0] == 0  # sub/v0.mp4 -> v0
    first = _index(out)
    code = main(["extract", str(tmp_path / "in"), "-c", ck, "--out", str(out), "--json",
                 "--workers", "0"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and (summary["ok"], summary["skipped"]) == (2, 1)
    rows = _index(out)
    assert [r["feature"] for r in rows] == ["features/v0.npy", "features/v1.npy"]
    assert rows[0] == first[0]
    assert sorted(p.name for p in (out / "features").rglob("*.npy")) == ["v0.npy", "v1.npy"]


def test_features_without_their_run_json_are_refused(setup, tmp_path, capsys) -> None:
    out, ck = tmp_path / "f", str(setup["ckpt"])
    assert _cli(capsys, str(setup["in"] / "v0.mp4"), "-c", ck, "--out", str(out))[0] == 0
    (out / "run.json").unlink()  # which weights made features/v0.npy can no longer be told
    code, err = _cli(capsys, str(setup["in"]), "-c", ck, "--out", str(out), "--frames", "2")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "run.json is missing" in err and "cannot be told" in err
    assert not (out / "run.json").exists() and len(list((out / "features").iterdir())) == 1


def test_a_video_replaced_since_its_extraction_is_extracted_again(setup, tmp_path) -> None:
    model, st = load_for_inference(setup["ckpt"])
    src, out = tmp_path / "in", tmp_path / "f"
    src.mkdir()
    for i in (0, 1):
        (src / f"v{i}.mp4").write_bytes((setup["in"] / f"v{i}.mp4").read_bytes())
    assert run_extract(model, [src], out, settings=st, mode="windows").ok == 2
    old = np.load(out / "features" / "v0.npy")
    (src / "v0.mp4").write_bytes((setup["in"] / "v2.mp4").read_bytes())  # a new download
    summary = run_extract(model, [src], out, settings=st, mode="windows")
    assert (summary.ok, summary.skipped) == (2, 1)
    rows = _index(out)
    assert rows[0]["bytes"] == (src / "v0.mp4").stat().st_size and rows[0]["video_frames"] == 40
    assert not np.array_equal(np.load(out / "features" / "v0.npy"), old)
    assert run_extract(model, [src], out, settings=st, mode="windows").skipped == 2


def test_a_write_cut_by_a_kill_leaves_no_temporary_file_after_the_rerun(setup, tmp_path) -> None:
    model, st = load_for_inference(setup["ckpt"])
    out = tmp_path / "f"
    assert run_extract(model, [setup["in"]], out, settings=st).ok == 3
    want = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    (out / "features" / ".v1.npy.k2x9q_0a.tmp.npy").write_bytes(b"\x93NUMPY half")
    (out / "features" / "v1.npy").unlink()  # killed while v1 was being written
    summary = run_extract(model, [setup["in"]], out, settings=st)
    assert (summary.ok, summary.skipped) == (3, 2)
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == want
