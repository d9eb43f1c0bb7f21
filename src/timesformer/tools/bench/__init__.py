"""Cost, speed and memory of TimeSformer models, side by side with Hugging Face transformers.

What is measured, and how:
- parameters and multiply-accumulates (MACs) per clip: `count_flops` on the meta device;
- latency: median of repeated runs after warm-up, ours and theirs alternating in one process
  (so that both see the same machine load); throughput = batch / latency;
- peak memory of one forward (or training) step: in a fresh subprocess per case. CPU: growth of
  the resident set (Linux high-water mark reset through /proc/self/clear_refs, big allocations
  forced through mmap so that freed memory leaves the resident set); GPU: max_memory_allocated;
- achieved FLOP/s as a fraction of this machine's matmul peak for the same dtype, measured in
  the same run;
- which SDPA kernel runs (flash / memory-efficient / cudnn / math), read from the profiler.
`cost_sweep` reproduces the paper's Figure 3 (joint vs divided cost against size and frames) by
counting, without running the big cases.

Modules: `cases` (what runs), `measure` (timing and memory), `sdpa` (kernels), `cost` (counted
cost, Figure 3), `machine` (where it ran), `suite` (cases end to end, the standard set, goals),
`report` (Markdown, JSON), `data` (the data-loading benchmark).
"""

from .cases import DTYPES, HF_ATTENTION_TYPES, IMPLS, Case, Runner, build_hf_model, make_runner
from .cost import attention_matrix_bytes, cost_sweep, cost_table, model_cost, plot_sweep
from .machine import machine_info, package_version
from .measure import (
    MiB,
    matmul_peak,
    measure_in_subprocess,
    num_threads,
    paired_ratio,
    peak_memory,
    summarize,
    time_alternating,
)
from .report import BEGIN, END, json_safe, to_markdown, write_markdown
from .sdpa import sdpa_backends_available, sdpa_kernels_used, sdpa_report
from .suite import (
    Goal,
    apply_peaks,
    check_grad_checkpointing,
    evaluate_goals,
    finish_peaks,
    new_report,
    peaks_for,
    run_case,
    run_standard,
    run_train_case,
    standard_cases,
)

__all__ = [
    "BEGIN",
    "DTYPES",
    "END",
    "HF_ATTENTION_TYPES",
    "IMPLS",
    "Case",
    "Goal",
    "MiB",
    "Runner",
    "apply_peaks",
    "attention_matrix_bytes",
    "build_hf_model",
    "check_grad_checkpointing",
    "cost_sweep",
    "cost_table",
    "evaluate_goals",
    "finish_peaks",
    "json_safe",
    "machine_info",
    "make_runner",
    "matmul_peak",
    "measure_in_subprocess",
    "model_cost",
    "new_report",
    "num_threads",
    "package_version",
    "paired_ratio",
    "peak_memory",
    "peaks_for",
    "plot_sweep",
    "run_case",
    "run_standard",
    "run_train_case",
    "sdpa_backends_available",
    "sdpa_kernels_used",
    "sdpa_report",
    "standard_cases",
    "summarize",
    "time_alternating",
    "to_markdown",
    "write_markdown",
]
