"""Whether the benchmark's process keeps freed memory mapped between repetitions (glibc's ``mallopt``).

PyTorch's CPU tensors come from the C library's ``malloc``. With glibc's defaults a large buffer (a gradient or an
intermediate of a few MB) is served by ``mmap`` or by the top of an arena, and freeing it can hand the pages back to
the system; the next repetition then maps them again and pays one page fault per 4 KiB page on first touch. Measured
on the 2-core machine of ``docs/benchmarks.md``: at 4M elements and 2 threads this made every implementation that
allocates a logits-sized buffer flip between a fast and a slow mode (about 2x apart) from block to block, so medians
of the same code moved by up to 2x between runs and the ratios between implementations with them.

``"steady"`` (the benchmark's default) raises the trim and mmap thresholds to 1 GiB, so freed memory stays in the
process and is reused by the next repetition, the steady state of a training loop that allocates the same buffers
every step; it applies to every implementation of the run alike. ``"system"`` leaves the C library as it is (the
bimodal behaviour above). Elsewhere than glibc (macOS, musl) nothing is changed and the report says so.

What a mode does, measured in a fresh process (minor page faults of each repetition of freeing and allocating a
16 MB and a 32 MB tensor)::

    python -c "from focalkit_app.bench import allocator as a; a.configure('system'); print(a.reuse_page_faults())"

Example:
    >>> from focalkit_app.bench import allocator
    >>> allocator.configure("system")["applied"]
    False
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
from typing import Any

import torch

from focalkit.errors import InvalidArgumentError

__all__ = ["ALLOCATOR_MODES", "STEADY_THRESHOLD_BYTES", "allocator_line", "configure", "reuse_page_faults"]

ALLOCATOR_MODES = ("steady", "system")
STEADY_THRESHOLD_BYTES = 1 << 30
# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):
        return None
    return libc


def configure(mode: str) -> dict[str, Any]:
    """Apply allocator mode ``mode`` (``"steady"`` or ``"system"``) to this process; returns what was done, for the
    report: ``{"mode", "applied", "detail"}``.

    Raises:
        focalkit.InvalidArgumentError: an unknown mode.
    """
    if mode not in ALLOCATOR_MODES:
        raise InvalidArgumentError(f"allocator: expected one of {', '.join(ALLOCATOR_MODES)}, got {mode!r}")
    if mode == "system":
        return {"mode": mode, "applied": False, "detail": "the C library's defaults"}
    libc = _glibc()
    if libc is None:
        return {"mode": mode, "applied": False, "detail": "not glibc: the C library's defaults"}
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    trim = libc.mallopt(_M_TRIM_THRESHOLD, STEADY_THRESHOLD_BYTES)
    mmap = libc.mallopt(_M_MMAP_THRESHOLD, STEADY_THRESHOLD_BYTES)
    version = libc.gnu_get_libc_version().decode()
    applied = bool(trim) and bool(mmap)
    return {"mode": mode, "applied": applied,
            "detail": f"glibc {version}: mallopt(M_TRIM_THRESHOLD, M_MMAP_THRESHOLD) = {STEADY_THRESHOLD_BYTES} bytes "
                      f"-> {'accepted' if applied else f'refused ({trim}, {mmap})'}"}


def allocator_line(metadata: dict[str, Any]) -> str:
    """The report's one-line description of the allocator mode a run used (runs before the option: not recorded)."""
    info = metadata.get("allocator")
    if not info:
        return "not recorded (the C library's defaults)"
    return f"{info['mode']} ({info['detail']})"


def reuse_page_faults(repetitions: int = 16) -> list[int]:
    """Minor page faults of each of ``repetitions`` rounds of allocating, filling and freeing a 16 MB and a 32 MB
    float32 tensor in this process: near 0 once freed memory is reused without being returned to the system (POSIX
    only: ``resource.getrusage``)."""
    counts = []
    for _ in range(repetitions):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        small = torch.empty(4 << 20)
        small.fill_(1.0)
        large = torch.empty(8 << 20)
        large.fill_(2.0)
        del small, large
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return counts
