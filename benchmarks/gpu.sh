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
# 420 s of measurements at most: steps that would start later are listed as skipped
timeout 470 "$PY" -m timesformer.tools.bench.gpu --device cuda --budget-s 420 \
    --out "$OUT" --json "${OUT%.md}.json" "$@"
echo "wrote $OUT" >&2
