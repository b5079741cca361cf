"""Loader of the fused CPU kernel library (``csrc/focal_cpu.c``) and the thread pool that runs it.

The C library is built at install time by ``setup.py`` (a baseline build and, on x86-64, an AVX2 + FMA + F16C build
and an AVX-512 build; the best one the CPU runs is loaded) and loaded here with :mod:`ctypes`; nothing is compiled at
import or at the first call. ``available()`` is False when no build is present (no compiler at install time, an unsupported platform, ``FOCALKIT_NO_EXT=1``), and the dispatcher
then falls back to the PyTorch back-end.

Threads: the flat element range is split into pieces of whole ``BLOCK``-element blocks (aligned to the global index)
that ``torch.get_num_threads()`` threads take in turn. The library is built with OpenMP and names ``libgomp.so.1``,
which the dynamic loader resolves to the copy torch has already loaded (the same soname), so one call runs its pieces
on torch's own OpenMP threads: the threads that are awake (spinning) right after any parallel torch operation, rather
than competing with them. Where that does not hold (a build without OpenMP, a library that brought an OpenMP runtime
of its own into the process; :func:`threads_backend`) the caller and Python pool workers take the pieces instead
(ctypes releases the GIL during a call). Loss sums are accumulated per block (a full 256-element chunk as a fixed tree
of float vectors, the chunk sums in double) and the double block partials are added in block order, so a sum does not
depend on the thread count or the split.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from .abi import ABI_VERSION

__all__ = ["BLOCK", "CHUNK", "DTYPE_CODES", "available", "lib", "isa", "parallel_for", "load_error", "row_batch",
           "scratch_pointer", "scratch_stride", "threads_backend", "row_outputs", "address", "BlockSums", "block_sums"]


CHUNK = 256  # must match FK_CHUNK in focal_cpu.c
BLOCK = 4096  # must match FK_BLOCK in focal_cpu.c
ROW_BATCH_FLOATS = 8192  # must match FK_ROW_BATCH_FLOATS in focal_cpu.c
# Below this many elements a call runs on the calling thread (thread hand-off costs ~20-50 us).
MIN_PARALLEL = 1 << 16

DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.int64: 3}

_lib: ctypes.CDLL | None = None
_isa = "none"
_load_error: str | None = None
_threads = "pool"
_loaded = False
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0

_P = ctypes.c_void_p
_I64 = ctypes.c_int64


# Every kernel ends with (threads, piece) (see parallel_for), after (scratch, scratch_stride) for those that take
# per-thread scratch (scratch_stride floats per thread).
_PIECES = [ctypes.c_int, _I64]
_SCRATCH = [_P, _I64]

# The exported kernels and their argument types (csrc/focal_cpu.c and the segmentation_cpu.c it includes); each
# returns an int64 (for the loss kernels, the count of invalid targets).
_SIGNATURES = {
    "fk_sigmoid_focal": [
        _P, ctypes.c_int, _P, ctypes.c_int, _P, _P, ctypes.c_float, ctypes.c_double, _I64, ctypes.c_int,
        _I64, _I64, _I64, _I64, _I64, _P, _P, _P, *_PIECES,
    ],
    "fk_poly1_focal": [
        _P, ctypes.c_int, _P, ctypes.c_int, _P, _P, ctypes.c_float, ctypes.c_float, _I64, _I64, _I64, _I64, _I64,
        _P, _P, _P, *_PIECES,
    ],
    "fk_softmax_focal": [
        _P, ctypes.c_int, _P, _P, ctypes.c_float, ctypes.c_double, _I64, ctypes.c_int,
        _I64, _I64, _I64, _I64, _I64, _P, _P, _P, *_SCRATCH, *_PIECES,
    ],
    "fk_softmax_soft_focal": [
        _P, ctypes.c_int, _P, ctypes.c_int, _P, ctypes.c_float, ctypes.c_double, _I64, ctypes.c_int,
        _I64, _I64, _I64, _I64, _I64, _P, _P, _P, *_SCRATCH, *_PIECES,
    ],
    "fk_poly1_cross_entropy": [
        _P, ctypes.c_int, _P, _P, ctypes.c_float, _I64, ctypes.c_int, _I64, _I64, _I64, _I64, _I64, _P, _P, _P,
        *_SCRATCH, *_PIECES,
    ],
    "fk_logistic_family": [
        ctypes.c_int, _P, _P, ctypes.c_int, _P, ctypes.c_int, _P, ctypes.c_int, _P, _P, _I64, ctypes.c_int,
        _I64, _I64, _I64, _I64, _I64, _P, _P, _P, *_PIECES,
    ],
    "fk_distribution_focal": [
        _P, ctypes.c_int, _P, ctypes.c_int, _I64, _I64, _I64, _I64, _I64, _P, _P, _P, *_SCRATCH, *_PIECES,
    ],
    # csrc/segmentation_cpu.c: (x, xdt, t, tdt, ignore_index, has_ignore, N, C, S, Spad, softmax, mode, focal, wpos,
    # wneg, gamma, ...); the statistics return the number of extreme pixels, the gradient 0
    "fk_segmentation_stats": [
        _P, ctypes.c_int, _P, ctypes.c_int, _I64, ctypes.c_int, _I64, _I64, _I64, _I64, ctypes.c_int, ctypes.c_int,
        ctypes.c_int, _P, _P, ctypes.c_float, _I64, _I64, _P, *_SCRATCH, *_PIECES,
    ],
    "fk_segmentation_grad": [
        _P, ctypes.c_int, _P, ctypes.c_int, _I64, ctypes.c_int, _I64, _I64, _I64, _I64, ctypes.c_int, ctypes.c_int,
        ctypes.c_int, _P, _P, ctypes.c_float, _P, _P, _I64, _I64, _P, *_SCRATCH, *_PIECES,
    ],
}


def _cpu_flags() -> set[str]:
    try:
        return set(Path("/proc/cpuinfo").read_text().split("\nflags", 1)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        return set()


def _cpu_has_avx2_fma() -> bool:
    return {"avx2", "fma", "f16c"} <= _cpu_flags()


def _cpu_has_avx512() -> bool:
    """The CPU runs the AVX-512 build: AVX-512 F, BW, DQ and VL besides AVX2, FMA and F16C."""
    return {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "f16c"} <= _cpu_flags()


def _candidates() -> list[tuple[str, Path]]:
    """The builds to try, best first. ``FOCALKIT_CPU_ISA`` caps the choice: "base" (the baseline build) or "avx2"
    (no AVX-512), for tests that compare builds and for CPUs where 512-bit vectors lower the clock."""
    here = Path(__file__).resolve().parent
    forced = os.environ.get("FOCALKIT_CPU_ISA", "").lower()
    out: list[tuple[str, Path]] = []
    if forced not in ("base", "avx2") and _cpu_has_avx512():
        out += [("avx512", p) for p in sorted(here.glob("_focal_cpu_avx512*.so"))]
    if forced != "base" and _cpu_has_avx2_fma():
        out += [("avx2", p) for p in sorted(here.glob("_focal_cpu_avx2*.so"))]
    out += [("base", p) for p in sorted(here.glob("_focal_cpu_base*.so"))]
    return out


def _load() -> None:
    global _lib, _isa, _load_error, _loaded, _threads
    with _lock:
        if _loaded:
            return
        _loaded = True
        if os.environ.get("FOCALKIT_NO_EXT") == "1":
            _load_error = "disabled by FOCALKIT_NO_EXT=1"
            return
        errors = []
        for name, path in _candidates():
            runtimes_before = _openmp_runtimes()
            try:
                handle = ctypes.CDLL(str(path))
                if handle.fk_abi_version() != ABI_VERSION:
                    errors.append(f"{path.name}: ABI {handle.fk_abi_version()} != {ABI_VERSION}")
                    continue
            except OSError as exc:
                errors.append(f"{path.name}: {exc}")
                continue
            try:
                for symbol, argtypes in _SIGNATURES.items():
                    function = getattr(handle, symbol)
                    function.argtypes = argtypes
                    function.restype = ctypes.c_int64
                handle.fk_openmp.restype = ctypes.c_int
                handle.fk_sum_doubles.argtypes = [_P, _I64]
                handle.fk_sum_doubles.restype = ctypes.c_double
            except AttributeError as exc:  # a library built from other sources with the same ABI number
                errors.append(f"{path.name}: {exc}")
                continue
            _lib, _isa = handle, name
            # the library shares torch's OpenMP runtime when loading it mapped no new one (its libgomp.so.1 resolved to
            # the copy already loaded); other libraries' own runtimes (scikit-learn bundles one) do not matter
            runtimes_after = _openmp_runtimes()
            shared = runtimes_before is not None and runtimes_after is not None and runtimes_after <= runtimes_before
            if handle.fk_openmp() and shared and os.environ.get("FOCALKIT_CPU_THREADS", "").lower() != "pool":
                _threads = "openmp"
            return
        _load_error = "; ".join(errors) if errors else "no compiled kernel library found next to library.py"


def available() -> bool:
    """True when a compiled fused CPU kernel library could be loaded."""
    _load()
    return _lib is not None


def lib() -> ctypes.CDLL:
    """The loaded library; raises RuntimeError when :func:`available` is False."""
    if _lib is not None:  # every call of every loss comes here: no lock once loaded
        return _lib
    _load()
    if _lib is None:
        raise RuntimeError(f"focalkit fused CPU kernels unavailable: {_load_error}")
    return _lib


def isa() -> str:
    """Which build was loaded: "avx512", "avx2", "base" or "none"."""
    _load()
    return _isa


def _openmp_runtimes() -> set[str] | None:
    """The OpenMP runtime files mapped into this process (Linux), or None where that cannot be read."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    runtimes = set()
    for line in maps.splitlines():
        fields = line.split(None, 5)  # address, permissions, offset, device, inode, path
        if len(fields) == 6 and fields[5].rsplit("/", 1)[-1].startswith(("libgomp", "libiomp", "libomp")):
            runtimes.add(fields[5])
    return runtimes


