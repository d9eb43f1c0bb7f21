"""benchmarks/gpu.sh's Python side (`tools/bench/gpu.py`), every code path run on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from timesformer.tools.bench import gpu


@pytest.mark.parametrize("limit", [0, 1, 5, 8, 13, 100])
def test_largest_batch_finds_the_limit_within_the_cap(limit: int) -> None:
    tried: list[int] = []

    def fits(b: int) -> bool:
        tried.append(b)
        return b <= limit

    assert gpu.largest_batch(fits, cap=64) == min(limit, 64)
    assert max(tried) <= 64 and len(tried) <= 14  # doubling then bisecting, not a scan


def test_oom_is_recognised_and_other_errors_are_not() -> None:
    assert gpu.is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert gpu.is_oom(RuntimeError("DefaultCPUAllocator: can't allocate: out of memory"))
    assert not gpu.is_oom(RuntimeError("shape mismatch"))


def test_known_peaks_by_device_name() -> None:
    assert gpu.known_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu.known_peak("NVIDIA H100 PCIe") == 756e12  # the more specific name first
    assert gpu.known_peak("NVIDIA H200") == 989e12
    assert gpu.known_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert gpu.known_peak("NVIDIA L4") == 121e12
    assert gpu.known_peak("Some Future Card") is None
    peak, src = gpu.device_peak("cpu")  # unknown: measured
    assert peak > 0 and "measured" in src


def test_gpu_bench_runs_every_step_on_cpu_with_a_tiny_model(tmp_path: Path) -> None:
    out, js = tmp_path / "gpu.md", tmp_path / "gpu.json"
    argv = ["--device", "cpu", "--model", "timesformer_tiny", "--depth", "1", "--img-size", "32", "--batches", "1",
            "2", "--compile-batches", "--train-batch", "2", "--batch-cap", "2", "--workers", "0",
            "--videos", "1", "--repeats", "1", "--cache", str(tmp_path / "v"),
            "--out", str(out), "--json", str(js)]  # fmt: skip
    # the loader reads 224 crops; the model runs a depth-1 tiny geometry at 32 px
    assert gpu.main(argv) == 0
    rep = json.loads(js.read_text())
    assert [r["label"] for r in rep["inference"]] == [
        "tiny divided 8x32 b1 bf16-weights",
        "tiny divided 8x32 b2 bf16-weights",
    ]
    for r in rep["inference"] + [rep["train"]]:
        assert set(r["impls"]) == {"ours", "hf"} and r["speedup_vs_hf"] > 0
        assert all(e["clips_per_s"] > 0 and e["mfu"] > 0 for e in r["impls"].values())
    assert rep["inference"][0]["sdpa_kernels"] == ["flash"]
    assert "train" in rep["train"]["label"] and "adamw" in rep["train"]["label"]
    assert [(r["impl"], r["batch"]) for r in rep["max_batch"]] == [("ours", 2), ("hf", 2)] * 2
    assert rep["loader"]["clips_per_s"] > 0 and rep["skipped"] == []
    md = out.read_text()
    assert "| case | ours clips/s |" in md and "(cap 2)" in md and "Data loader" in md


def test_gpu_bench_budget_skips_what_would_start_late(tmp_path: Path) -> None:
    rep = gpu.run_gpu_bench("cpu", "timesformer_tiny", {"depth": 1}, budget_s=0.0,
                            cache=tmp_path)  # fmt: skip
    assert rep["inference"] == [] and rep["train"] is None and rep["loader"] is None
    assert len(rep["skipped"]) == 3 + 3 + 1 + 4 + 1
    assert "Skipped (time budget): inference b1." in gpu.to_markdown(rep)
