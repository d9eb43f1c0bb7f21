"""Data-loading throughput, exact reader vs the naive way: see timesformer.tools.data_bench.

python benchmarks/data_throughput.py --workers 0 2 --out bench_data.json
timesformer bench --data          # the same benchmark with its defaults
"""

from timesformer.tools.data_bench import main

if __name__ == "__main__":
    raise SystemExit(main())
