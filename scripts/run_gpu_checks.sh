#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, one command for the GPU checks (about 5 minutes): the Triton kernel tests compiled
# on CUDA (not interpreted), then the GPU benchmark (bandwidth share of a device-to-device copy, ratios against the
# torchvision formula eager and compiled and F.cross_entropy; fp32 / bf16 / fp16; 1e6 to 1e8 elements). Results go
# to benchmarks/results/gpu/ (the test log, results.json, results.md).
# Uses the environment's Python ($PYTHON, default python) with a CUDA build of torch, Triton and pytest installed;
# focalkit runs from the source tree (the C kernels are not needed on GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 2)"; then
    echo "run_gpu_checks: no CUDA device visible to torch; nothing measured" >&2
    exit 2
fi
OUT=benchmarks/results/gpu
mkdir -p "$OUT"
status=0
FOCALKIT_TRITON_TESTS=cuda timeout 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_kernels_triton.py \
    tests/test_kernels_triton_family.py tests/test_kernels_triton_poly.py tests/test_kernels_triton_reduced.py \
    2>&1 | tee "$OUT/triton_tests.txt" || status=1
timeout 150 "$PY" benchmarks/gpu_bench_triton.py --out "$OUT" --sizes 1e6,1e7,1e8 --dtypes fp32,bf16,fp16 \
    --repeats 30 --warmup 5 || status=1
exit $status
