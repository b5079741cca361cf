r"""Fused CPU Distribution Focal Loss: per-row loss and gradient in one pass of a compiled C kernel
(op ``distribution_focal``).

Implements the op on CPU tensors by calling ``fk_distribution_focal`` of ``csrc/focal_cpu.c`` through
:mod:`ctypes`. Per row (n, d1, ...) of logits x over the n + 1 bins along dim 1, all in float32: the target y is
clamped to [0, n - 0.01], l = floor(y), r = l + 1, w_l = r - y, w_r = y - l, and with the row maximum m,
e_k = exp(x_k - m), log S = log1p(sum of e_k over the non-maximal bins) (the closed form of
:mod:`focalkit.backends.pytorch.distribution`):

.. math::

    L = -(w_l \log p_l + w_r \log p_r),\quad \log p_k = x_k - m - \log S,\qquad
    \frac{\partial L}{\partial x_j} = (w_l + w_r)\, p_j - w_l [j = l] - w_r [j = r].

-log p keeps its relative accuracy when one bin dominates; a row with a non-finite logit gives NaN.

Memory: reads logits and targets once, writes the gradient (logits' dtype) and, unless ``reduce_sum``, the float32
per-row loss; the sum needs one float64 per 4096 rows (added in order: independent of the thread count).

Reference:
    X. Li et al., "Generalized Focal Loss", NeurIPS 2020, arXiv:2006.04388, eq. (6).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..._targets import ncs
from ...errors import argument_error
from ...value_checks import value_checks_enabled
from . import library as cpu_lib

__all__ = ["forward"]

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def forward(logits: Tensor, targets: Tensor, *, ignore_index: int | None = None, reduce_sum: bool,
            compute_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Per-row distribution focal loss and its gradient (kernel contract, fused CPU back-end).

    Args:
        logits: CPU float tensor (fp32 / fp16 / bf16) (N, n + 1) or (N, n + 1, d1, ...), n >= 1.
        targets: float targets of shape (N, d1, ...), values in [0, n] (clamped to [0, n - 0.01]).
        ignore_index: unused.
        reduce_sum, compute_grad: as in the kernel contract.

    Returns:
        ``(loss, grad)``: float32 per-row losses of the targets' shape (or their 0-d sum) and the gradient in the
        logits' dtype or None.

    Example:
        >>> loss, grad = forward(torch.tensor([[0.0, 2.0, 0.0]]), torch.tensor([1.25]), reduce_sum=False,
        ...     compute_grad=True)
        >>> loss
        tensor([0.7395])
    """
    lib = cpu_lib.lib()
    shape = logits.shape
    x = logits.detach().contiguous()
    n, c, s = ncs(shape)
    rows = n * s
    if x.numel() == 0:
        loss = torch.zeros(targets.shape, dtype=torch.float32)
        return (loss.sum() if reduce_sum else loss), (torch.zeros_like(logits) if compute_grad else None)
    if x.ndim < 2 or c < 2:
        raise argument_error("logits", "bin logits (N, n + 1, ...) with at least 2 bins in dim 1", f"shape {tuple(shape)}")
    t = targets.detach()
    if t.dtype not in _FLOAT_DTYPES:
        t = t.to(torch.float32)
    t = t.contiguous()
    if t.numel() != rows:
        raise argument_error("targets", f"{rows} targets (one per row of logits of shape {tuple(shape)})", f"{t.numel()}")

    loss, grad, sums = cpu_lib.row_outputs(tuple(targets.shape), x, rows, reduce_sum, compute_grad)
    xdt, tdt = cpu_lib.DTYPE_CODES[x.dtype], cpu_lib.DTYPE_CODES[t.dtype]
    xp, tp = x.data_ptr(), t.data_ptr()
    lp, gp, sp = cpu_lib.address(loss), cpu_lib.address(grad), cpu_lib.address(sums)

    stride = cpu_lib.scratch_stride(2 * c)  # 2 C floats per thread

    def work(start: int, end: int, threads: int, piece: int) -> int:
        scratch = cpu_lib.scratch_pointer(stride * threads)
        return lib.fk_distribution_focal(xp, xdt, tp, tdt, n, c, s, start, end, lp, gp, sp, scratch, stride, threads,
                                         piece)

    # parallelise over rows; a row costs about n + 1 elements of work
    bad = cpu_lib.parallel_for(rows, work, min_parallel=max(1, cpu_lib.MIN_PARALLEL // c))
    if bad and value_checks_enabled(targets):  # with value checks off, targets are clamped and NaN propagates
        raise argument_error("targets", f"values in [0, {c - 1}] (n = inputs.shape[1] - 1)",
                             f"{bad} value(s) outside (found by the CPU kernel)")
    if reduce_sum:
        loss = sums.total()
    return loss, grad
