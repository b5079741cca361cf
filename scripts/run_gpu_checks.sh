#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, one command for the GPU checks (under 5 minutes): the Triton kernel tests compiled
# on CUDA (not interpreted; tensors over 2^31 elements included), then the GPU benchmark (bandwidth share of a
# device-to-device copy, ratios against the torchvision formula eager and compiled, torchvision itself where it
# imports, and F.cross_entropy; (N, C) and (N, C, S) layouts; fp32 / bf16 / fp16; 1e6 to 1e8 elements). Results go
# to benchmarks/results/gpu/ (triton_tests.txt, results.json, results.md).
# Uses the environment's Python ($PYTHON; default python3, else python) with a CUDA build of torch, Triton and pytest
# installed (pytest-xdist, when present, spreads the kernel tests over 8 processes); focalkit runs from the source
# tree (the C kernels are not needed on GPU). Arguments are passed on to the benchmark (e.g. --commit SHA).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3 || command -v python)}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 2)"; then
    echo "run_gpu_checks: no CUDA device visible to torch; nothing measured" >&2
    exit 2
fi
OUT=benchmarks/results/gpu
mkdir -p "$OUT"
status=0
parallel=()
if "$PY" -c "import xdist" 2>/dev/null; then parallel=(-n 8); fi
FOCALKIT_TRITON_TESTS=cuda timeout 150 "$PY" -m pytest -q -p no:cacheprovider "${parallel[@]}" \
    tests/test_kernels_triton.py tests/test_kernels_triton_family.py tests/test_kernels_triton_poly.py \
    tests/test_kernels_triton_reduced.py tests/test_kernels_triton_large.py \
    2>&1 | tee "$OUT/triton_tests.txt" || status=1
# results are written after every case; the budget skips (and lists) the cases that would start after 140 s
timeout 200 "$PY" benchmarks/gpu_bench_triton.py --out "$OUT" --sizes 1e6,1e7,1e8 --dtypes fp32,bf16,fp16 \
    --spatial 65536 --repeats 30 --warmup 5 --budget-s 140 "$@" || status=1
exit $status
