"""extract into a folder that already holds features: other weights are refused, a dataset
extracted in batches keeps every batch in the index, a same-named video from elsewhere gets its
own name, and the Python writer takes plain paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from timesformer.cli import main
from timesformer.data import write_video
from timesformer.engine.extract_run import run_extract
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.models.weights import save_checkpoint


def _model(seed: int) -> TimeSformer:
    torch.manual_seed(seed)
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=4, embed_dim=32, depth=1,
                            num_heads=1, num_classes=3, drop_path_rate=0.0)  # fmt: skip
    return TimeSformer(cfg).eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(1)
    for sub in ("a", "b"):
        for i in range(2):
            frames = rng.integers(0, 255, (20, 32, 40, 3), dtype=np.uint8)
            write_video(root / sub / f"v{i}.mp4", frames, fps=10)
    save_checkpoint(_model(0), root / "m0.pt")
    save_checkpoint(_model(1), root / "m1.pt")
    return {"root": root, "m0": root / "m0.pt", "m1": root / "m1.pt"}


def _extract(capsys, *args: str) -> tuple[int, dict, str]:
    code = main(["extract", *args, "--json", "--workers", "0"])
    cap = capsys.readouterr()
    return code, (json.loads(cap.out) if cap.out.strip() else {}), cap.err


def _index(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "index.jsonl").read_text().splitlines()]


def test_features_of_other_weights_are_refused(setup, tmp_path, capsys) -> None:
    out, a = tmp_path / "f", str(setup["root"] / "a")
    assert _extract(capsys, a, "-c", str(setup["m0"]), "--out", str(out))[0] == 0
    before = {p.name: p.read_bytes() for p in (out / "features").iterdir()}
    code, _, err = _extract(capsys, a, "-c", str(setup["m1"]), "--out", str(out))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "other weights" in err and "m0.pt" in err
    assert {p.name: p.read_bytes() for p in (out / "features").iterdir()} == before
    # the same weights again: everything already done
    code, summary, _ = _extract(capsys, a, "-c", str(setup["m0"]), "--out", str(out))
    assert code == 0 and summary["skipped"] == 2


@pytest.mark.parametrize(
    ("text", "why"),
    [("garbage", "not valid JSON"), ("[1]", "JSON list, expected an object"),
     ('{"settings": 3}', 'no "settings" object'), ("\xff\xfe", "not valid JSON")],
)  # fmt: skip
def test_a_damaged_run_json_beside_features_is_refused(setup, tmp_path, capsys, text, why):
    out, a = tmp_path / "f", str(setup["root"] / "a")
    assert (
        _extract(capsys, str(Path(a) / "v0.mp4"), "-c", str(setup["m0"]), "--out", str(out))[0] == 0
    )
    (out / "run.json").write_bytes(text.encode("latin-1"))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, _, err = _extract(capsys, a, "-c", str(setup["m1"]), "--out", str(out))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "run.json" in err and why in err and "cannot be told" in err and "--out" in err
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_damaged_run_json_in_a_folder_without_features_is_replaced(setup, tmp_path, capsys):
    out = tmp_path / "f"
    out.mkdir()
    (out / "run.json").write_text("garbage")
    code, summary, _ = _extract(capsys, str(setup["root"] / "a"), "-c", str(setup["m0"]),
                                "--out", str(out))  # fmt: skip
    assert code == 0 and summary["ok"] == 2
    assert json.loads((out / "run.json").read_text())["checkpoint"] == str(setup["m0"])


def test_batches_into_one_folder_keep_every_batch(setup, tmp_path, capsys) -> None:
    out, ck = tmp_path / "f", str(setup["m0"])
    a, b = setup["root"] / "a", setup["root"] / "b"
    assert (
        _extract(capsys, str(a / "v0.mp4"), str(a / "v1.mp4"), "-c", ck, "--out", str(out))[0] == 0
    )
    first = _index(out)
    # b/v0.mp4 has the name v0 too: it is another video, so it gets its own file
    code, summary, _ = _extract(capsys, str(b / "v0.mp4"), "-c", ck, "--out", str(out))
    assert code == 0 and (summary["videos"], summary["ok"], summary["skipped"]) == (1, 1, 0)
    rows = _index(out)
    assert rows[:2] == first and len(rows) == 3
    assert rows[2]["feature"] == "features/v0__2.npy" and rows[2]["path"] == str(b / "v0.mp4")
    assert not np.array_equal(np.load(out / rows[0]["feature"]), np.load(out / rows[2]["feature"]))
    # the first batch again: nothing recomputed, the index unchanged
    code, summary, _ = _extract(capsys, str(a / "v0.mp4"), str(a / "v1.mp4"), "-c", ck,
                                "--out", str(out))  # fmt: skip
    assert code == 0 and summary["skipped"] == 2 and _index(out) == rows
    # a feature file deleted by hand is no longer claimed as ok
    (out / "features" / "v1.npy").unlink()
    _extract(capsys, str(b / "v0.mp4"), "-c", ck, "--out", str(out))
    rows = _index(out)
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"] and "missing" in rows[1]["error"]


def test_the_python_writer_takes_plain_paths(setup, tmp_path) -> None:
    from timesformer.engine.predict import load_for_inference

    model, settings = load_for_inference(setup["m0"])
    folder = setup["root"] / "b"
    s = run_extract(model, [str(folder), folder.parent / "a" / "v1.mp4"], tmp_path / "o",
                    settings=settings)  # fmt: skip
    assert (s.videos, s.ok) == (3, 3)
    assert [r["video"] for r in _index(tmp_path / "o")] == ["v0.mp4", "v1.mp4", "v1.mp4"]
    assert (tmp_path / "o" / "features" / "v1__2.npy").is_file()


def test_an_empty_out_is_refused(setup, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _extract(capsys, str(setup["root"] / "a"), "-c", str(setup["m0"]), "--out", "")
    assert code == 1 and "empty" in err and list(tmp_path.iterdir()) == []
