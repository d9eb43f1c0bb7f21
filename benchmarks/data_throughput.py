"""Data-loading throughput, exact reader vs the naive way: see timesformer.tools.bench.data.

python benchmarks/data_throughput.py --workers 0 2 --out bench_data.json
timesformer bench --data          # the same benchmark with its defaults
"""

from timesformer.tools.bench.data import main

if __name__ == "__main__":
    raise SystemExit(main())
