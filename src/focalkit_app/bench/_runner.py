"""Benchmark runner: timing (``torch.utils.benchmark``), memory, first-call time, quietness, JSON / Markdown / PNG.

Method (also in ``docs/benchmarks.md``):

- Quietness: before any timing and after the last one, :mod:`focalkit_app.bench.quiet` reads the load average and
  the per-element time of ``F.binary_cross_entropy_with_logits`` at 1e5 and 1e6 elements; a run on a busy machine
  is refused (exit status 3, nothing written), because other processes stretch torch's parallel regions to
  scheduler time slices and make small calls 10-300x slower.
- Timing: for one (op, dtype, size, mode) every available implementation is warmed up (twice; compiled ones are
  compiled there), then measured with ``torch.utils.benchmark.Timer.blocked_autorange`` for at least ``min_time``
  seconds at the thread count set by ``--threads`` (``Timer(num_threads=...)``). Reported: median, first and third
  quartile of the per-block times of one call. Modes: ``forward`` (loss with grad enabled), ``forward_no_grad``
  (under ``torch.no_grad()``, a validation loss), ``backward`` (``loss.backward(retain_graph=True)`` alone on a graph
  built untimed) and ``both`` (forward + backward).
- Memory (CPU): the bytes of tensors saved for backward, counted with ``torch.autograd.graph.saved_tensors_hooks``
  (unique storages, the logits and targets included when an implementation saves them), and the peak of extra
  tensor memory during one forward + backward, from the allocation / free events of ``torch.profiler``
  (``profile_memory=True``): the running sum of allocated bytes, from the start of the call, includes the gradient
  written to ``x.grad``. Both are reported in units of the logits' size.
- Allocator: by default (``--allocator steady``) glibc's trim and mmap thresholds are raised so that freed buffers
  stay mapped between repetitions, for every implementation alike (:mod:`focalkit_app.bench.allocator` says why:
  otherwise large buffers are page-faulted again in some repetitions and not others, a 2x bimodality at 2 threads).
- First call: a fresh ``python`` subprocess imports torch and focalkit (timed apart), builds the inputs and times the
  first forward + backward, which includes any lazy loading, kernel library loading or compilation. Inductor's
  on-disk caches are disabled there (``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1``) so that compiled implementations pay
  a cold compile, as on a first run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.utils.benchmark as benchmark

from . import allocator, quiet
from .allocator import ALLOCATOR_MODES, allocator_line
from ._impls import Impl, env_set, impls_for, make_inputs

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ("forward", "forward_no_grad", "backward", "both")
MODE_LABELS = {"forward": "forward", "forward_no_grad": "forward under no_grad", "backward": "backward",
               "both": "forward + backward"}
TARGET_NUMEL = {"sigmoid": 4_000_000, "softmax": 65536 * 64}


# ------------------------------------------------------------------------------------------------ metadata
def _git_commit() -> str:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / ".git").exists():
            try:
                head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=parent, capture_output=True, text=True,
                                      timeout=10).stdout.strip()
                dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=parent,
                                       capture_output=True, text=True, timeout=10).stdout.strip()
                return (head or "unknown") + ("+dirty" if dirty else "")
            except (OSError, subprocess.SubprocessError):
                return "unknown"
    return "not a git checkout"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def metadata() -> dict[str, Any]:
    import focalkit
    from focalkit.backends import cpu_kernel_isa

    versions = {"python": platform.python_version(), "torch": torch.__version__, "focalkit": focalkit.__version__}
    for name in ("numpy", "matplotlib", "torchvision", "kornia", "monai", "fvcore", "segmentation_models_pytorch", "triton"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # noqa: BLE001
            versions[name] = None
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": _git_commit(),
        "device": f"CPU: {_cpu_name()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        "cpu_kernel_build": cpu_kernel_isa(),
        "platform": platform.platform(),
        "versions": versions,
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


# ------------------------------------------------------------------------------------------------ timing
def _statement(fn: Callable, x: torch.Tensor, t: torch.Tensor, mode: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """(setup, step) of one timed call: ``forward`` (grad enabled, loss dropped), ``forward_no_grad`` (under
    ``torch.no_grad()``: a validation loss), ``backward`` (``loss.backward(retain_graph=True)`` on a graph built once
    in setup) or ``both`` (forward + backward)."""
    graph: dict[str, torch.Tensor] = {}

    def setup() -> None:
        if mode == "backward":
            graph["loss"] = fn(x, t)

    def step() -> None:
        if mode == "forward":
            fn(x, t)
        elif mode == "forward_no_grad":
            with torch.no_grad():
                fn(x, t)
        elif mode == "backward":
            graph["loss"].backward(retain_graph=True)
            x.grad = None
        else:
            fn(x, t).backward()
            x.grad = None

    return setup, step


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


def time_group(
    impls: list[tuple[Impl, Callable]], x: torch.Tensor, t: torch.Tensor, mode: str, *, min_reps: int,
    max_reps: int, min_time: float,
) -> dict[str, list[float] | str]:
    """Time several implementations on the same inputs with ``torch.utils.benchmark``; returns name -> per-block
    times of one call (``Measurement.times``) or an error string.

    Each implementation is warmed up twice (compiles, loads kernels), then ``Timer.blocked_autorange`` runs it for at
    least ``min_time`` seconds at the current torch thread count; ``min_reps`` / ``max_reps`` bound the number of
    blocks kept (the slowest implementations are repeated until ``min_reps`` blocks exist)."""
    out: dict[str, list[float] | str] = {}
    threads = torch.get_num_threads()
    for impl, fn in impls:
        try:
            with env_set(impl.env):
                setup, step = _statement(fn, x, t, mode)
                setup()
                step()
                step()
                timer = benchmark.Timer(stmt="step()", setup="setup()", globals={"step": step, "setup": setup},
                                        num_threads=threads)
                times: list[float] = []
                while len(times) < min_reps:
                    times += timer.blocked_autorange(min_run_time=min_time).times
                out[impl.name] = times[:max_reps]
        except Exception as exc:  # noqa: BLE001 - report, do not abort the run
            out[impl.name] = f"error: {type(exc).__name__}: {exc}"[:300]
    return out


# ------------------------------------------------------------------------------------------------ memory
def saved_bytes(fn: Callable, x: torch.Tensor, t: torch.Tensor) -> tuple[int, torch.Tensor]:
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = fn(x, t)
    return sum(storages.values()), loss


def peak_extra_bytes(fn: Callable, x: torch.Tensor, t: torch.Tensor) -> int:
    from torch.profiler import ProfilerActivity, profile

    x.grad = None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(x, t).backward()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        if e.device_type() != torch.device("cpu").type and str(e.device_type()).lower().find("cpu") < 0:
            continue
        current += e.nbytes()
        peak = max(peak, current)
    x.grad = None
    return peak


def measure_memory(impl: Impl, fn: Callable, op: str, numel: int, dtype: torch.dtype) -> dict[str, Any]:
    x, t = make_inputs(op, numel, dtype)
    x.requires_grad_(True)
    logits_bytes = x.numel() * x.element_size()
    targets_bytes = t.numel() * t.element_size()
    with env_set(impl.env):
        for _ in range(2):  # warm-up (compiles)
            fn(x, t).backward()
            x.grad = None
        saved, loss = saved_bytes(fn, x, t)
        del loss
        peak = peak_extra_bytes(fn, x, t)
    return {
        "op": op, "impl": impl.name, "dtype": str(dtype).replace("torch.", ""), "numel": x.numel(),
        "logits_bytes": logits_bytes, "targets_bytes": targets_bytes, "saved_bytes": saved,
        "saved_in_logits": saved / logits_bytes, "peak_extra_bytes": peak, "peak_extra_in_logits": peak / logits_bytes,
    }


# ------------------------------------------------------------------------------------------------ first call
_FIRST_CALL_SCRIPT = r"""
import json, os, sys, time
t0 = time.perf_counter()
import torch
import focalkit
from focalkit_app.bench import _impls
t_import = time.perf_counter() - t0
op, name, numel, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
impl = {i.name: i for i in _impls.impls_for(op)}[name]
for k, v in impl.env.items():
    os.environ[k] = v
