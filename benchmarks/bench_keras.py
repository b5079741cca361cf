"""Benchmark of focalkit.keras against Keras's built-in focal losses, forward + backward, on each Keras back-end.

Usage: python benchmarks/bench_keras.py [--binary-shape 524288 8] [--categorical-shape 65536 64] [--threads 1]
       [--min-time 1.0] [--backends torch jax tensorflow] [--out DIR] [--name NAME] [--allow-busy]
Writes DIR/NAME.json and DIR/NAME.md (defaults: benchmarks/results/cpu, bench_keras).

Method:

- Each Keras back-end runs in its own subprocess (``KERAS_BACKEND`` set before Keras is imported), which times one
  forward + backward (the loss with Keras's default ``"sum_over_batch_size"`` reduction and its gradient with
  respect to the float32 logits) in the back-end's natural way:
  PyTorch: ``torch.utils.benchmark.Timer.blocked_autorange`` of ``loss(y, x).backward()``;
  JAX: ``jax.jit(jax.value_and_grad(...))`` called with ``block_until_ready``;
  TensorFlow: a ``tf.function`` computing the loss under a ``GradientTape`` and its gradient.
  JAX and TensorFlow are timed in blocks of calls for at least ``--min-time`` seconds (after two warm-up calls that
  compile); reported is the median time of one call over the blocks, with the first and third quartiles.
- Compared: ``BinaryFocalLoss(gamma=2, alpha=0.25, from_logits=True)`` against
  ``keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.25, gamma=2, from_logits=True)``, and
  ``CategoricalFocalLoss(gamma=2, alpha=0.25, from_logits=True)`` against
  ``keras.losses.CategoricalFocalCrossentropy(alpha=0.25, gamma=2, from_logits=True)`` (the same definitions), each
  focalkit loss with ``gradient="closed_form"`` (the default) and ``gradient="autodiff"``, plus
  ``SparseCategoricalFocalLoss`` on the categorical inputs (Keras has no sparse focal loss).
- Saved residuals (PyTorch back-end): the bytes of the tensors autograd saves for the backward pass, counted with
  ``torch.autograd.graph.saved_tensors_hooks`` as unique storages, in units of the logits' size.
- Allocator: ``--allocator steady`` (the default, as ``focalkit bench``) keeps freed memory mapped between
  repetitions in every worker (:mod:`focalkit_app.bench.allocator`): without it the closed forms' eager torch
  operations, each allocating a logits-sized tensor, flipped between a fast and a slow mode about 2x apart from one
  run to the next (same code; ``--allocator system`` shows it).
- Quietness: :mod:`focalkit_app.bench.quiet` measures the machine before and after; on a busy machine the run is
  refused (exit status 3, nothing written) unless ``--allow-busy``, which writes the results marked as busy.
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
from typing import Any, Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results" / "cpu"
BACKENDS = ("torch", "jax", "tensorflow")
GAMMA, ALPHA = 2.0, 0.25


# ------------------------------------------------------------------------------------------------ worker side
def _losses(keras: Any, fk: Any) -> dict[str, list[tuple[str, Any]]]:
    """{case: [(implementation, loss object)]}; the labels' kind follows from the case."""
    return {
        "binary": [
            ("focalkit closed_form", fk.BinaryFocalLoss(gamma=GAMMA, alpha=ALPHA, from_logits=True)),
            ("focalkit autodiff", fk.BinaryFocalLoss(gamma=GAMMA, alpha=ALPHA, from_logits=True, gradient="autodiff")),
            ("keras built-in", keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=ALPHA,
                                                                   gamma=GAMMA, from_logits=True)),
        ],
        "categorical": [
            ("focalkit closed_form", fk.CategoricalFocalLoss(gamma=GAMMA, alpha=ALPHA, from_logits=True)),
            ("focalkit autodiff", fk.CategoricalFocalLoss(gamma=GAMMA, alpha=ALPHA, from_logits=True,
                                                          gradient="autodiff")),
            ("keras built-in", keras.losses.CategoricalFocalCrossentropy(alpha=ALPHA, gamma=GAMMA, from_logits=True)),
        ],
        "sparse_categorical": [
            ("focalkit closed_form", fk.SparseCategoricalFocalLoss(gamma=GAMMA, alpha=ALPHA, from_logits=True)),
            ("focalkit autodiff", fk.SparseCategoricalFocalLoss(gamma=GAMMA, alpha=ALPHA, from_logits=True,
                                                                gradient="autodiff")),
        ],
    }


