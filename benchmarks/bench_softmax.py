"""Benchmark of the softmax focal loss: focalkit back-ends vs other implementations (CPU; see docs/benchmarks.md).

Usage: python benchmarks/bench_softmax.py [--quick] [--sizes 1e4 1e6 ...] [--dtypes fp32 bf16 fp16] [--out DIR]
Writes DIR/bench_softmax.json, .md and .png (default DIR: benchmarks/results/cpu).
"""

import sys

from focalkit_app.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], op="softmax"))
