#!/usr/bin/env python
"""GPU benchmark of focalkit's fused Triton focal-loss kernels (forward + backward).

Times, per size and dtype, one forward + backward of:

- ``focalkit triton``: the Triton back-end's contract functions ``focalkit.backends.triton.sigmoid.forward`` /
  ``focalkit.backends.triton.softmax.forward`` with ``reduce_sum=True, compute_grad=True`` (one kernel: loss partials
  and the gradient), index targets and (sigmoid) dense float targets;
- ``torchvision formula eager`` and ``torchvision formula compiled`` (``torch.compile``): the formula of
  ``torchvision.ops.sigmoid_focal_loss`` written inline (so torchvision need not be installed), ``.sum().backward()``;
- ``softmax focal eager`` / ``compiled``: ``-(1 - p_t)^gamma log p_t`` from ``log_softmax`` + ``gather``;
- ``F.binary_cross_entropy_with_logits`` and ``F.cross_entropy`` (sum, backward): the speed of plain CE;
- the device copy bandwidth: ``dst.copy_(src)`` of a large buffer, counted as 2 x bytes (read + write).

For every case it reports the median time (CUDA events, after warm-up), the 20 / 80 % quantiles, the peak memory
above the inputs, and the "% of copy bandwidth" of the minimal traffic: logits and targets read once and the
gradient written once (e.g. 4 + 8 + 4 = 16 bytes per element for fp32 logits with int64 index targets in the sigmoid
case; for softmax the int64 targets are per row and counted per row).

Writes ``results.json`` and ``results.md`` to ``--out`` with the device name, versions, date and git commit.

Usage::

    python benchmarks/gpu_bench_triton.py --out out/bench_triton
    python benchmarks/gpu_bench_triton.py --out out/quick --sizes 1e6 --dtypes fp32 --repeats 10 --no-compile

It needs a CUDA GPU and Triton; without CUDA it exits with status 2 and says so.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time focalkit's Triton focal-loss kernels (forward + backward) against PyTorch baselines.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder for results.json and results.md")
    p.add_argument("--sizes", default="1e6,1e7,1e8",
                   help="comma-separated logits element counts (default: %(default)s)")
    p.add_argument("--dtypes", default="fp32,bf16", help="comma-separated from fp32, bf16, fp16 (default: %(default)s)")
    p.add_argument("--sigmoid-classes", type=int, default=80, help="C of the sigmoid case, (N, C) logits")
    p.add_argument("--softmax-classes", type=int, default=1000, help="C of the softmax case, (N, C) logits")
    p.add_argument("--spatial", type=int, default=0,
                   help="if > 0, also run a segmentation layout (N, C, S) with S = this many pixels per image")
    p.add_argument("--gamma", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.25)
    p.add_argument("--repeats", type=int, default=50, help="timed repetitions per case (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=10, help="untimed repetitions first (default: %(default)s)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile baselines")
    p.add_argument("--only", default="", help="comma-separated substrings: run only cases whose name contains one")
    p.add_argument("--commit", default="",
                   help="the commit to record (default: git rev-parse HEAD, with -dirty for uncommitted changes); for "
                        "a copy of the source tree whose git metadata is not the checkout's")
    p.add_argument("--budget-s", type=float, default=0.0,
                   help="if > 0, skip the cases that would start after this many seconds (they are listed as "
                        "skipped); results are written after every case, so a run cut short keeps what it measured")
    p.add_argument("--cpu-smoke", action="store_true",
                   help="check this script without a GPU: Triton interpreter on CPU tensors, wall-clock timing, tiny "
                        "sizes only; the numbers mean nothing")
    args = p.parse_args(argv)
    try:
        args.size_list = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes: expected comma-separated numbers, got {args.sizes!r}")
    args.dtype_list = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    bad = [d for d in args.dtype_list if d not in DTYPES]
    if bad:
        p.error(f"--dtypes: expected a subset of {', '.join(DTYPES)}, got {', '.join(bad)}")
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    return args


RATIOS = (  # (numerator case, denominator case, what the ratio says)
    ("sigmoid torchvision formula eager", "sigmoid focalkit triton (dense)",
     "eager torchvision formula / focalkit kernel"),
    ("sigmoid torchvision formula compiled", "sigmoid focalkit triton (dense)",
     "compiled torchvision formula / focalkit kernel"),
    ("sigmoid torchvision library", "sigmoid focalkit public API", "torchvision.ops.sigmoid_focal_loss / focalkit API"),
    ("sigmoid torchvision formula eager", "sigmoid focalkit public API", "eager torchvision formula / focalkit API"),
    ("sigmoid focalkit public API", "F.binary_cross_entropy_with_logits", "focalkit API / BCE with logits"),
    ("softmax focalkit triton", "F.cross_entropy", "focalkit softmax kernel / F.cross_entropy"),
    ("softmax focalkit public API", "F.cross_entropy", "focalkit softmax API / F.cross_entropy"),
    ("softmax focal formula compiled", "softmax focalkit triton", "compiled softmax focal formula / focalkit kernel"),
    ("sigmoid torchvision formula compiled", "sigmoid focalkit triton (index)",
     "compiled torchvision formula (dense targets) / focalkit kernel (class-index targets)"),
    ("softmax (N,C,S) focalkit triton", "softmax (N,C,S) F.cross_entropy",
     "focalkit softmax kernel / F.cross_entropy, (N, C, S) layout"),
)


def ratio_lines(records: list[dict]) -> list[str]:
    """Markdown table of the RATIOS for every dtype and size where both cases ran (median over median)."""
    times = {(r["case"], r["dtype"], r["numel"]): r["median_ms"] for r in records if "median_ms" in r}
    out = ["## Ratios of median times (above 1: the second case is faster)", "",
           "| ratio | dtype | elements | value |", "|---|---|---:|---:|"]
    for numerator, denominator, what in RATIOS:
        for (case, dtype_name, numel), t in times.items():
            other = times.get((denominator, dtype_name, numel))
            if case == numerator and other:
                out.append(f"| {what} | {dtype_name} | {numel:.0e} | {t / other:.2f} |")
    return out


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def gpu_stack_missing(script: str, *, cpu_smoke: bool = False) -> str | None:
    """Why a GPU script cannot measure on this machine (None when it can): no CUDA device (unless it is the CPU smoke
    check) or no Triton. Puts the source tree on ``sys.path`` when focalkit is not installed."""
    import torch

    if not cpu_smoke and not torch.cuda.is_available():
        return (f"{script}: CUDA is not available on this machine (torch.cuda.is_available() is False); it needs an "
                "NVIDIA GPU with Triton. Nothing was measured.")
    try:
        import triton  # noqa: F401
    except ImportError:
        return f"{script}: Triton is not installed (pip install triton); nothing was measured."
    try:
        import focalkit  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO / "src"))
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    if args.cpu_smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before any @triton.jit runs

    smoke = args.cpu_smoke
    problem = gpu_stack_missing("gpu_bench_triton", cpu_smoke=smoke)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    import torch
    import triton

    from focalkit.backends.triton.sigmoid import forward as sigmoid_focal_forward
    from focalkit.backends.triton.softmax import forward as softmax_focal_forward
    from focalkit.backends import get_forward

    import torch.nn.functional as F

    device = torch.device("cpu" if smoke else "cuda")

    def empty_cache() -> None:
        if not smoke:
            torch.cuda.empty_cache()

    def sync() -> None:
        if not smoke:
            torch.cuda.synchronize()
    gamma, alpha = args.gamma, args.alpha
    only = [s.strip() for s in args.only.split(",") if s.strip()]

    # ------------------------------------------------------------------ baselines (autograd)
    def tv_formula(x, t):
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        loss = ce * ((1 - p_t) ** gamma)
        alpha_t = alpha * t + (1 - alpha) * (1 - t)
        return (alpha_t * loss).sum()

    def softmax_formula(x, t):
        logp = torch.log_softmax(x.float(), dim=1)
        logp_t = logp.gather(1, t.unsqueeze(1)).squeeze(1)
        p_t = logp_t.exp()
        return (-((1 - p_t) ** gamma) * logp_t).sum()

    compiled: dict[str, Callable] = {}
    if not args.no_compile:
        # one compiled graph per dtype (and a dynamic-shape one across sizes): keep torch.compile from falling back
        # to eager after its default limit of 8 recompilations
        import torch._dynamo

        for limit_name in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, limit_name):
                setattr(torch._dynamo.config, limit_name, 64)
        compiled["tv"] = torch.compile(tv_formula)
        compiled["softmax"] = torch.compile(softmax_formula)

    import focalkit

    def focalkit_sigmoid_api(x, t):
        return focalkit.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="sum")

    def focalkit_softmax_api(x, t):
        return focalkit.softmax_focal_loss(x, t, gamma=gamma, reduction="sum")

    try:  # the library itself where it imports beside this torch build; the formula above stands in otherwise
        from torchvision.ops import sigmoid_focal_loss as torchvision_sigmoid_focal_loss

        def torchvision_library(x, t):
            return torchvision_sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="sum")
    except Exception:  # ImportError, or torchvision's operator registration failing against this torch
        torchvision_library = None

    def autograd_case(fn, x, t):
        def run():
            x.grad = None
            fn(x, t).backward()
        return run

    # ------------------------------------------------------------------ timing helpers
    def time_cuda(run: Callable[[], object]) -> dict:
        for _ in range(args.warmup):
            run()
        sync()
        times = []
        for _ in range(args.repeats):
            if smoke:
                t0 = time.perf_counter()
                run()
                times.append((time.perf_counter() - t0) * 1e3)
                continue
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))  # ms
        times.sort()
        q = lambda f: times[min(len(times) - 1, int(f * (len(times) - 1) + 0.5))]  # noqa: E731
        return {"median_ms": statistics.median(times), "p20_ms": q(0.2), "p80_ms": q(0.8), "repeats": len(times)}

    def peak_extra_bytes(run: Callable[[], object]) -> int:
        if smoke:
            return 0
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)

    copy_nbytes = 1 << 24 if smoke else 1 << 30

    def copy_bandwidth(nbytes: int = copy_nbytes) -> float:
        src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
        dst = torch.empty_like(src)
        r = time_cuda(lambda: dst.copy_(src))
        return 2 * nbytes / (r["median_ms"] * 1e-3)  # bytes / s, read + write

    # ------------------------------------------------------------------ run
    def accuracy_check() -> dict:
        """Max relative error of the GPU kernels vs the float64 reference on a small problem (sanity, not timing)."""
        from focalkit import reference

        g = torch.Generator(device=device).manual_seed(1)
        x = (torch.randn(4096, 80, device=device, generator=g) * 6).clamp(-18, 18)  # reference exact to |x| <= 20
        t = torch.randint(0, 81, (4096,), device=device, generator=g)
        y = F.one_hot(t, 81)[:, :80].double()
        out = {}
        for name, tg in (("sigmoid_index", t), ("sigmoid_dense", y.float())):
            loss, grad = sigmoid_focal_forward(x, tg, alpha_pos=None, alpha_neg=None, gamma=gamma,
                                               ignore_index=-100, reduce_sum=False, compute_grad=True)
            x64 = x.double().requires_grad_(True)
            ref = reference.sigmoid_focal_loss(x64, y, alpha=None, gamma=gamma)
            (rg,) = torch.autograd.grad(ref.sum(), x64)
            out[name] = {"loss_max_rel": ((loss.double() - ref).abs() / ref.abs().clamp_min(1e-30)).max().item(),
                         "grad_max_rel": ((grad.double() - rg).abs() / rg.abs().clamp_min(1e-30)).max().item()}
        ts = t.clamp(max=79)
        loss, grad = softmax_focal_forward(x, ts, weight=None, alpha=None, gamma=gamma, ignore_index=-100,
                                           reduce_sum=False, compute_grad=True)
        x64 = x.double().requires_grad_(True)
        ref = reference.softmax_focal_loss(x64, ts, alpha=None, gamma=gamma)
        (rg,) = torch.autograd.grad(ref.sum(), x64)
        out["softmax"] = {"loss_max_rel": ((loss.double() - ref).abs() / ref.abs().clamp_min(1e-30)).max().item(),
                          "grad_max_abs": (grad.double() - rg).abs().max().item()}
        # the public functions (argument checks, dispatch to the kernels, autograd) on the same inputs
        xa = x.detach().clone().requires_grad_(True)
        api_loss = focalkit.softmax_focal_loss(xa, ts, gamma=gamma, reduction="none")
        (api_grad,) = torch.autograd.grad(api_loss.sum(), xa)
        out["softmax_public_api"] = {
            "loss_max_rel": ((api_loss.double() - ref).abs() / ref.abs().clamp_min(1e-30)).max().item(),
            "grad_max_abs": (api_grad.double() - rg).abs().max().item()}
        ref = reference.sigmoid_focal_loss(x64, y, alpha=None, gamma=gamma)
        (rg,) = torch.autograd.grad(ref.sum(), x64)
        api_loss = focalkit.sigmoid_focal_loss(xa, y.float(), alpha=None, gamma=gamma, reduction="none")
        (api_grad,) = torch.autograd.grad(api_loss.sum(), xa)
        out["sigmoid_public_api"] = {
            "loss_max_rel": ((api_loss.double() - ref).abs() / ref.abs().clamp_min(1e-30)).max().item(),
            "grad_max_rel": ((api_grad.double() - rg).abs() / rg.abs().clamp_min(1e-30)).max().item()}
        from focalkit.backends import resolve_backend

        out["public_api_backend"] = resolve_backend("sigmoid_focal", x, y.float())
        return out

    try:
        check = accuracy_check()
    except Exception as exc:  # report, keep timing
        check = {"error": f"{type(exc).__name__}: {exc}"}
    print(f"accuracy vs float64 reference: {check}")
    copy_bw = copy_bandwidth()
    print(f"device copy bandwidth: {copy_bw / 1e9:.0f} GB/s (2 x bytes / time of a {copy_nbytes >> 20} MiB copy_)")
    # ------------------------------------------------------------------ write (after every case)
    def write_results() -> None:
        meta = {
            "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "device": "cpu (--cpu-smoke, Triton interpreter: numbers mean nothing)" if smoke
            else torch.cuda.get_device_name(0),
            "device_capability": [0, 0] if smoke else list(torch.cuda.get_device_capability(0)),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "triton": triton.__version__,
            "python": platform.python_version(),
            "git_commit": args.commit or git_commit(),
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
            "copy_bandwidth_GBps": copy_bw / 1e9,
            "accuracy_check": check,
            "gamma": gamma, "alpha": alpha, "repeats": args.repeats, "warmup": args.warmup,
            "method": "CUDA events around each forward+backward, median over repeats after warm-up; "
                      "min_bytes = logits + targets read once + gradient written once; "
                      "pct_of_copy_bw = (min_bytes / median time) / copy bandwidth",
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"meta": meta, "results": records}, indent=2))
        lines = [
            "# focalkit Triton kernels: forward + backward timings",
            "",
            f"- device: {meta['device']} (sm {meta['device_capability'][0]}{meta['device_capability'][1]}), "
            f"copy bandwidth {meta['copy_bandwidth_GBps']:.0f} GB/s",
            f"- torch {meta['torch']}, CUDA {meta['cuda']}, triton {meta['triton']}, Python {meta['python']}",
            f"- commit {meta['git_commit']}, {meta['date_utc']}",
            f"- gamma {gamma}, alpha {alpha}; median of {args.repeats} after {args.warmup} warm-up runs",
            f"- {meta['method']}",
            f"- accuracy vs float64 reference (4096 x 80, logits 6 N(0,1) clamped to +-18): `{json.dumps(check)}`",
            "",
            "| case | dtype | elements | shape | median ms | p20-p80 ms | ns/elem | % copy BW | peak +MiB |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in records:
            if "error" in r:
                what = r["error"] if r["error"].startswith("skipped") else f"failed: {r['error'][:60]}"
                lines.append(f"| {r['case']} | {r['dtype']} | {r['numel']:.0e} | {tuple(r['shape'])} | {what} "
                             "| | | | |")
                continue
            lines.append(
                f"| {r['case']} | {r['dtype']} | {r['numel']:.0e} | {tuple(r['shape'])} | {r['median_ms']:.3f} | "
                f"{r['p20_ms']:.3f}-{r['p80_ms']:.3f} | {r['ns_per_element']:.3f} | {r['pct_of_copy_bw']:.1f} | "
                f"{r['peak_extra_MiB']:.0f} |")
        lines += ["", *ratio_lines(records)]
        (args.out / "results.md").write_text("\n".join(lines) + "\n")

    records = []
    started = time.perf_counter()

    def record(case: str, dtype_name: str, numel: int, shape, min_bytes: int, run: Callable[[], object], note=""):
        if only and not any(s in case for s in only):
            return
        if args.budget_s > 0 and time.perf_counter() - started > args.budget_s:
            print(f"  {case:34s} {dtype_name} n={numel:.0e}: skipped (time budget of {args.budget_s:.0f} s spent)")
            records.append({"case": case, "dtype": dtype_name, "numel": numel, "shape": list(shape),
                            "error": f"skipped: time budget of {args.budget_s:.0f} s spent"})
            write_results()
            return
        try:
            timing = time_cuda(run)
            peak = peak_extra_bytes(run)
        except Exception as exc:  # a baseline that fails (e.g. OOM, compile error) is reported, not fatal
            print(f"  {case:34s} {dtype_name} n={numel:.0e}: FAILED {type(exc).__name__}: {exc}")
            records.append({"case": case, "dtype": dtype_name, "numel": numel, "shape": list(shape),
                            "error": f"{type(exc).__name__}: {exc}"})
            empty_cache()
            write_results()
            return
        sec = timing["median_ms"] * 1e-3
        rec = {
            "case": case, "dtype": dtype_name, "numel": numel, "shape": list(shape), **timing,
            "ns_per_element": sec * 1e9 / numel, "min_bytes": min_bytes,
            "effective_GBps": min_bytes / sec / 1e9, "pct_of_copy_bw": 100.0 * (min_bytes / sec) / copy_bw,
            "peak_extra_MiB": peak / 2**20, "note": note,
        }
        records.append(rec)
        write_results()
        print(f"  {case:34s} {dtype_name} n={numel:.0e}: {timing['median_ms']:8.3f} ms  "
              f"{rec['pct_of_copy_bw']:5.1f}% of copy BW  peak +{rec['peak_extra_MiB']:.0f} MiB")

    for dtype_name in args.dtype_list:
        dtype = getattr(torch, DTYPES[dtype_name])
        esize = torch.finfo(dtype).bits // 8
        for numel in args.size_list:
            gen = torch.Generator(device=device).manual_seed(0)
            # ---------------- sigmoid, (N, C) detection layout
            c = args.sigmoid_classes
            n = max(1, numel // c)
            shape = (n, c)
            x = (torch.randn(shape, device=device, generator=gen) * 3 - 2).to(dtype)
            t_idx = torch.randint(0, c + 1, (n,), device=device, generator=gen)  # c = background
            t_dense = F.one_hot(t_idx, c + 1)[:, :c].to(dtype)
            ne = n * c
            print(f"sigmoid {shape} {dtype_name}")
            kw = dict(alpha_pos=torch.full((c,), alpha, device=device),
                      alpha_neg=torch.full((c,), 1 - alpha, device=device), gamma=gamma, ignore_index=-100)
            record("sigmoid focalkit triton (index)", dtype_name, ne, shape, ne * 2 * esize + n * 8,
                   lambda: sigmoid_focal_forward(x, t_idx, reduce_sum=True, compute_grad=True, **kw))
            record("sigmoid focalkit triton (dense)", dtype_name, ne, shape, ne * 3 * esize,
                   lambda: sigmoid_focal_forward(x, t_dense, reduce_sum=True, compute_grad=True, **kw))
            record("sigmoid focalkit triton fwd only", dtype_name, ne, shape, ne * esize + n * 8,
                   lambda: sigmoid_focal_forward(x, t_idx, reduce_sum=True, compute_grad=False, **kw))
            xg = x.detach().clone().requires_grad_(True)
            record("sigmoid torchvision formula eager", dtype_name, ne, shape, ne * 3 * esize,
                   autograd_case(tv_formula, xg, t_dense))
            if "tv" in compiled:
                record("sigmoid torchvision formula compiled", dtype_name, ne, shape, ne * 3 * esize,
                       autograd_case(compiled["tv"], xg, t_dense))
            if torchvision_library is not None:
                record("sigmoid torchvision library", dtype_name, ne, shape, ne * 3 * esize,
                       autograd_case(torchvision_library, xg, t_dense), note="torchvision.ops.sigmoid_focal_loss")
            record("sigmoid focalkit public API", dtype_name, ne, shape, ne * 3 * esize,
                   autograd_case(focalkit_sigmoid_api, xg, t_dense),
                   note="focalkit.sigmoid_focal_loss(reduction='sum').backward(): checks, dispatch, autograd")
            record("F.binary_cross_entropy_with_logits", dtype_name, ne, shape, ne * 3 * esize,
                   autograd_case(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="sum"), xg, t_dense),
                   note="plain CE, no focal term")
            x = xg = t_idx = t_dense = None  # free before the next case
            empty_cache()

            # ---------------- the family: elementwise losses on (N, C) logits with soft targets, and the
            # distribution focal loss on (N, 17) bins (YOLOv8's reg_max = 16)
            c = args.sigmoid_classes
            n = max(1, numel // c)
            shape = (n, c)
            x = (torch.randn(shape, device=device, generator=gen) * 3 - 2).to(dtype)
            y_soft = torch.rand(shape, device=device, generator=gen).to(dtype)
            ne = n * c
            print(f"family {shape} {dtype_name}")
            family = {
                "quality_focal": dict(beta=2.0),
                "varifocal": dict(alpha=0.75, gamma=2.0, iou_weighted=1.0),
                "gaussian_focal": dict(alpha=2.0, beta=4.0),
                "asymmetric": dict(gamma_pos=0.0, gamma_neg=4.0, clip=0.05, detach_focal_weight=0.0),
                "poly1_focal": dict(gamma=2.0, epsilon=1.0),
            }
            for op, op_kw in family.items():
                op_forward = get_forward(op, "triton")
                record(f"{op} focalkit triton", dtype_name, ne, shape, ne * 3 * esize,
                       lambda: op_forward(x, y_soft, **op_kw, ignore_index=None, reduce_sum=True, compute_grad=True))
            bins = 17
            n_rows = max(1, numel // bins)
            x_bins = torch.randn((n_rows, bins), device=device, generator=gen).to(dtype)
            y_bins = torch.rand((n_rows,), device=device, generator=gen) * (bins - 1)
            dfl_forward = get_forward("distribution_focal", "triton")
            record("distribution_focal focalkit triton", dtype_name, n_rows * bins, (n_rows, bins),
                   n_rows * bins * 2 * esize + n_rows * 4,
                   lambda: dfl_forward(x_bins, y_bins, reduce_sum=True, compute_grad=True))
            x = y_soft = x_bins = y_bins = None
            empty_cache()

            # ---------------- softmax, (N, C)
            c = args.softmax_classes
            n = max(1, numel // c)
            shape = (n, c)
            x = (torch.randn(shape, device=device, generator=gen) * 3).to(dtype)
            t = torch.randint(0, c, (n,), device=device, generator=gen)
            ne = n * c
            print(f"softmax {shape} {dtype_name}")
            record("softmax focalkit triton", dtype_name, ne, shape, ne * 2 * esize + n * 8,
                   lambda: softmax_focal_forward(x, t, weight=None, alpha=None, gamma=gamma, ignore_index=-100,
                                                 reduce_sum=True, compute_grad=True))
            record("softmax focalkit triton fwd only", dtype_name, ne, shape, ne * esize + n * 8,
                   lambda: softmax_focal_forward(x, t, weight=None, alpha=None, gamma=gamma, ignore_index=-100,
                                                 reduce_sum=True, compute_grad=False))
            xg = x.detach().clone().requires_grad_(True)
            record("softmax focal formula eager", dtype_name, ne, shape, ne * 2 * esize + n * 8,
                   autograd_case(softmax_formula, xg, t))
            if "softmax" in compiled:
                record("softmax focal formula compiled", dtype_name, ne, shape, ne * 2 * esize + n * 8,
                       autograd_case(compiled["softmax"], xg, t))
            record("softmax focalkit public API", dtype_name, ne, shape, ne * 2 * esize + n * 8,
                   autograd_case(focalkit_softmax_api, xg, t),
                   note="focalkit.softmax_focal_loss(reduction='sum').backward(): checks, dispatch, autograd")
            record("F.cross_entropy", dtype_name, ne, shape, ne * 2 * esize + n * 8,
                   autograd_case(lambda a, b: F.cross_entropy(a, b, reduction="sum"), xg, t),
                   note="plain CE, no focal term")
            x = xg = t = None
            empty_cache()

            # ---------------- optional segmentation layout (N, C, S): class stride S, no transpose
            if args.spatial > 0:
                c = args.softmax_classes if args.softmax_classes <= 256 else 21
                s = args.spatial
                n = max(1, numel // (c * s))
                shape = (n, c, s)
                x = (torch.randn(shape, device=device, generator=gen) * 3).to(dtype)
                t = torch.randint(0, c, (n, s), device=device, generator=gen)
                ne = n * c * s
                print(f"softmax segmentation {shape} {dtype_name}")
                record("softmax (N,C,S) focalkit triton", dtype_name, ne, shape, ne * 2 * esize + n * s * 8,
                       lambda: softmax_focal_forward(x, t, weight=None, alpha=None, gamma=gamma, ignore_index=-100,
                                                     reduce_sum=True, compute_grad=True))
                xg = x.detach().clone().requires_grad_(True)
                record("softmax (N,C,S) F.cross_entropy", dtype_name, ne, shape, ne * 2 * esize + n * s * 8,
                       autograd_case(lambda a, b: F.cross_entropy(a, b, reduction="sum"), xg, t))
                x = xg = t = None
                empty_cache()

    write_results()
    print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
