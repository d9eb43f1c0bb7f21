"""`timesformer bench` and timesformer.tools.bench: counts, memory measurement, end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from timesformer import cli
from timesformer.models import TimeSformer, TimeSformerConfig
from timesformer.tools import bench as B

TINY = ["--model", "timesformer_tiny", "--frames", "2", "--img-size", "32", "--set", "depth=1"]


def _no_nan(x: Any, path: str = "") -> None:
    if isinstance(x, float):
        assert math.isfinite(x), path
    elif isinstance(x, dict):
        for k, v in x.items():
            _no_nan(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _no_nan(v, f"{path}[{i}]")


def _bench_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert cli.main(["bench", *args, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def test_macs_match_a_hand_computation() -> None:
    T, N, D, P, C, L = 2, 4, 8, 16, 3, 2  # frames, patches per frame, dim, patch, classes, depth
    cfg = TimeSformerConfig(
        img_size=32, patch_size=P, num_frames=T, embed_dim=D, depth=L, num_heads=2, num_classes=C
    )
    patch = T * N * D * 3 * P * P
    mlp = (1 + T * N) * 2 * D * 4 * D
    temporal = T * N * 3 * D * D + 2 * N * T * T * D + 2 * T * N * D * D  # qkv, QK^T+AV, proj+fc
    spatial = T * (1 + N) * 3 * D * D + 2 * T * (1 + N) ** 2 * D + T * (1 + N) * D * D
    divided = patch + L * (temporal + spatial + mlp) + D * C
    assert B.model_cost(cfg)["macs"] == divided
    joint = patch + L * ((1 + T * N) * 4 * D * D + 2 * (1 + T * N) ** 2 * D + mlp) + D * C
    assert B.model_cost(cfg.replace(attention_type="joint_space_time"))["macs"] == joint
    # the analytic attention-matrix size used by the Figure 3 sweep
    assert B.attention_matrix_bytes("joint_space_time", T, (2, 2), 2) == 2 * (1 + T * N) ** 2 * 4
    assert B.attention_matrix_bytes("divided_space_time", T, (2, 2), 2) == 2 * T * (1 + N) ** 2 * 4


def test_peak_memory_of_a_known_allocation() -> None:
    size = 64 * B.MiB
    # in a fresh process (as the benchmark measures every case)
    out = B.measure_in_subprocess({"kind": "alloc", "bytes": size})
    assert out["method"] == "rss high-water mark"
    assert size <= out["peak_bytes"] <= size + 8 * B.MiB, out
    # in this process: a tensor that stays alive counts too, a freed one is not left over
    # Looser than the fresh process, and up to three tries: in a long test session the
    # allocator may reuse pages that are already resident, and threads left by earlier tests
    # (servers shutting down, loader workers) may allocate or release memory meanwhile, which
    # the process-wide resident set cannot tell apart from `fn`'s own.
    tries = []
    for _ in range(3):
        keep: list[torch.Tensor] = []
        got = B.peak_memory(lambda: keep.append(torch.ones(size // 4)))  # noqa: B023
        tries.append(got["peak_bytes"])
        if size // 2 <= got["peak_bytes"] <= size + 32 * B.MiB:
            break
        keep.clear()
    else:
        raise AssertionError(f"in-process peak of a {size} B allocation, 3 tries: {tries}")


def test_bench_end_to_end_against_hf(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "fig3.png"
    rep = _bench_json([*TINY, "--compare", "hf", "--repeats", "2", "--plot", str(png)], capsys)
    _no_nan(rep)
    assert rep["machine"]["torch"] == torch.__version__
    assert rep["matmul_peak_flops"]["fp32"] > 0
    [case] = rep["cases"]
    assert case["geometry"] == {
        "attention_type": "divided_space_time",
        "frames": 2,
        "img_size": [32, 32],
        "tokens": 9,
        "embed_dim": 192,
        "depth": 1,
        "heads": 3,
    }
    assert case["gmacs_per_clip"] > 0 and case["sdpa_kernels"]
    ours, hf = case["impls"]["ours"], case["impls"]["hf"]
    assert ours["params"] == hf["params"] == case["params"]  # same geometry, same weights count
    for e in (ours, hf):
        assert len(e["latency_s"]["runs"]) == 2 and e["latency_s"]["median"] > 0
        assert e["clips_per_s"] > 0 and 0 < e["peak_fraction"]
        assert e["memory"]["peak_mb"] >= 0 and e["finite"]
        assert e["logits_shape"] == [1, 400]
    # ratio of runs that ran back to back, median over the pairs
    paired = B.paired_ratio(ours["latency_s"]["runs"], hf["latency_s"]["runs"])
    assert case["ratios"]["time"] == pytest.approx(paired, rel=1e-3)
    assert case["ratios"]["cpu_time"] > 0
    assert "memory" in case["ratios"]
    assert {r["attention_type"] for r in rep["sweep"]} == {"joint_space_time", "divided_space_time"}
    assert png.stat().st_size > 1000
    assert [c["attention_type"] for c in rep["cost"]] == ["divided_space_time"]


def test_bench_all_schemes_bf16_and_training(capsys: pytest.CaptureFixture[str]) -> None:
    rep = _bench_json(
        [*TINY, "--attention-type", "all", "--dtype", "bf16", "--compare", "hf"]
        + ["--repeats", "1", "--no-memory"],
        capsys,
    )
    _no_nan(rep)
    by_type = {c["geometry"]["attention_type"]: c for c in rep["cases"]}
    assert len(by_type) == 5
    for att, c in by_type.items():
        assert c["case"]["dtype"] == "bf16" and c["impls"]["ours"]["finite"]
        assert ("hf" in c["impls"]) == (att in B.HF_ATTENTION_TYPES)
        assert ("time" in c["ratios"]) == (att in B.HF_ATTENTION_TYPES)
    # theirs returns per-frame logits for space-only, and the report says so
    assert by_type["space_only"]["impls"]["hf"]["logits_shape"] == [2, 400]
    assert any("per frame" in n for n in by_type["space_only"]["notes"])

    rep = _bench_json([*TINY, "--train", "--repeats", "1", "--no-memory"], capsys)
    [train] = rep["train"]
    assert train["equality"]["equal"], train["equality"]
    assert train["with_checkpointing"]["case"]["grad_checkpointing"]
    assert "ours_time_ckpt" in train["ratios"]


def test_markdown_report_keeps_hand_written_text(tmp_path: Path) -> None:
    report = B.new_report()
    report["goals"] = B.evaluate_goals(
        {"cases": [{"label": "x", "ratios": {"time": 0.8}}]},
        [B.Goal("fast", "x", "time", 1.0), B.Goal("lean", "x", "memory", 0.5)],
    )
    assert [g["met"] for g in report["goals"]] == [True, None]
    md = tmp_path / "perf.md"
    md.write_text("# Perf\n\nanalysis stays\n")
    B.write_markdown(report, md)
    B.write_markdown(report, md)  # twice: replaced between the markers, not appended again
    text = md.read_text()
    assert text.startswith("# Perf\n\nanalysis stays\n")
    assert text.count(B.BEGIN) == 1 and "| fast | 0.80 | <= 1.00 | yes |" in text


def test_fast_inference_path_matches_the_training_path() -> None:
    # the benchmark's baseline switch: same function, to float rounding, chunked or not
    cfg = TimeSformerConfig(img_size=32, num_frames=3, embed_dim=48, depth=2, num_heads=3)
    model = TimeSformer(cfg.replace(zero_init_temporal_fc=False)).eval()
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        model.set_inference_options(fast=False)
        ref = model(x)
        for chunk in (None, 5):
            model.set_inference_options(fast=True, chunk_tokens=chunk)
            torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=0)


def test_bench_errors_are_clear(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", *TINY, "--set", "depth"]) == 2  # the command line is wrong
    assert "KEY=VALUE" in capsys.readouterr().err
    assert cli.main(["bench", *TINY, "--attention-type", "jiont"]) == 2
    assert "jiont" in capsys.readouterr().err
    with pytest.raises(ValueError, match="square"):
        B.build_hf_model(TimeSformerConfig(img_size=(32, 48)))
    # bad model values: one line naming the flag, never a traceback or a silent default
    for bad, word in ((["--set", "foo=1"], "--set foo=1: unknown model option"),
                      (["--set", "depth=abc"], "depth must be an integer"),
                      (["--set", "depth=-1"], "depth must be >= 1")):  # fmt: skip
        assert cli.main(["bench", *TINY, *bad]) == 1
        assert word in capsys.readouterr().err
    for flag in ("--frames", "--threads", "--batch-size"):
        with pytest.raises(SystemExit):
            cli.main(["bench", *TINY, flag, "0"])
        assert f"argument {flag}: expected a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad, word",
    [({"depth": 0}, "depth must be >= 1"), ({"embed_dim": "x"}, "embed_dim must be an integer"),
     ({"mlp_ratio": 0.0}, "must be > 0"), ({"drop_rate": 1.5}, r"drop_rate must be in \[0, 1\)"),
     ({"num_heads": True}, "num_heads must be an integer")],
)  # fmt: skip
def test_model_configs_with_impossible_values_are_refused(bad, word) -> None:
    with pytest.raises(ValueError, match=word):
        TimeSformerConfig(**bad)


def test_version_comes_from_the_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    import timesformer

    installed = importlib.metadata.version("timesformer")
    assert B.package_version() == installed == timesformer.__version__

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert B.package_version() == "0+unknown"


def test_json_safe_writes_nan_and_inf_as_null() -> None:
    got = B.json_safe({"a": [1.0, math.nan, (math.inf, 2)], "b": {"c": -math.inf}, "d": "x"})
    assert got == {"a": [1.0, None, [None, 2]], "b": {"c": None}, "d": "x"}
    json.dumps(got, allow_nan=False)


@pytest.fixture
def nothing_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every measurement entry point fails the test: argument errors must come first."""
    import timesformer.tools.bench.data as D

    def measured(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("measured before the arguments were checked")

    for name in ("peaks_for", "run_case", "run_train_case", "run_standard", "new_report"):
        monkeypatch.setattr(B, name, measured)
    for name in ("make_videos", "interleaved", "loader_rate", "model_rate"):
        monkeypatch.setattr(D, name, measured)


@pytest.mark.parametrize(
    "argv, says",
    [(["--device", "bogus"], "--device 'bogus': expected cpu, cuda or cuda:N"),
     (["--device", "cpu:1"], "--device 'cpu:1': expected cpu, cuda or cuda:N"),
     (["--optimizer"], "--optimizer needs --train"),
     (["--cast-weights"], "--cast-weights needs --dtype bf16"),
     (["--train", "--no-time"], "--no-time does not apply to --train"),
     (["--attention-type", "jiont"], "--attention-type 'jiont' is not one of"),
     (["--standard", "--model", "timesformer_small"], "--standard runs a fixed set of cases; --model"),
     (["--frames", "4", "--data"], "--frames before it would not be used")],
)  # fmt: skip
def test_bench_argument_errors_come_before_any_measurement(
    argv: list[str], says: str, nothing_measured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and says in err and "matmul" not in captured.err


@pytest.mark.parametrize(
    "argv, says",
    [(["--repeats", "0"], "argument --repeats: expected a positive integer"),
     (["--warmup", "-1"], "argument --warmup: expected an integer >= 0"),
     (["--threads", "0"], "argument --threads: expected a positive integer"),
     (["--batch-size", "0"], "argument --batch-size: expected a positive integer"),
     (["--data", "--workers", "-1"], "argument --workers: expected an integer >= 0"),
     (["--data", "--workers", "0", "x"], "argument --workers: expected an integer >= 0"),
     (["--data", "--videos", "0"], "argument --videos: expected a positive integer"),
     (["--data", "--runs", "0"], "argument --runs: expected a positive integer"),
     (["--data", "--model-depth", "0"], "argument --model-depth: expected a positive integer"),
     (["--data", "--model", "nope"], "argument --model: 'nope' is not 'none' or a preset")],
)  # fmt: skip
def test_bench_bad_values_are_usage_errors_up_front(
    argv: list[str], says: str, nothing_measured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err


def test_bench_data_checks_its_outputs_before_rendering(
    tmp_path: Path, nothing_measured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = ["bench", "--data", "--cache", str(tmp_path / "v"), "--out", str(blocker / "d.json")]
    assert cli.main(argv) == 1
    assert "--out file" in capsys.readouterr().err
    assert cli.main(["bench", "--data", "--cache", str(blocker / "v")]) == 1
    assert "--cache folder" in capsys.readouterr().err
