#!/usr/bin/env bash
# The GPU benchmark of issue 12, under 8 minutes on one card: bf16 inference throughput at batch
# 1, 32, 64 against Hugging Face (eager and torch.compile), the SDPA kernel that ran, MFU against
# the card's bf16 peak, training clips/s (base 8x224, bf16, batch 16), the largest batch that
# fits (divided 96x224, joint 32x224, both implementations) and the loader's clips/s with 16
# workers. Writes a Markdown table (default benchmarks/gpu_results.md) and its JSON.
#
#   benchmarks/gpu.sh [OUT.md] [extra args of python -m timesformer.tools.bench.gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/gpu_results.md}"
shift || true
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script is for a GPU machine')"
# PyAV (a dependency) is missing from some GPU images that have torch: install wheels carried in
# .whl/ (an ignored folder), e.g. made on a machine with a package index by
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl av==18.1.0
if ! "$PY" -c "import av" 2>/dev/null; then
    if ls .whl/av-*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/timesformer_site .whl/*.whl
        export PYTHONPATH="$PYTHONPATH:/tmp/timesformer_site"
    else
        echo "PyAV (import av) is missing and .whl/ holds no av wheel: pip install av, or carry one (see this script's header)" >&2
        exit 1
    fi
fi
# 420 s of measurements at most: steps that would start later are listed as skipped
timeout 470 "$PY" -m timesformer.tools.bench.gpu --device cuda --budget-s 420 \
    --out "$OUT" --json "${OUT%.md}.json" "$@"
echo "wrote $OUT" >&2
