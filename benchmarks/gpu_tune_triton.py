#!/usr/bin/env python
"""Tile-size and warp-count sweep of focalkit's Triton kernels on a GPU (the module constants ``_TILE`` and
``_NUM_WARPS``).

Every elementwise kernel (sigmoid focal loss and the logistic family) splits its work into programs of ``_TILE``
elements run by ``_NUM_WARPS`` warps; the softmax kernel takes ``_TILE`` elements of rows per program. This script
sets the constants to each pair of the sweep, times one kernel call (forward + gradient, and forward only) with
``triton.testing.do_bench`` (median of CUDA-event timings after warm-up), and prints and writes the table, so that
the defaults can be chosen from measurements on the target GPU.

Usage::

    python benchmarks/gpu_tune_triton.py --out benchmarks/results/gpu
    python benchmarks/gpu_tune_triton.py --out /tmp/tune --tiles 1024,2048 --warps 4,8 --numel 1e7

It needs a CUDA GPU and Triton; without CUDA it exits with status 2 and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# the benchmark beside this script: its dtype names, requirement check and commit reading
from gpu_bench_triton import DTYPES, git_commit, gpu_stack_missing


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Sweep the tile size and warp count of focalkit's Triton kernels.")
    p.add_argument("--out", required=True, type=Path, help="folder for tune.json and tune.md")
    p.add_argument("--tiles", default="1024,2048,4096,8192", help="comma-separated _TILE values (powers of two)")
    p.add_argument("--warps", default="4,8,16", help="comma-separated _NUM_WARPS values")
    p.add_argument("--numel", default="1e8", help="logits elements per case (default: %(default)s)")
    p.add_argument("--dtypes", default="fp32,bf16", help="comma-separated from fp32, bf16, fp16")
    p.add_argument("--budget-s", type=float, default=0.0, help="if > 0, stop starting new cases after this long")
    args = p.parse_args(argv)
    args.tile_list = [int(v) for v in args.tiles.split(",") if v.strip()]
    args.warp_list = [int(v) for v in args.warps.split(",") if v.strip()]
    args.numel_int = int(float(args.numel))
    args.dtype_list = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    bad = [d for d in args.dtype_list if d not in DTYPES]
    if bad:
        p.error(f"--dtypes: expected a subset of {', '.join(DTYPES)}, got {', '.join(bad)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = gpu_stack_missing("gpu_tune_triton")
    if problem:
        print(problem, file=sys.stderr)
        return 2
    import torch
    import triton
    from triton.testing import do_bench

    from focalkit.backends import get_forward
    from focalkit.backends.triton import logistic, sigmoid, softmax

    device = torch.device("cuda")
    rows = []
    started = time.perf_counter()

    def set_constants(tile: int, warps: int) -> None:
        for module in (sigmoid, logistic, softmax):
            module._TILE = tile
            module._NUM_WARPS = warps

    for dtype_name in args.dtype_list:
        dtype = getattr(torch, DTYPES[dtype_name])
        gen = torch.Generator(device=device).manual_seed(0)
        c = 80
        n = args.numel_int // c
        x = (torch.randn((n, c), device=device, generator=gen) * 3 - 2).to(dtype)
        t_idx = torch.randint(0, c + 1, (n,), device=device, generator=gen)
        t_dense = torch.nn.functional.one_hot(t_idx, c + 1)[:, :c].to(dtype)
        y_soft = torch.rand((n, c), device=device, generator=gen).to(dtype)
        alpha = dict(alpha_pos=torch.full((c,), 0.25, device=device), alpha_neg=torch.full((c,), 0.75, device=device))
        cs = 1000
        xs = (torch.randn((args.numel_int // cs, cs), device=device, generator=gen) * 3).to(dtype)
        ts = torch.randint(0, cs, (args.numel_int // cs,), device=device, generator=gen)
        varifocal = get_forward("varifocal", "triton")
        quality = get_forward("quality_focal", "triton")
        cases = {
            "sigmoid index fwd+grad": lambda: sigmoid.forward(x, t_idx, gamma=2.0, ignore_index=-100, reduce_sum=True,
                                                              compute_grad=True, **alpha),
            "sigmoid index fwd": lambda: sigmoid.forward(x, t_idx, gamma=2.0, ignore_index=-100, reduce_sum=True,
                                                         compute_grad=False, **alpha),
            "sigmoid dense fwd+grad": lambda: sigmoid.forward(x, t_dense, gamma=2.0, ignore_index=None,
                                                              reduce_sum=True, compute_grad=True, **alpha),
            "sigmoid dense fwd": lambda: sigmoid.forward(x, t_dense, gamma=2.0, ignore_index=None, reduce_sum=True,
                                                         compute_grad=False, **alpha),
            "varifocal fwd+grad": lambda: varifocal(x, y_soft, alpha=0.75, gamma=2.0, iou_weighted=1.0,
                                                    ignore_index=None, reduce_sum=True, compute_grad=True),
            "quality_focal fwd+grad": lambda: quality(x, y_soft, beta=2.0, ignore_index=None, reduce_sum=True,
                                                      compute_grad=True),
            "softmax C=1000 fwd+grad": lambda: softmax.forward(xs, ts, weight=None, alpha=None, gamma=2.0,
                                                               ignore_index=-100, reduce_sum=True, compute_grad=True),
            "softmax C=1000 fwd": lambda: softmax.forward(xs, ts, weight=None, alpha=None, gamma=2.0,
                                                          ignore_index=-100, reduce_sum=True, compute_grad=False),
        }
        copy_src = x.clone()
        copy_ms = do_bench(lambda: copy_src.copy_(x), warmup=25, rep=100, return_mode="median")
        rows.append({"dtype": dtype_name, "case": "copy_ (read + write of the logits)", "tile": 0, "warps": 0,
                     "median_ms": copy_ms})
        print(f"{dtype_name}: copy of the logits {copy_ms:.3f} ms")
        for tile in args.tile_list:
            for warps in args.warp_list:
                if args.budget_s > 0 and time.perf_counter() - started > args.budget_s:
                    print(f"budget of {args.budget_s:.0f} s spent: stopping")
                    break
                set_constants(tile, warps)
                for name, run in cases.items():
                    try:
                        ms = do_bench(run, warmup=25, rep=100, return_mode="median")
                    except Exception as exc:  # a configuration that does not compile is reported
                        rows.append({"dtype": dtype_name, "case": name, "tile": tile, "warps": warps,
                                     "error": f"{type(exc).__name__}: {str(exc)[:120]}"})
                        print(f"  {name:26s} tile {tile:5d} warps {warps:2d}: FAILED {type(exc).__name__}")
                        continue
                    rows.append({"dtype": dtype_name, "case": name, "tile": tile, "warps": warps, "median_ms": ms})
                    print(f"  {name:26s} tile {tile:5d} warps {warps:2d}: {ms:.3f} ms")
        x = t_idx = t_dense = y_soft = xs = ts = copy_src = None
        torch.cuda.empty_cache()

    meta = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "triton": triton.__version__,
            "git_commit": git_commit(),
            "numel": args.numel_int, "method": "triton.testing.do_bench median (warmup 25 ms, rep 100 ms)"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tune.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = ["# Tile / warp sweep of the Triton kernels", "",
             f"- {meta['device']}, torch {meta['torch']}, triton {meta['triton']}, {args.numel_int:.0e} elements, "
             f"commit {meta['git_commit']}",
             f"- {meta['method']}", "", "| dtype | case | tile | warps | median ms |", "|---|---|---:|---:|---:|"]
    for r in rows:
        value = f"{r['median_ms']:.3f}" if "median_ms" in r else r["error"]
        lines.append(f"| {r['dtype']} | {r['case']} | {r['tile']} | {r['warps']} | {value} |")
    (args.out / "tune.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