def _inputs(case: str, shape: tuple[int, int]) -> tuple[Any, Any]:
    """NumPy float32 logits of ``shape`` and labels: binary (positives 10%), one-hot or class indices."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 2.0, shape).astype(np.float32)
    if case == "binary":
        return x, (rng.uniform(size=shape) < 0.1).astype(np.float32)
    t = rng.integers(0, shape[1], shape[0])
    return x, (t if case == "sparse_categorical" else np.eye(shape[1], dtype=np.float32)[t])


def _blocked_median(call: Callable[[], Any], min_time: float) -> dict[str, float]:
    """Median / quartiles of the per-call time over blocks of calls (block size from a first timed call)."""
    start = time.perf_counter()
    call()
    once = max(time.perf_counter() - start, 1e-6)
    per_block = max(1, int(0.1 / once))
    times = []
    begin = time.perf_counter()
    while time.perf_counter() - begin < min_time or len(times) < 5:
        start = time.perf_counter()
        for _ in range(per_block):
            call()
        times.append((time.perf_counter() - start) / per_block)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_s": statistics.median(times), "q1_s": q[0], "q3_s": q[2], "blocks": len(times)}


def _time_torch(loss_fn: Any, x_np: Any, y_np: Any, threads: int, min_time: float) -> dict[str, float]:
    import torch
    import torch.utils.benchmark as benchmark

    x = torch.from_numpy(x_np).requires_grad_(True)
    y = torch.from_numpy(y_np)

    def step() -> None:
        loss_fn(y, x).backward()
        x.grad = None

    step()
    step()
    m = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=threads).blocked_autorange(
        min_run_time=min_time)
    return {"median_s": m.median, "q1_s": m._p25, "q3_s": m._p75, "blocks": len(m.times)}


def _saved_torch(loss_fn: Any, x_np: Any, y_np: Any) -> float:
    import torch

    x = torch.from_numpy(x_np).requires_grad_(True)
    y = torch.from_numpy(y_np)
    storages: dict[int, int] = {}

    def pack(tensor: Any) -> Any:
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss_fn(y, x)
    return sum(storages.values()) / (x.numel() * x.element_size())


def _time_jax(loss_fn: Any, x_np: Any, y_np: Any, min_time: float) -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    y = jnp.asarray(y_np)
    step = jax.jit(jax.value_and_grad(lambda z: loss_fn(y, z)))
    x = jnp.asarray(x_np)
    call = lambda: jax.block_until_ready(step(x))  # noqa: E731
    call()
    call()
    return _blocked_median(call, min_time)


def _time_tensorflow(loss_fn: Any, x_np: Any, y_np: Any, min_time: float) -> dict[str, float]:
    import tensorflow as tf

    x, y = tf.constant(x_np), tf.constant(y_np)

    @tf.function(autograph=False)
    def step(z: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = loss_fn(y, z)
        return loss, tape.gradient(loss, z)

    call = lambda: step(x)[0].numpy()  # noqa: E731 - .numpy() waits for the result
    call()
    call()
    return _blocked_median(call, min_time)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Time every implementation on this process's Keras back-end (``KERAS_BACKEND``); the JSON-ready rows."""
    from focalkit_app.bench import allocator

    allocation = allocator.configure(args.allocator)  # before any tensor of the run is allocated
    import keras

    import focalkit.keras as fk

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    shapes = {"binary": tuple(args.binary_shape), "categorical": tuple(args.categorical_shape),
              "sparse_categorical": tuple(args.categorical_shape)}
    rows = []
    for case, impls in _losses(keras, fk).items():
        x, y = _inputs(case, shapes[case])
        for name, loss_fn in impls:
            if backend == "torch":
                timing = _time_torch(loss_fn, x, y, args.threads, args.min_time)
                timing["saved_logits_sizes"] = _saved_torch(loss_fn, x, y)
            elif backend == "jax":
                timing = _time_jax(loss_fn, x, y, args.min_time)
            else:
                timing = _time_tensorflow(loss_fn, x, y, args.min_time)
            rows.append({"backend": backend, "case": case, "shape": list(shapes[case]), "impl": name, **timing})
            print(f"{backend:10s} {case:18s} {name:22s} {timing['median_s'] * 1e3:9.2f} ms", file=sys.stderr)
    return {"backend": backend, "keras": keras.__version__, "allocator": allocation, "rows": rows}