fn = impl.make()
x, t = _impls.make_inputs(op, numel, getattr(torch, dtype))
x.requires_grad_(True)
t1 = time.perf_counter()
fn(x, t).backward()
t_first = time.perf_counter() - t1
x.grad = None
t2 = time.perf_counter()
fn(x, t).backward()
t_second = time.perf_counter() - t2
print(json.dumps({"import_s": t_import, "first_call_s": t_first, "second_call_s": t_second}))
"""


def first_call(impl: Impl, op: str, numel: int, dtype: torch.dtype, timeout: float = 300) -> dict[str, Any]:
    cmd = [sys.executable, "-c", _FIRST_CALL_SCRIPT, op, impl.name, str(numel), str(dtype).replace("torch.", "")]
    rec: dict[str, Any] = {"op": op, "impl": impl.name, "numel": numel, "dtype": str(dtype).replace("torch.", "")}
    # cold compile: without this, inductor's on-disk caches from earlier runs make compiled first calls look cheap
    env = dict(os.environ, TORCHINDUCTOR_FORCE_DISABLE_CACHES="1")
    rec["inductor_caches"] = "disabled"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not line:
            rec["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        else:
            rec.update(json.loads(line[-1]))
    except subprocess.TimeoutExpired:
        rec["error"] = f"timed out after {timeout} s"
    return rec


# ------------------------------------------------------------------------------------------------ plan and run
def _numels(op: str, args: argparse.Namespace) -> list[int]:
    if args.sizes:
        return [int(float(s)) for s in args.sizes]
    if args.quick:
        return [10_000, 1_000_000]
    return [10_000, 100_000, 1_000_000, TARGET_NUMEL[op], 10_000_000, 100_000_000]


def _fits(impl: Impl, numel: int, args: argparse.Namespace) -> bool:
    budget = args.memory_budget_gb * 2**30
    if impl.max_numel is not None and numel > impl.max_numel and not args.sizes:
        return False
    return impl.bytes_per_element * numel <= budget


def run_op(op: str, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    all_impls = impls_for(op)
    if args.impls:
        wanted = set(args.impls)
        all_impls = [i for i in all_impls if i.name in wanted or i.kind == "floor" or i.name == "focalkit[cpu]"]
    built: list[tuple[Impl, Callable]] = []
    skipped: dict[str, str] = {}
    for impl in all_impls:
        if impl.compiled and args.no_compile:
            skipped[impl.name] = "compiled implementations disabled (--no-compile / --quick)"
            continue
        try:
            built.append((impl, impl.make()))
        except ImportError as exc:
            skipped[impl.name] = f"not installed ({exc})"
    target = TARGET_NUMEL[op]
    numels = _numels(op, args)
    plan: list[tuple[str, int]] = [("fp32", n) for n in numels]
    if not args.quick:
        plan += [(d, target) for d in args.dtypes if d != "fp32"]
    modes = ["both"] if args.quick else list(args.modes)
    timings: list[dict[str, Any]] = []
    for dname, numel in plan:
        dtype = DTYPES[dname]
        x, t = make_inputs(op, numel, dtype)
        x.requires_grad_(True)
        group = []
        for impl, fn in built:
            if not _fits(impl, numel, args):
                continue
            if impl.compiled and not (args.compile_all_sizes or numel in (1_000_000, target)):
                continue
            group.append((impl, fn))
        for mode in modes:
            res = time_group(group, x, t, mode, min_reps=args.min_reps, max_reps=args.max_reps, min_time=args.min_time)
            for name, value in res.items():
                rec: dict[str, Any] = {"op": op, "impl": name, "dtype": dname, "numel": x.numel(),
                                       "shape": list(x.shape), "mode": mode}
                if isinstance(value, str):
                    rec["error"] = value
                else:
                    q1, med, q3 = _quantiles(value)
                    rec.update(reps=len(value), median_ms=med * 1e3, q1_ms=q1 * 1e3, q3_ms=q3 * 1e3,
                               ns_per_element=med * 1e9 / x.numel())
                timings.append(rec)
            meds = {r["impl"]: r.get("median_ms") for r in timings[-len(res):]}
            log(f"{op} {dname} n={x.numel():.0e} {mode}: " + ", ".join(
                f"{k}={v:.3g}ms" if v is not None else f"{k}=error" for k, v in meds.items()))
        del x, t
    memory = []
    if not args.no_memory:
        mem_numel = 1_000_000 if args.quick else target
        for impl, fn in built:
            if not _fits(impl, mem_numel, args):
                continue
            try:
                memory.append(measure_memory(impl, fn, op, mem_numel, torch.float32))
            except Exception as exc:  # noqa: BLE001
                memory.append({"op": op, "impl": impl.name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        log(f"{op} memory: " + ", ".join(
            f"{m['impl']}: saved {m.get('saved_in_logits', float('nan')):.2f}, peak {m.get('peak_extra_in_logits', float('nan')):.2f}"
            for m in memory))
    first = []
    if not args.no_first_call:
        names = [i.name for i, _ in built]
        if args.quick:
            names = [n for n in names if n == "focalkit[cpu]"]
        for impl, _ in built:
            if impl.name in names:
                first.append(first_call(impl, op, target if not args.quick else 1_000_000, torch.float32))
                log(f"{op} first call {impl.name}: {first[-1]}")
    return {"timings": timings, "memory": memory, "first_call": first, "skipped": skipped}


def _lookup(timings: list[dict], impl: str, dtype: str, numel: int, mode: str) -> float | None:
    for r in timings:
        if r["impl"] == impl and r["dtype"] == dtype and r["numel"] == numel and r["mode"] == mode:
            return r.get("median_ms")
    return None


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance targets, computed from one run's numbers (None where a number is missing)."""
    out = []
    sig = results.get("sigmoid")
    if sig:
        tim = sig["timings"]
        n = next((r["numel"] for r in tim if abs(r["numel"] - TARGET_NUMEL["sigmoid"]) < 100), None)
        fk = _lookup(tim, "focalkit[cpu]", "fp32", n, "both") if n else None
        for other, goal in (("torchvision formula (eager)", 8.0), ("torchvision formula (compiled)", 2.0)):
            o = _lookup(tim, other, "fp32", n, "both") if n else None
            ratio = (o / fk) if (o and fk) else None
            out.append({"target": f"sigmoid fp32 4M sum fwd+bwd: {other} / focalkit[cpu] >= {goal}",
                        "value": ratio, "goal": goal, "met": (ratio is not None and ratio >= goal),
                        "detail": f"focalkit[cpu] {fk} ms, {other} {o} ms"})
        small = next((r["numel"] for r in tim if abs(r["numel"] - 10_000) < 100), None)
        fk_small = _lookup(tim, "focalkit[cpu]", "fp32", small, "both") if small else None
        bce = _lookup(tim, "F.binary_cross_entropy_with_logits (floor)", "fp32", small, "both") if small else None
        ratio = (fk_small / bce) if (fk_small and bce) else None
        out.append({"target": "sigmoid fp32 1e4 elements fwd+bwd: focalkit[cpu] / F.binary_cross_entropy_with_logits "
                              "<= 1.5", "value": ratio, "goal": 1.5, "met": ratio is not None and ratio <= 1.5,
                    "detail": f"focalkit[cpu] {fk_small} ms, BCE {bce} ms"})
        fc = next((f for f in sig["first_call"] if f["impl"] == "focalkit[cpu]"), None)
        v = fc.get("first_call_s") if fc else None
        out.append({"target": "sigmoid first call (fresh process, import excluded) < 2 s", "value": v, "goal": 2.0,
                    "met": v is not None and v < 2.0, "detail": json.dumps(fc)})
    sm = results.get("softmax")
    if sm:
        tim = sm["timings"]
        n = TARGET_NUMEL["softmax"]
        for mode, label, goal in (("both", "fwd+bwd", 1.1), ("forward_no_grad", "forward under no_grad", 1.2)):
            fk = _lookup(tim, "focalkit[cpu]", "fp32", n, mode)
            ce = _lookup(tim, "F.cross_entropy (floor)", "fp32", n, mode)
            ratio = (fk / ce) if (fk and ce) else None
            out.append({"target": f"softmax (65536, 64) fp32 {label}: focalkit[cpu] / F.cross_entropy <= {goal}",
                        "value": ratio, "goal": goal, "met": ratio is not None and ratio <= goal,
                        "detail": f"focalkit[cpu] {fk} ms, F.cross_entropy {ce} ms"})
    for op in ("sigmoid", "softmax"):
        res = results.get(op)
        if not res:
            continue
        m = next((m for m in res["memory"] if m.get("impl") == "focalkit[cpu]" and "error" not in m), None)
        if m:
            budget = m["logits_bytes"] + m["targets_bytes"]
            out.append({"target": f"{op}: tensors saved for backward <= logits + targets", "value": m["saved_bytes"],
                        "goal": budget, "met": m["saved_bytes"] <= budget,
                        "detail": f"{m['saved_in_logits']:.3f} logits-sized"})
            slack = 1.01 + 262144 / m["logits_bytes"]
            out.append({"target": f"{op}: peak extra memory during fwd+bwd <= one logits-sized buffer",
                        "value": m["peak_extra_in_logits"], "goal": 1.0, "met": m["peak_extra_in_logits"] <= slack,
                        "detail": f"{m['peak_extra_bytes']} bytes (includes the gradient written to x.grad; "
                                  f"allowance 1 % + 256 KiB for block partials and per-thread scratch)"})
    return out