def threads_backend() -> str:
    """How the kernels' pieces run on several threads: ``"openmp"`` (the library's OpenMP build, bound to the OpenMP
    runtime torch had loaded) or ``"pool"`` (focalkit's Python thread pool: a build without OpenMP, a library that
    brought its own OpenMP runtime into the process, no /proc to check, or ``FOCALKIT_CPU_THREADS=pool``)."""
    _load()
    return _threads


def load_error() -> str | None:
    """Why the library could not be loaded (None when it was)."""
    _load()
    return _load_error


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="focalkit-cpu")
            _pool_size = n
        return _pool


def row_batch(classes: int) -> int:
    """Rows of (N, C) logits that the softmax kernels handle as one batch (``fk_row_batch`` in focal_cpu.c): as many
    whole rows as fill ROW_BATCH_FLOATS floats, at least 1, at most CHUNK."""
    return max(1, min(CHUNK, ROW_BATCH_FLOATS // max(classes, 1)))


_SCRATCH = threading.local()


class BlockSums:
    """The zeroed float64 partial sums a kernel adds its losses into, one per BLOCK elements (or rows) of ``count``,
    and their float32 total: the partials added in block order (``fk_sum_doubles``), so a sum does not depend on the
    thread count or the split. A ctypes array rather than a tensor: a torch operation costs a few microseconds, as
    much as the whole kernel of a small call, and this takes none.

    Example:
        >>> sums = BlockSums(10_000)        # 3 blocks of 4096 elements
        >>> sums.data_ptr() != 0, float(sums.total())
        (True, 0.0)
    """

    __slots__ = ("_values", "_pointer")

    def __init__(self, count: int) -> None:
        self._values = (ctypes.c_double * max(1, (int(count) + BLOCK - 1) // BLOCK))()
        self._pointer = ctypes.addressof(self._values)

    def data_ptr(self) -> int:
        """The address of the first partial (the kernels' ``block_sums`` argument)."""
        return self._pointer

    def total(self) -> Tensor:
        """The 0-d float32 sum of the partials (rounded once, from float64)."""
        values = self._values
        if len(values) <= 16:  # a small call: the same in-order float64 additions, without a ctypes call
            acc = 0.0
            for value in values:
                acc += value
        else:
            acc = lib().fk_sum_doubles(self._pointer, len(values))
        return torch.scalar_tensor(acc, dtype=torch.float32)


def block_sums(count: int, reduce_sum: bool) -> BlockSums | None:
    """:class:`BlockSums` for ``count`` elements (or rows) when ``reduce_sum``, else None."""
    return BlockSums(count) if reduce_sum else None


def row_outputs(loss_shape: tuple[int, ...], logits: Tensor, rows: int, reduce_sum: bool, compute_grad: bool
                ) -> tuple[Tensor | None, Tensor | None, BlockSums | None]:
    """The buffers a kernel writes: float32 losses of ``loss_shape``, one per row or per element (None with
    ``reduce_sum``), the gradient in the logits' shape and dtype (None without ``compute_grad``) and the partial sums
    of the ``rows`` losses, one per BLOCK of them (None without ``reduce_sum``)."""
    loss = None if reduce_sum else torch.empty(loss_shape, dtype=torch.float32)
    grad = torch.empty(logits.shape, dtype=logits.dtype) if compute_grad else None
    return loss, grad, block_sums(rows, reduce_sum)


def address(tensor: Tensor | BlockSums | None) -> int | None:
    """A tensor's (or :class:`BlockSums`') data pointer for a kernel argument, or None (NULL) for an absent one."""
    return None if tensor is None else tensor.data_ptr()


def scratch_stride(floats: int) -> int:
    """Floats between two threads' scratch regions for ``floats`` floats each: rounded up to whole 64-byte cache
    lines. Regions that share a line make the threads bounce it on every write (the distribution focal loss, 34
    floats per thread, gained 1.3x from a second thread that way, 1.9x with whole lines)."""
    return -(-max(floats, 1) // 16) * 16


def scratch_pointer(floats: int) -> int:
    """Address of a float32 scratch buffer of at least ``floats`` values, one per thread, kept across calls: a
    kernel's per-chunk workspace. Allocating it inside every piece of a parallel call (a torch call on a pool thread)
    costs more than a small piece."""
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.numel() < floats:
        buffer = torch.empty(floats, dtype=torch.float32)
        _SCRATCH.buffer = buffer
    return buffer.data_ptr()


def parallel_for(total: int, work: Callable[[int, int, int, int], int], min_parallel: int = MIN_PARALLEL) -> int:
    """Run a kernel over ``[0, total)`` on ``torch.get_num_threads()`` threads and return the sum of its results.

    ``work(start, end, threads, piece)`` calls the C kernel on ``[start, end)`` with its last two arguments; the kernel
    cuts its range into pieces of ``piece`` elements (a multiple of BLOCK: about 8 pieces per thread, at least
    ``min_parallel`` elements each) that ``threads`` threads take in turn, so a thread slowed down by other processes
    does not hold the others up. With an OpenMP build sharing torch's runtime (:func:`threads_backend` ``"openmp"``)
    that is one call and torch's own OpenMP threads run the pieces; otherwise the calling thread and pool workers take
    the pieces from a shared counter, one call each with ``threads = 1`` (ctypes releases the GIL during a call).
    """
    threads = max(1, torch.get_num_threads())
    if threads == 1 or total < 2 * min_parallel:
        return int(work(0, total, 1, 0)) if total > 0 else 0
    blocks = (total + BLOCK - 1) // BLOCK
    per = max((min_parallel + BLOCK - 1) // BLOCK, (blocks + 8 * threads - 1) // (8 * threads))
    if threads_backend() == "openmp":
        return int(work(0, total, threads, per * BLOCK))
    pieces = [(b * BLOCK, min(total, (b + per) * BLOCK)) for b in range(0, blocks, per)]
    counter = itertools.count()  # next() on it is atomic under the GIL

    def drain() -> int:
        acc = 0
        while True:
            i = next(counter)
            if i >= len(pieces):
                return acc
            acc += int(work(*pieces[i], 1, 0))

    pool = _get_pool(threads - 1)
    futures = [pool.submit(drain) for _ in range(min(threads - 1, len(pieces) - 1))]
    result = drain()
    for f in futures:
        result += int(f.result())
    return result