# ------------------------------------------------------------------------------------------------ parent side
def _run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    if backend == "jax" and args.threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                            "intra_op_parallelism_threads=1").strip()
    command = [sys.executable, __file__, "--worker", "--threads", str(args.threads), "--min-time", str(args.min_time),
               "--allocator", args.allocator,
               "--binary-shape", *map(str, args.binary_shape), "--categorical-shape", *map(str, args.categorical_shape)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    sys.stderr.write(proc.stderr[-4000:] if proc.returncode else "".join(
        line + "\n" for line in proc.stderr.splitlines() if " ms" in line))
    if proc.returncode != 0:
        return {"backend": backend, "error": f"exit code {proc.returncode}", "rows": []}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# focalkit.keras vs Keras's built-in focal losses (CPU, forward + backward)",
        "",
        f"Generated by `benchmarks/bench_keras.py` on {doc['meta']['date']} ({doc['meta']['platform']}, "
        f"{doc['meta']['threads']} thread(s), Keras {doc['meta'].get('keras', '?')}). Median time of one forward + "
        "backward (first-third quartile); `vs Keras` is the focalkit time over the built-in's on the same back-end; "
        "saved: tensors kept for the backward pass (PyTorch back-end), in logits' sizes.",
        "",
        f"Allocator: {doc['meta'].get('allocator', 'not recorded (the C library defaults)')}.",
        "",
    ]
    if doc["quiet"]["reasons"]:
        lines += ["**Busy machine: these numbers are not publishable.** " + "; ".join(doc["quiet"]["reasons"]), ""]
    lines += ["| back-end | case | shape | implementation | median ms | quartiles ms | vs Keras | saved |",
              "| --- | --- | --- | --- | ---: | --- | ---: | ---: |"]
    for result in doc["backends"]:
        if result.get("error"):
            lines.append(f"| {result['backend']} | failed: {result['error']} | | | | | | |")
            continue
        keras_ms = {r["case"]: r["median_s"] for r in result["rows"] if r["impl"] == "keras built-in"}
        keras_ms["sparse_categorical"] = keras_ms.get("categorical")
        for r in result["rows"]:
            base = keras_ms.get(r["case"])
            ratio = "-" if base is None or r["impl"] == "keras built-in" else f"{r['median_s'] / base:.2f}x"
            saved = f"{r['saved_logits_sizes']:.2f}" if "saved_logits_sizes" in r else "-"
            lines.append(f"| {r['backend']} | {r['case']} | {r['shape'][0]} x {r['shape'][1]} | {r['impl']} | "
                         f"{r['median_s'] * 1e3:.2f} | {r['q1_s'] * 1e3:.2f}-{r['q3_s'] * 1e3:.2f} | {ratio} | "
                         f"{saved} |")
    lines += ["", "The sparse case is compared with the built-in categorical loss on the same logits (one-hot labels)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary-shape", type=int, nargs=2, default=[524288, 8])
    parser.add_argument("--categorical-shape", type=int, nargs=2, default=[65536, 64])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default="bench_keras", help="base name of the result files")
    parser.add_argument("--allocator", choices=("steady", "system"), default="steady",
                        help="steady: freed memory stays mapped between repetitions (focalkit_app.bench.allocator)")
    parser.add_argument("--allow-busy", action="store_true", help="write the results even on a busy machine")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per back-end subprocess")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    from focalkit_app.bench import quiet

    before = quiet.machine_state(threads=args.threads)
    results = [_run_backend(backend, args) for backend in args.backends]
    after = quiet.machine_state(threads=args.threads)
    reasons = quiet.verdict(before, after)
    if reasons and not args.allow_busy:
        print("refused: the machine was busy (use --allow-busy to write anyway):\n  " + "\n  ".join(reasons),
              file=sys.stderr)
        return 3
    doc = {
        "meta": {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 "platform": platform.platform(), "python": platform.python_version(), "threads": args.threads,
                 "min_time_s": args.min_time, "allocator": args.allocator,
                 "keras": next((r.get("keras") for r in results if r.get("keras")), None)},
        "quiet": {"before": before, "after": after, "reasons": reasons},
        "backends": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(doc, indent=1))
    (args.out / f"{args.name}.md").write_text(_markdown(doc))
    print(_markdown(doc))
    return 0 if all(not r.get("error") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
