r"""Distribution Focal Loss on the Triton back-end (op ``distribution_focal``, per row), fused forward + backward.

For one row (n, s) with logits x over the n + 1 bins along dim 1 and a continuous target y, clamped to [0, n - 0.01]
(as YOLOv8), left bin l = floor(y) (clamped to [0, n - 1]), right bin r = l + 1, w_l = r - y, w_r = y - l
(Li et al. 2020, "Generalized Focal Loss", eq. 6; mmdetection ``distribution_focal_loss``, YOLOv8 ``DFLoss``):

.. math::

    \log p_k = (x_k - m) - \log\left(1 + \sum_{k \ne k^*} e^{x_k - m}\right),\qquad
    L = -(w_l \log p_l + w_r \log p_r),

    \frac{\partial L}{\partial x_j} = (w_l + w_r)\, p_j - w_l [j = l] - w_r [j = r],

with m the row maximum, k* its first bin, and the sum of the other bins under a ``log1p``, so -log p keeps its
relative accuracy when one bin dominates. These are the semantics of
:func:`focalkit.backends.pytorch.distribution.forward`.

Layout: logits viewed as (N, n + 1, S) with any strides; a program owns ``BLOCK_N x BLOCK_S`` rows and holds each
row's bins in one tile (``BLOCK_C``, the next power of two of n + 1): logits are read once and the gradient written
from registers. Heads use 8 to 32 bins; the back-end refuses rows wider than
:data:`focalkit.backends.triton.DISTRIBUTION_MAX_BINS`.

Example:
    >>> x = torch.tensor([[0.0, 2.0, 0.0]], device="cuda")
    >>> loss, grad = forward(x, torch.tensor([1.25], device="cuda"), reduce_sum=False, compute_grad=True)

Reference:
    X. Li, W. Wang, L. Wu, S. Chen, X. Hu, J. Li, J. Tang, J. Yang. "Generalized Focal Loss: Learning Qualified and
    Distributed Bounding Boxes for Dense Object Detection." NeurIPS 2020, arXiv:2006.04388 (eq. 6).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..._targets import ncs
from .sigmoid import _NUM_WARPS, _TILE, _device_guard, _log1p, _next_pow2

__all__ = ["forward"]

# Targets are clamped to [0, n - 0.01], as pytorch.distribution.CLAMP_BELOW_TOP (YOLOv8: reg_max - 1 - 0.01).
_CLAMP_BELOW_TOP = 0.01


@triton.jit
def _distribution_focal_kernel(
    x_ptr, y_ptr, loss_ptr, grad_ptr,
    N, C, S,
    sxn, sxc, sxs,
    syn, sys_,
    top_clamp,
    last_left,
    n_sblocks,
    REDUCE: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    sb = pid % n_sblocks
    nb = pid // n_sblocks

    n = (nb * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64))[:, None, None]  # [BN, 1, 1]
    s = (sb * BLOCK_S + tl.arange(0, BLOCK_S).to(tl.int64))[None, None, :]  # [1, 1, BS]
    cr = tl.arange(0, BLOCK_C).to(tl.int64)[None, :, None]  # [1, BC, 1]
    row_mask = (n < N) & (s < S)
    cmask = cr < C

    x = tl.load(x_ptr + n * sxn + cr * sxc + s * sxs, mask=row_mask & cmask, other=0.0).to(tl.float32)
    x = tl.where(cmask, x, float("-inf"))
    m = tl.max(x, axis=1, keep_dims=True)
    z = x - m
    ex = tl.exp(z)
    top = tl.min(tl.where(x == m, cr, BLOCK_C), axis=1, keep_dims=True)  # first bin of the maximum
    others = tl.sum(tl.where(cr == top, 0.0, ex), axis=1, keep_dims=True)
    log_s = _log1p(others)

    y = tl.load(y_ptr + n * syn + s * sys_, mask=row_mask, other=0.0).to(tl.float32)
    y = tl.minimum(tl.maximum(y, 0.0), top_clamp)
    left = tl.minimum(tl.maximum(tl.floor(y), 0.0), last_left)
    w_left = left + 1.0 - y
    w_right = y - left
    li = left.to(tl.int64)
    is_l = cr == li
    is_r = cr == li + 1
    z_l = tl.sum(tl.where(is_l, z, 0.0), axis=1, keep_dims=True)
    z_r = tl.sum(tl.where(is_r, z, 0.0), axis=1, keep_dims=True)
    loss = -(w_left * (z_l - log_s) + w_right * (z_r - log_s))

    if REDUCE:
        tl.store(loss_ptr + pid, tl.sum(tl.where(row_mask, loss, 0.0)))
    else:
        tl.store(loss_ptr + n * S + s, loss, mask=row_mask)

    if COMPUTE_GRAD:
        g = (w_left + w_right) * tl.exp(z - log_s)
        g = g - tl.where(is_l, w_left, 0.0)
        g = g - tl.where(is_r, w_right, 0.0)
        tl.store(grad_ptr + (n * C + cr) * S + s, g.to(grad_ptr.dtype.element_ty), mask=row_mask & cmask)


def _tile_shape(n: int, c: int, s: int) -> tuple[int, int, int]:
    """``(BLOCK_N, BLOCK_C, BLOCK_S)``: all bins of a row, then rows (spatial first, innermost in memory)."""
    block_c = _next_pow2(c)
    rows = max(1, _TILE // block_c)
    block_s = min(_next_pow2(s), rows)
    block_n = min(_next_pow2(n), max(1, rows // block_s))
    return block_n, block_c, block_s


def forward(logits: torch.Tensor, targets: torch.Tensor, *, ignore_index: int | None = None, reduce_sum: bool,
            compute_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-row distribution focal loss and its gradient in one pass (Triton), following the kernel contract.

    Args:
        logits: (N, n + 1) or (N, n + 1, d1, ...) float tensor (fp32 / fp16 / bf16), n + 1 >= 2 bins;
            any strides.
        targets: float targets of shape (N, d1, ...) (values in [0, n]; clamped to [0, n - 0.01]).
        ignore_index: unused.
        reduce_sum, compute_grad: as in the kernel contract.

    Returns:
        ``(loss, grad)``: float32 per-row losses of the targets' shape (N, d1, ...) (or their 0-d sum), and the
        gradient in the logits' shape and dtype (contiguous), or None.
    """
    shape = logits.shape
    device = logits.device
    n, c, s = ncs(shape)
    if n * c * s == 0:
        loss = torch.zeros(targets.shape, dtype=torch.float32, device=device)
        return (loss.sum() if reduce_sum else loss), (torch.zeros_like(logits) if compute_grad else None)

    x3 = logits.reshape(n, c, s)
    y2 = targets.reshape(n, s)
    block_n, block_c, block_s = _tile_shape(n, c, s)
    n_sblocks = triton.cdiv(s, block_s)
    grid = (triton.cdiv(n, block_n) * n_sblocks,)
    loss_buf = torch.empty(grid[0] if reduce_sum else (n, s), dtype=torch.float32, device=device)
    grad = torch.empty((n, c, s), dtype=logits.dtype, device=device) if compute_grad else None
    bins = c - 1

    with _device_guard(logits):
        _distribution_focal_kernel[grid](
            x3, y2, loss_buf, grad if grad is not None else loss_buf,
            n, c, s,
            *x3.stride(), *y2.stride(),
            float(bins - _CLAMP_BELOW_TOP),
            float(max(bins - 1, 0)),
            n_sblocks,
            REDUCE=bool(reduce_sum),
            COMPUTE_GRAD=bool(compute_grad),
            BLOCK_N=block_n,
            BLOCK_C=block_c,
            BLOCK_S=block_s,
            num_warps=_NUM_WARPS,
        )

    loss = loss_buf.sum(dtype=torch.float64).to(torch.float32) if reduce_sum else loss_buf.reshape(targets.shape)
    return loss, (None if grad is None else grad.reshape(shape))
