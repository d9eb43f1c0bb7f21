"""`timesformer bench --data`: the data-loading benchmark end to end on one rendered video."""

from __future__ import annotations

import json
import math
from pathlib import Path

from timesformer.cli import main


def test_bench_data_measures_ours_against_naive(tmp_path: Path, capsys) -> None:
    out = tmp_path / "data.json"
    args = ["--videos", "1", "--clips", "1", "--runs", "1", "--workers", "0"]
    args += ["--model", "timesformer_tiny", "--model-depth", "1", "--model-mode", "infer"]
    rc = main(["bench", "--data", *args, "--cache", str(tmp_path / "v"), "--out", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["env"]["video"]["frames"] == 300 and report["env"]["video"]["fps"] == 30.0
    rows = report["rows"]
    assert len(rows) == 4  # three decode-only cases and one DataLoader case
    for r in rows:
        assert r["ours"] > 0 and r["naive"] > 0 and math.isfinite(r["ours"] / r["naive"])
    # the model's clips/s on the same clips, and which of the two bounds the loader row
    assert report["model"]["model"] == "timesformer_tiny" and report["model"]["clips_per_s"] > 0
    assert rows[-1]["bound_by"] in ("data", "model")
    text = capsys.readouterr().out
    assert "| case | workers |" in text and "bound by the" in text
