"""Is the machine quiet enough to publish timings? A check run before and after a benchmark.

On a machine with few cores, any other process stretches each of torch's parallel regions to a scheduler time slice,
and small calls become 10-300x slower than on a quiet machine. This module measures the machine's state twice (before
and after the timings) and refuses the run when it was busy:

- the 1-minute load average before the run (other processes ready to run), at most :data:`MAX_LOAD_BEFORE`;
- the *cross-entropy floor*: the per-element time of ``F.binary_cross_entropy_with_logits`` forward + backward at
  1e5 and 1e6 elements (``torch.utils.benchmark``, medians). On a quiet machine the small size costs about as much
  per element as the large one; a busy machine inflates the small size most. Refused when the small size's
  per-element time exceeds :data:`MAX_SMALL_OVER_LARGE` times the large one's, or when a size's floor changed by
  more than :data:`MAX_DRIFT` between the checks before and after the run.

Example:
    >>> state = machine_state(threads=1)            # doctest: +SKIP
    >>> verdict(state, machine_state(threads=1))    # doctest: +SKIP
    []
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.benchmark as benchmark

__all__ = ["FLOOR_SIZES", "MAX_DRIFT", "MAX_LOAD_BEFORE", "MAX_SMALL_OVER_LARGE", "machine_state", "verdict"]

FLOOR_SIZES = (100_000, 1_000_000)
MAX_LOAD_BEFORE = 1.5
MAX_SMALL_OVER_LARGE = 3.0
MAX_DRIFT = 1.5


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _floor_ns_per_element(numel: int, threads: int, min_run_time: float) -> float:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(numel, generator=g).requires_grad_(True)
    t = (torch.rand(numel, generator=g) < 0.5).float()

    def step() -> None:
        F.binary_cross_entropy_with_logits(x, t, reduction="sum").backward()
        x.grad = None

    timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median / numel * 1e9


def machine_state(threads: int, min_run_time: float = 0.3) -> dict[str, Any]:
    """The load average and the cross-entropy floor (ns per element at each of :data:`FLOOR_SIZES`)."""
    return {
        "load_average_1min": load_average(),
        "threads": threads,
        "floor_ns_per_element": {str(n): _floor_ns_per_element(n, threads, min_run_time) for n in FLOOR_SIZES},
    }


def verdict(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Reasons the run was not quiet (empty when it was)."""
    reasons = []
    load = before.get("load_average_1min")
    if load is not None and load > MAX_LOAD_BEFORE:
        reasons.append(f"load average {load:.2f} before the run (at most {MAX_LOAD_BEFORE} allowed)")
    small, large = (str(n) for n in FLOOR_SIZES)
    for when, state in (("before", before), ("after", after)):
        floor = state["floor_ns_per_element"]
        ratio = floor[small] / floor[large]
        if ratio > MAX_SMALL_OVER_LARGE:
            reasons.append(f"cross-entropy floor {when} the run: {floor[small]:.2f} ns per element at {small} elements "
                           f"vs {floor[large]:.2f} at {large} ({ratio:.1f}x, at most {MAX_SMALL_OVER_LARGE}x allowed)")
    for size in (small, large):
        a, b = before["floor_ns_per_element"][size], after["floor_ns_per_element"][size]
        drift = max(a, b) / min(a, b)
        if drift > MAX_DRIFT:
            reasons.append(f"cross-entropy floor at {size} elements changed {drift:.1f}x during the run "
                           f"({a:.2f} -> {b:.2f} ns per element, at most {MAX_DRIFT}x allowed)")
    return reasons
