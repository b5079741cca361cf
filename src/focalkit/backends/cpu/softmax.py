"""Fused CPU softmax focal loss: loss and gradient in one pass of a compiled C kernel.

Implements the ``softmax_focal`` op of the kernel contract (:mod:`focalkit.backends.contract`) on CPU tensors by calling
``fk_softmax_focal`` of ``csrc/focal_cpu.c`` through :mod:`ctypes`. For each row (column (n, :, s) of logits viewed as
(N, C, S)) with class-index target t, all in float32:

.. math::

    m = \\max_k x_k,\\quad S = \\sum_k e^{x_k - m},\\quad S' = \\sum_{k \\ne t} e^{x_k - m},\\quad
    u = S'/S,\\quad l = x_t - m - \\log S,\\quad p_t = e^{l}

    L = -w_t\\, u^{\\gamma}\\, l,\\qquad A = w_t\\, u^{\\gamma} (u - \\gamma p_t l),\\qquad
    \\frac{\\partial L}{\\partial x_t} = -A,\\quad \\frac{\\partial L}{\\partial x_j} = A\\, e^{x_j - m} / S'

with ``w_t = alpha[t] * weight[t]``. S' is accumulated directly (never as S - e^{x_t - m}), so u keeps its relative
accuracy when p_t is close to 1; ``u^gamma = exp(gamma (log S' - log S))`` and u = 0 (S' = 0) gives a zero gradient.
One exp per logit. (N, C) rows are processed one at a time in L1; (N, C, S) inputs in blocks of 256 columns.
Ignored rows (``ignore_index``) and out-of-range targets give 0 loss and 0 gradient.

Reduced focal loss (``reduced_threshold`` th in (0, 1]): ``u^gamma`` becomes ``(u / th)^gamma = exp(gamma (log S' -
log S - log th))`` where ``u <= 1 - th`` (p_t >= th); elsewhere the factor is 1 and ``A = w_t u`` (gamma taken as 0:
the cross-entropy's gradient).

Reference:
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection." ICCV 2017,
    arXiv:1708.02002 (the multi-class form of eq. 5).
    N. Sergievskiy, A. Ponamarev. "Reduced Focal Loss: 1st Place Solution to xView object detection in Satellite
    Imagery." arXiv:1903.01347, 2019.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ...errors import InvalidArgumentError
from ..._checks import check_class_indices
from ..._targets import ncs
from ...value_checks import value_checks_enabled
from . import library as cpu_lib

__all__ = ["forward", "raise_counted_class_indices", "run_rows"]

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)



def forward(logits: Tensor, targets: Tensor, *, weight: Tensor | None = None, alpha: Tensor | None = None,
            gamma: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool, reduced_threshold: float = 0.0
) -> tuple[Tensor, Tensor | None]:
    """Softmax focal loss per row and its gradient in one pass (kernel contract, fused CPU back-end).

    Args:
        logits: CPU float tensor (N, C) or (N, C, d1, ...) (fp32 / fp16 / bf16); (C,) is treated as one row.
        targets: integer class indices of shape (N,) / (N, d1, ...) (a 0-d tensor for (C,) logits).
        weight, alpha: float32 per-class vectors (C,) or None; the row weight is alpha[t] * weight[t].
        gamma: focusing parameter >= 0.
        ignore_index: target value of rows to ignore, or None.
        reduce_sum: return the 0-d float32 sum (float64 block partials added in order).
        compute_grad: also return d loss / d logits (logits' shape and dtype); otherwise None.
        reduced_threshold: th in (0, 1] for the reduced focal loss (factor ((1 - p_t) / th)^gamma where p_t >= th,
            1 below), or 0 (off).

    Returns:
        ``(loss, grad)``: float32 per-row losses of the targets' shape (or a 0-d sum) and the gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, 0.0, -1.0]]); t = torch.tensor([0])
        >>> loss, grad = forward(x, t, weight=None, alpha=None, gamma=2.0, ignore_index=-100,
        ...     reduce_sum=False, compute_grad=True)
    """
    wt = None
    if weight is not None or alpha is not None:
        c = int(logits.shape[0] if logits.ndim == 1 else logits.shape[1])
        wt = torch.ones(c, dtype=torch.float32)
        if weight is not None:
            wt = wt * weight.detach().to(device="cpu", dtype=torch.float32).reshape(c)
        if alpha is not None:
            wt = wt * alpha.detach().to(device="cpu", dtype=torch.float32).reshape(c)
    lib = cpu_lib.lib()
    g, th = float(gamma), float(reduced_threshold)
    return run_rows(lambda xp, xdt, tp, wp, ign, has_ignore, n, c, s, start, end, lp, gp, sp, *per_thread:
                    lib.fk_softmax_focal(xp, xdt, tp, wp, g, th, ign, has_ignore, n, c, s, start, end, lp, gp, sp,
                                         *per_thread),
                    logits, targets, wt, ignore_index, reduce_sum, compute_grad)


def raise_counted_class_indices(targets: Tensor, c: int, ignore_index: int | None, bad: int) -> None:
    """Raise the standard error for the ``bad`` class indices outside [0, C) (not ``ignore_index``) that a per-row
    kernel counted, when value checks are on for ``targets``; with them off, such rows gave 0."""
    if bad and value_checks_enabled(targets):
        check_class_indices("target", targets, 0, c - 1, ignore_index)  # the standard message
        allowed = f"class indices in [0, {c - 1}]" + (f" or ignore_index={ignore_index}" if ignore_index is not None else "")
        raise InvalidArgumentError(f"target: expected {allowed}, got {bad} value(s) outside (found by the CPU kernel)")


def run_rows(kernel: Callable[..., int], logits: Tensor, targets: Tensor, row_weight: Tensor | None,
             ignore_index: int | None, reduce_sum: bool, compute_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Run a per-row softmax kernel of ``csrc/focal_cpu.c`` over the columns (n, :, s) of logits viewed as (N, C, S),
    split over threads, and raise the standard error for class indices the kernel found out of range.

    ``kernel(xp, xdt, tp, wp, ignore_index, has_ignore, N, C, S, start, end, loss, grad, block_sums, scratch,
    scratch_stride, threads, piece)`` calls the C function on columns [start, end) with the arguments that are not
    listed here already bound (:func:`library.parallel_for` gives the last two); it returns the number of
    out-of-range targets. ``row_weight``: per-class weights (C,) or None. Returns the contract's
    ``(loss, grad)``: float32 per-row losses of the targets' shape (or the 0-d sum of the float64 block partials, added
    in order) and the gradient in the logits' shape and dtype (or None).
    """
    shape = logits.shape
    x = logits.detach().contiguous()
    if x.ndim == 1:
        n, c, s = 1, int(shape[0]), 1
    else:
        n, c, s = ncs(shape)
    cols = n * s
    t = targets.detach().to(torch.int64).contiguous()
    if t.numel() != cols:
        raise InvalidArgumentError(f"targets: expected {cols} class indices for logits of shape {tuple(shape)}, got {t.numel()}")
    wt = None if row_weight is None else row_weight.detach().to(device="cpu", dtype=torch.float32).contiguous()

    loss, grad, sums = cpu_lib.row_outputs(tuple(targets.shape), x, cols, reduce_sum, compute_grad)

    xdt = cpu_lib.DTYPE_CODES[x.dtype]
    has_ignore = ignore_index is not None
    ign = int(ignore_index) if has_ignore else 0
    xp, tp, wp = x.data_ptr(), t.data_ptr(), cpu_lib.address(wt)
    lp, gp, sp = cpu_lib.address(loss), cpu_lib.address(grad), cpu_lib.address(sums)
    scratch_len = cpu_lib.scratch_stride(2 * c * (cpu_lib.CHUNK if s > 1 else cpu_lib.row_batch(c)))

    def work(start: int, end: int, threads: int, piece: int) -> int:
        scratch = cpu_lib.scratch_pointer(scratch_len * threads)  # scratch_len floats per thread
        return kernel(xp, xdt, tp, wp, ign, int(has_ignore), n, c, s, start, end, lp, gp, sp, scratch, scratch_len,
                      threads, piece)

    # parallelise over columns; a column costs about C elements of work
    bad = cpu_lib.parallel_for(cols, work, min_parallel=max(1, cpu_lib.MIN_PARALLEL // max(c, 1)))
    raise_counted_class_indices(targets, c, ignore_index if has_ignore else None, bad)
    if reduce_sum:
        loss = sums.total()
    return loss, grad
