"""Is the machine quiet enough to publish timings? A check run before and after a benchmark.

On a machine with few cores, any other process stretches each of torch's parallel regions to a scheduler time slice,
and small calls become 10-300x slower than on a quiet machine. This module measures the machine's state twice (before
and after the timings) and refuses the run when it was busy:

- the 1-minute load average before the run (other processes ready to run), at most :data:`MAX_LOAD_BEFORE`;
- the *cross-entropy floor*: the per-element time of ``F.binary_cross_entropy_with_logits`` forward + backward at
  1e5 and 1e6 elements (``torch.utils.benchmark``, medians). On a quiet machine the small size costs about as much
  per element as the large one; a busy machine inflates the small size most. Refused when the small size's
  per-element time exceeds :data:`MAX_SMALL_OVER_LARGE` times the large one's, when a size's floor changed by
  more than :data:`MAX_DRIFT` between the checks before and after the run, or when the floor's own repetitions
  spread by more than :data:`MAX_FLOOR_SPREAD` (interquartile range over median): another machine's work on the
  shared cores and memory (a virtual machine's neighbours, which no load average shows) slows some repetitions and
  not others.

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

__all__ = ["FLOOR_SIZES", "MAX_DRIFT", "MAX_FLOOR_SPREAD", "MAX_LOAD_BEFORE", "MAX_SMALL_OVER_LARGE", "machine_state",
           "verdict"]

FLOOR_SIZES = (100_000, 1_000_000)
MAX_LOAD_BEFORE = 1.5
MAX_SMALL_OVER_LARGE = 3.0
MAX_DRIFT = 1.25
MAX_FLOOR_SPREAD = 0.25


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _floor(numel: int, threads: int, min_run_time: float) -> tuple[float, float]:
    """The cross-entropy floor at ``numel`` elements: (median ns per element, interquartile range / median)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(numel, generator=g).requires_grad_(True)
    t = (torch.rand(numel, generator=g) < 0.5).float()

    def step() -> None:
        F.binary_cross_entropy_with_logits(x, t, reduction="sum").backward()
        x.grad = None

    timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=threads)
    # a first pass not kept: in a fresh process the first repetitions also fault in the allocator's pages, which
    # would read as a floor that "changed" between the checks before and after the run
    timer.blocked_autorange(min_run_time=min_run_time / 2)
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return measurement.median / numel * 1e9, measurement.iqr / measurement.median


def machine_state(threads: int, min_run_time: float = 0.3) -> dict[str, Any]:
    """The load average and the cross-entropy floor at each of :data:`FLOOR_SIZES`: ns per element and the relative
    spread of its repetitions."""
    floors = {str(n): _floor(n, threads, min_run_time) for n in FLOOR_SIZES}
    return {
        "load_average_1min": load_average(),
        "threads": threads,
        "floor_ns_per_element": {n: median for n, (median, _) in floors.items()},
        "floor_relative_iqr": {n: spread for n, (_, spread) in floors.items()},
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
        for size, spread in state.get("floor_relative_iqr", {}).items():
            if spread > MAX_FLOOR_SPREAD:
                reasons.append(f"cross-entropy floor {when} the run at {size} elements: repetitions spread by "
                               f"{spread:.0%} of the median (interquartile range; at most {MAX_FLOOR_SPREAD:.0%} allowed)")
    for size in (small, large):
        a, b = before["floor_ns_per_element"][size], after["floor_ns_per_element"][size]
        drift = max(a, b) / min(a, b)
        if drift > MAX_DRIFT:
            reasons.append(f"cross-entropy floor at {size} elements changed {drift:.1f}x during the run "
                           f"({a:.2f} -> {b:.2f} ns per element, at most {MAX_DRIFT}x allowed)")
    return reasons