# ------------------------------------------------------------------------------------------------ reports
def write_markdown(report: dict[str, Any], path: Path) -> None:
    meta = report["metadata"]
    lines = ["# focalkit CPU benchmark", "",
             f"- date (UTC): {meta['date_utc']}", f"- git commit: {meta['git_commit']}",
             f"- device: {meta['device']}", f"- CPU kernel build: {meta['cpu_kernel_build']}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v),
             f"- load average at start / end: {meta.get('load_average_start')} / {meta.get('load_average_end')}",
             f"- allocator: {allocator_line(meta)}",
             "- quietness: " + ("quiet" if meta.get("quiet_verdict") == "quiet" else
                                "**BUSY MACHINE, numbers not trustworthy**: " + "; ".join(meta.get("quiet_verdict", []))),
             f"- command: `{meta.get('command', '')}`", ""]
    lines += ["## Performance targets", "", "| target | measured | goal | met | detail |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        v = t["value"]
        vs = f"{v:.3g}" if isinstance(v, float) else str(v)
        verdict = "not measured" if v is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {vs} | {t['goal']} | {verdict} | {t['detail']} |")
    for op, res in report["results"].items():
        tim = res["timings"]
        lines += ["", f"## {op}: median ms per call [IQR], fp32, forward + backward", ""]
        numels = sorted({r["numel"] for r in tim if r["dtype"] == "fp32"})
        impls = list(dict.fromkeys(r["impl"] for r in tim))
        lines.append("| implementation | " + " | ".join(f"{n:.2g}" for n in numels) + " |")
        lines.append("|---|" + "---|" * len(numels))
        for name in impls:
            cells = []
            for n in numels:
                r = next((r for r in tim if r["impl"] == name and r["numel"] == n and r["dtype"] == "fp32"
                          and r["mode"] == "both"), None)
                if r is None:
                    cells.append("-")
                elif "error" in r:
                    cells.append("error")
                else:
                    cells.append(f"{r['median_ms']:.3g} [{r['q1_ms']:.3g}, {r['q3_ms']:.3g}]")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        tn = max((r["numel"] for r in tim if r["dtype"] != "fp32"), default=None)
        if tn:
            lines += ["", f"## {op}: all modes and dtypes at {tn:.3g} elements (median ms [IQR])", "",
                      "| implementation | dtype | " + " | ".join(MODE_LABELS[m] for m in MODES) + " |",
                      "|---|---|" + "---|" * len(MODES)]
            for d in ("fp32", "bf16", "fp16"):
                for name in impls:
                    cells = []
                    for mode in MODES:
                        r = next((r for r in tim if r["impl"] == name and r["numel"] == tn and r["dtype"] == d
                                  and r["mode"] == mode), None)
                        cells.append("-" if r is None else ("error" if "error" in r else
                                     f"{r['median_ms']:.3g} [{r['q1_ms']:.3g}, {r['q3_ms']:.3g}]"))
                    if any(c != "-" for c in cells):
                        lines.append(f"| {name} | {d} | " + " | ".join(cells) + " |")
        if res["memory"]:
            lines += ["", f"## {op}: memory (fp32, in logits-sized units)", "",
                      "| implementation | elements | saved for backward | peak extra during fwd+bwd |", "|---|---|---|---|"]
            for m in res["memory"]:
                if "error" in m:
                    lines.append(f"| {m['impl']} | - | error | {m['error']} |")
                else:
                    lines.append(f"| {m['impl']} | {m['numel']:.3g} | {m['saved_in_logits']:.2f} | "
                                 f"{m['peak_extra_in_logits']:.2f} |")
        if res["first_call"]:
            lines += ["", f"## {op}: first call in a fresh process (fp32)", "",
                      "| implementation | import torch + focalkit (s) | first fwd+bwd (s) | second (s) |", "|---|---|---|---|"]
            for f in res["first_call"]:
                if "error" in f:
                    lines.append(f"| {f['impl']} | - | error: {f['error']} | - |")
                else:
                    lines.append(f"| {f['impl']} | {f['import_s']:.2f} | {f['first_call_s']:.3f} | {f['second_call_s']:.3f} |")
        if res["skipped"]:
            lines += ["", f"Skipped ({op}): " + "; ".join(f"{k}: {v}" for k, v in res["skipped"].items())]
        errs = [r for r in tim if "error" in r]
        if errs:
            lines += ["", f"Errors ({op}): " + "; ".join(f"{r['impl']} {r['dtype']} {r['numel']}: {r['error']}"
                                                       for r in errs[:10])]
    path.write_text("\n".join(lines) + "\n")


def write_plot(report: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"matplotlib not available: {exc}"
    ops = list(report["results"])
    fig, axes = plt.subplots(1, len(ops), figsize=(7 * len(ops), 5), squeeze=False)
    for ax, op in zip(axes[0], ops):
        tim = report["results"][op]["timings"]
        for name in dict.fromkeys(r["impl"] for r in tim):
            pts = sorted((r["numel"], r["ns_per_element"]) for r in tim if r["impl"] == name and r["dtype"] == "fp32"
                         and r["mode"] == "both" and "error" not in r)
            if pts:
                style = "-o" if name.startswith("focalkit") else "--s"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=name, markersize=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("logits (elements)")
        ax.set_ylabel("ns per element, forward + backward (median)")
        ax.set_title(f"{op} focal loss, fp32")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    meta = report["metadata"]
    fig.suptitle(f"{meta['device']} | torch {meta['versions']['torch']} | {meta['date_utc']} | {meta['git_commit'][:12]}",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# ------------------------------------------------------------------------------------------------ CLI
def _size(text: str) -> int:
    """argparse ``type=`` of ``--sizes``: a whole number of logits >= 1, written as an integer or like 1e6."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise argparse.ArgumentTypeError(f"expected whole numbers of logits >= 1 (e.g. 10000 or 1e6), got {text!r}")
    return int(value)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``focalkit bench`` (also used by ``benchmarks/bench_*.py``)."""
    from ..cli.checks import float_type, int_type

    parser.add_argument("--op", choices=("sigmoid", "softmax", "all", "family"), default="all",
                        help="which loss; 'family': the detection, classification and segmentation losses against "
                             "their peers' formulas (torch.utils.benchmark, 1 and 2 threads, refuses a busy machine)")
    parser.add_argument("--quick", action="store_true", help="smoke run (< 1 min): 2 sizes, fp32, fwd+bwd, no compile")
    parser.add_argument("--sizes", nargs="+", type=_size,
                        help="numbers of logits, e.g. 1e4 1e6 (default 1e4 .. 1e8)")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16", "fp16"], choices=list(DTYPES),
                        help="dtypes; non-fp32 ones run at the target size only")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--impls", nargs="+", help="restrict to these implementation names (+ floors)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile implementations")
    parser.add_argument("--compile-all-sizes", action="store_true",
                        help="compile at every size (default: 1e6 and the target size only; each compile takes ~10-25 s)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--no-first-call", action="store_true", help="skip the fresh-process first-call timing")
    parser.add_argument("--min-reps", type=int_type(1), default=5, help="fewest timed rounds per group (>= 1)")
    parser.add_argument("--max-reps", type=int_type(1), default=40, help="most timed rounds per group (>= --min-reps)")
    parser.add_argument("--min-time", type=float_type(0.0), default=1.0,
                        help="seconds of the slowest implementation per group (>= 0)")
    parser.add_argument("--memory-budget-gb", type=float_type(0.0, low_open=True), default=12.0,
                        help="skip sizes whose estimated peak exceeds it (> 0)")
    parser.add_argument("--out", default="benchmarks/results/cpu", help="output folder (JSON, Markdown, PNG)")
    parser.add_argument("--name", default=None,
                        help="file name stem of the outputs, no folder part (default: bench_<op>, e.g. bench_family)")
    parser.add_argument("--threads", type=int_type(1), default=None,
                        help="torch intra-op threads for the whole run (default: torch's current setting)")
    parser.add_argument("--allocator", choices=ALLOCATOR_MODES, default="steady",
                        help="'steady' (default): freed memory stays mapped between repetitions (glibc mallopt), as "
                             "in a training loop's steady state; 'system': the C library's defaults, under which "
                             "large buffers are returned to the system and page-faulted again (see docs/benchmarks.md)")
    parser.add_argument("--allow-busy", action="store_true",
                        help="write the results even when the quietness check fails (they are marked as such)")


def check_bench_args(args: argparse.Namespace) -> Path:
    """Check the options together and the output folder (created, written and removed again) before any timing;
    returns the output folder.

    Raises:
      focalkit.InvalidArgumentError: a value out of range (also for a Namespace built without the parser), an
        unknown ``--impls`` name, a ``--name`` with a folder part, sizes whose inputs exceed ``--memory-budget-gb``,
        an output folder that cannot be created or written.
    """
    from focalkit.errors import argument_error

    from ..cli.checks import check_out_dir

    ops = {"all": ["sigmoid", "softmax"], "family": []}.get(args.op, [args.op])
    sizes = []
    for s in args.sizes or []:
        try:
            sizes.append(_size(str(s)))
        except argparse.ArgumentTypeError:
            raise argument_error("--sizes", "whole numbers of logits >= 1 (e.g. 10000 or 1e6)", repr(s)) from None
    if not args.quick:
        if not args.min_reps >= 1:
            raise argument_error("--min-reps", "an integer >= 1", args.min_reps)
        if not args.max_reps >= args.min_reps:
            raise argument_error("--max-reps", f"an integer >= --min-reps ({args.min_reps})", args.max_reps)
        if not (math.isfinite(args.min_time) and args.min_time >= 0):
            raise argument_error("--min-time", "a finite number >= 0", args.min_time)
    if not (math.isfinite(args.memory_budget_gb) and args.memory_budget_gb > 0):
        raise argument_error("--memory-budget-gb", "a finite number > 0", args.memory_budget_gb)
    budget = args.memory_budget_gb * 2**30
    input_bytes = 8  # fp32 logits + targets per logit, allocated whatever the implementations
    too_big = [s for s in sizes if s * input_bytes > budget]
    if too_big:
        raise argument_error("--sizes", f"sizes whose inputs ({input_bytes} bytes per logit) fit in --memory-budget-gb "
                             f"{args.memory_budget_gb:g} (at most {int(budget // input_bytes):.3g} logits)", too_big)
    if args.impls and args.op == "family":
        raise argument_error("--impls", "no restriction with --op family (it times every implementation)", args.impls)
    if args.impls:
        known = list(dict.fromkeys(i.name for op in ops for i in impls_for(op)))
        unknown = [n for n in args.impls if n not in known]
        if unknown:
            raise argument_error("--impls", f"names of {' / '.join(ops)} implementations ({', '.join(map(repr, known))})",
                                 unknown)
    if args.name is None:
        args.name = f"bench_{args.op}"
    name = str(args.name)
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name or os.sep in name or "\0" in name:
        raise argument_error("--name", "a file name stem without a folder part", repr(name))
    return check_out_dir(args.out, option="--out")


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args`` and write ``<out>/<name>.json|.md|.png``; returns an exit code.

    The options and the output folder are checked first (:func:`check_bench_args`)."""
    if args.quick:
        args.no_compile = True
        args.min_reps, args.max_reps, args.min_time = 3, 10, 0.2
    ops = ["sigmoid", "softmax"] if args.op == "all" else [args.op]
    out = check_bench_args(args)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    meta = metadata()
    meta["command"] = " ".join([Path(sys.argv[0]).name] + sys.argv[1:])
    meta["allocator"] = allocator.configure(getattr(args, "allocator", "steady"))
    log(f"{meta['device']}; torch {torch.__version__}; kernel build {meta['cpu_kernel_build']}; allocator "
        f"{meta['allocator']['mode']} ({meta['allocator']['detail']})")
    if args.op == "family":
        from .family import run_family

        return run_family(args, out, meta, log)
    before = quiet.machine_state(threads=torch.get_num_threads())
    log(f"quietness before: {before}")
    results = {op: run_op(op, args, log) for op in ops}
    after = quiet.machine_state(threads=torch.get_num_threads())
    log(f"quietness after: {after}")
    reasons = quiet.verdict(before, after)
    meta.update(quiet_before=before, quiet_after=after, quiet_verdict=reasons or "quiet")
    if reasons and not getattr(args, "allow_busy", False):
        log("REFUSED: the machine was busy during this run, nothing was written: " + "; ".join(reasons))
        return 3
    meta["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    meta["wall_s"] = time.perf_counter() - t0
    report = {"metadata": meta, "method": __doc__, "results": results}
    report["targets"] = evaluate_targets(results)
    stem = out / args.name
    Path(f"{stem}.json").write_text(json.dumps(report, indent=1, default=str))
    write_markdown(report, Path(f"{stem}.md"))
    plot_error = write_plot(report, Path(f"{stem}.png"))
    log(f"wrote {stem}.json, {stem}.md" + (f" (no PNG: {plot_error})" if plot_error else f", {stem}.png"))
    for t in report["targets"]:
        verdict = "not measured in this run" if t["value"] is None else ("met" if t["met"] else "NOT met")
        log(f"target: {t['target']}: {t['value']} -> {verdict}")
    return 0


def main(argv: list[str] | None = None, op: str | None = None) -> int:
    """Entry point of ``benchmarks/bench_*.py``: bad options give one line on stderr and exit status 2."""
    from focalkit.errors import FocalKitError

    from ..cli.checks import OneLineParser, one_line

    parser = OneLineParser(description="focalkit benchmark")
    add_bench_arguments(parser)
    if op is not None:
        parser.set_defaults(op=op, name=f"bench_{op}")
    try:
        return run_bench(parser.parse_args(argv))
    except FocalKitError as error:
        print(f"{parser.prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
