"""Triton kernel for the softmax (multi-class) focal loss, fused forward + backward.

Implements the ``softmax_focal`` op of the kernel contract (:mod:`focalkit.backends.contract`). For one row (n, s) with
logits ``x`` over C classes and target class ``t``:

.. math::

    m = \\max_k x_k,\\quad S = \\sum_k e^{x_k - m},\\quad S' = \\sum_{k \\ne t} e^{x_k - m},\\quad
    u = 1 - p_t = S' / S,\\quad \\ell = \\log p_t,

    L = -\\alpha_t w_t\\, u^{\\gamma}\\, \\ell,\\qquad
    A = \\alpha_t w_t\\, u^{\\gamma} (u - \\gamma p_t \\ell),\\qquad
    \\frac{\\partial L}{\\partial x_t} = -A,\\quad
    \\frac{\\partial L}{\\partial x_j} = A\\, e^{x_j - m} / S' \\; (j \\ne t).

``S'`` is accumulated directly (never ``S - e^{x_t - m}``), so ``u`` keeps full relative accuracy when ``p_t -> 1``.
``log p_t`` is ``-log1p(S' / e_t)`` when ``e_t = e^{x_t - m} >= S'`` (p_t >= 1/2, the accurate form near 0) and
``(x_t - m) - log S`` otherwise. ``u^gamma = exp(gamma * log u)`` with ``log u = log S' - log S``; where ``S'``
underflows to 0 a large finite negative stands in for ``log u``, so ``gamma = 0`` still gives exactly 1.
Both terms of ``u - gamma p_t l`` are >= 0: no cancellation. Rows whose target equals ``ignore_index`` (or lies
outside [0, C)) get 0 loss and 0 gradient.

Reduced focal loss (``reduced_threshold`` th in (0, 1]; Sergievskiy & Ponamarev 2019): ``u^gamma`` becomes
``m(u) = exp(gamma (log u - log th))`` where ``u <= 1 - th`` (``p_t >= th``) and 1 elsewhere, and ``gamma`` in ``A``
becomes the effective gamma (``gamma`` where ``p_t >= th``, 0 below: the cross-entropy's gradient there), as in
:mod:`focalkit.backends.triton.sigmoid`; a compile-time switch leaves the kernel without the option unchanged.

Poly-1 cross-entropy (``POLY``, used by :mod:`focalkit.backends.triton.poly_cross_entropy`; gamma = 0): the loss is
``w_t (-l + epsilon u)`` (for epsilon < 0, ``(1 + epsilon) (-l) + (-epsilon) g(-l)`` with ``g(s) = s - (1 - e^{-s})
>= 0``, non-negative terms) and ``A = w_t u ((1 + epsilon) - epsilon u)`` (= ``w_t u (1 + epsilon p_t)``), with the
same gradient layout; a compile-time switch leaves the focal kernel unchanged.

Layout: logits viewed as (N, C, S) with any strides (class stride = ``stride(1)``; no transpose is made for S > 1).
A program owns ``BLOCK_N x BLOCK_S`` rows and walks the classes in chunks of ``BLOCK_C``:

- ``ONE_TILE`` (C fits one chunk): logits are read once, the gradient computed from registers;
- otherwise an online softmax (running max, rescaled S and S') in a first pass and, only when the gradient is needed,
  a second pass that re-reads the logits and writes the gradient.

Reference:
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection." ICCV 2017,
    arXiv:1708.02002 (eq. 5, used with the softmax probability of the target class).
    N. Sergievskiy, A. Ponamarev. "Reduced Focal Loss: 1st Place Solution to xView object detection in Satellite
    Imagery." arXiv:1903.01347, 2019 (the reduced focal loss).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..._targets import ncs

from .logistic import _excess
from .sigmoid import _NO_IGNORE, _device_guard, _log1p, _modulating_factor, _next_pow2, _reduced_scalars

__all__ = ["forward", "launch"]

# Rows x classes per program, and the widest class chunk; wider C is processed in a loop (online softmax). Four warps
# per program: on an H200 (triton 3.6, (100000, 1000) logits) 8-16 % faster than eight with the gradient and about a
# third faster without it (benchmarks/gpu_tune_triton.py; the sweep's table is in benchmarks/results/gpu/tune.md).
_TILE = 2048
_MAX_BLOCK_C = 1024
_NUM_WARPS = 4


@triton.jit
def _softmax_focal_fwd_kernel(
    x_ptr,
    t_ptr,
    w_ptr,
    a_ptr,
    loss_ptr,
    grad_ptr,
    N,
    C,
    S,
    sxn,
    sxc,
    sxs,
    stn,
    sts,
    gamma,
    log_threshold,
    reduced_bound,
    ignore_index,
    n_sblocks,
    epsilon,
    HAS_WEIGHT: tl.constexpr,
    HAS_ALPHA: tl.constexpr,
    REDUCED: tl.constexpr,
    POLY: tl.constexpr,
    EPSILON_NONNEGATIVE: tl.constexpr,
    REDUCE: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr,
    ONE_TILE: tl.constexpr,
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
    row_mask = (n < N) & (s < S)  # [BN, 1, BS]

    t = tl.load(t_ptr + n * stn + s * sts, mask=row_mask, other=ignore_index).to(tl.int64)
    valid = row_mask & (t != ignore_index) & (t >= 0) & (t < C)
    tt = tl.where(valid, t, 0)
    x_row = x_ptr + n * sxn + s * sxs  # [BN, 1, BS] pointers

    if ONE_TILE:
        cmask = cr < C
        x = tl.load(x_row + cr * sxc, mask=row_mask & cmask, other=0.0).to(tl.float32)
        x = tl.where(cmask, x, float("-inf"))
        m = tl.max(x, axis=1, keep_dims=True)
        ex = tl.exp(x - m)
        is_t = cr == tt
        s_all = tl.sum(ex, axis=1, keep_dims=True)
        s_oth = tl.sum(tl.where(is_t, 0.0, ex), axis=1, keep_dims=True)
        x_t = tl.sum(tl.where(is_t, x, 0.0), axis=1, keep_dims=True)
    else:
        m = tl.full([BLOCK_N, 1, BLOCK_S], float("-inf"), tl.float32)
        s_all = tl.zeros([BLOCK_N, 1, BLOCK_S], tl.float32)
        s_oth = tl.zeros([BLOCK_N, 1, BLOCK_S], tl.float32)
        x_t = tl.zeros([BLOCK_N, 1, BLOCK_S], tl.float32)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + cr
            cmask = cc < C
            xc = tl.load(x_row + cc * sxc, mask=row_mask & cmask, other=0.0).to(tl.float32)
            xc = tl.where(cmask, xc, float("-inf"))
            m_new = tl.maximum(m, tl.max(xc, axis=1, keep_dims=True))
            scale = tl.exp(m - m_new)
            exc = tl.exp(xc - m_new)
            is_t = cc == tt
            s_all = s_all * scale + tl.sum(exc, axis=1, keep_dims=True)
            s_oth = s_oth * scale + tl.sum(tl.where(is_t, 0.0, exc), axis=1, keep_dims=True)
            x_t += tl.sum(tl.where(is_t, xc, 0.0), axis=1, keep_dims=True)
            m = m_new

    # Row quantities, shape [BN, 1, BS].
    e_t = tl.exp(x_t - m)
    log_s = tl.log(s_all)
    ratio = s_oth / tl.where(e_t >= s_oth, e_t, 1.0)  # used only where e_t >= S' (then e_t >= 1/2): no overflow
    log_pt = tl.where(e_t >= s_oth, -_log1p(tl.minimum(ratio, 1.0)), (x_t - m) - log_s)
    p_t = tl.exp(log_pt)
    has_oth = s_oth > 0.0
    # Where S' underflows to 0, -1e30 stands in for log u: exp(gamma * -1e30) is 0 for gamma > 0 and 1 for gamma = 0.
    log_u = tl.where(has_oth, tl.log(tl.where(has_oth, s_oth, 1.0)) - log_s, -1.0e30)
    u = s_oth / s_all
    ug, g_eff = _modulating_factor(u, log_u, gamma, log_threshold, reduced_bound, REDUCED)
    if HAS_ALPHA:
        aw = tl.load(a_ptr + tt, mask=valid, other=0.0).to(tl.float32)
    else:
        aw = tl.full([BLOCK_N, 1, BLOCK_S], 1.0, tl.float32)
    if HAS_WEIGHT:
        aw = aw * tl.load(w_ptr + tt, mask=valid, other=0.0).to(tl.float32)
    aw = tl.where(valid, aw, 0.0)
    if POLY:
        ce = -log_pt
        if EPSILON_NONNEGATIVE:
            loss = aw * (ce + epsilon * u)
        else:
            loss = aw * ((1.0 + epsilon) * ce + (-epsilon) * _excess(ce))
    else:
        loss = -(aw * ug) * log_pt

    if REDUCE:
        tl.store(loss_ptr + pid, tl.sum(tl.where(row_mask, loss, 0.0)))
    else:
        tl.store(loss_ptr + n * S + s, loss, mask=row_mask)

    if COMPUTE_GRAD:
        if POLY:
            big_a = aw * u * ((1.0 + epsilon) - epsilon * u)
        else:
            big_a = aw * ug * (u - g_eff * p_t * log_pt)
        k = big_a / tl.where(has_oth, s_oth, 1.0)
        k = tl.where(has_oth, k, 0.0)
        g_row = grad_ptr + (n * C) * S + s  # grad is contiguous (N, C, S)
        if ONE_TILE:
            g = tl.where(is_t, -big_a, k * ex)
            tl.store(g_row + cr * S, g.to(grad_ptr.dtype.element_ty), mask=row_mask & cmask)
        else:
            for c0 in range(0, C, BLOCK_C):
                cc = c0 + cr
                cmask = cc < C
                xc = tl.load(x_row + cc * sxc, mask=row_mask & cmask, other=0.0).to(tl.float32)
                g = tl.where(cc == tt, -big_a, k * tl.exp(xc - m))
                tl.store(g_row + cc * S, g.to(grad_ptr.dtype.element_ty), mask=row_mask & cmask)


def _tile_shape(n: int, c: int, s: int) -> tuple[int, int, int]:
    """``(BLOCK_N, BLOCK_C, BLOCK_S)``: the class chunk first, then rows (spatial first, innermost in memory)."""
    block_c = min(_next_pow2(c), _MAX_BLOCK_C)
    rows = max(1, _TILE // block_c)
    block_s = min(_next_pow2(s), rows)
    block_n = min(_next_pow2(n), max(1, rows // block_s))
    return block_n, block_c, block_s


def forward(logits: torch.Tensor, targets: torch.Tensor, *, weight: torch.Tensor | None = None,
            alpha: torch.Tensor | None = None, gamma: float, ignore_index: int | None, reduce_sum: bool,
            compute_grad: bool, reduced_threshold: float = 0.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax focal loss over dim 1 and its gradient in one pass (Triton).

    Args:
        logits: float tensor (fp32 / fp16 / bf16) viewed as (N, C, S), class dim 1 as in ``F.cross_entropy``;
            any strides.
        targets: integer class indices of shape (N, *spatial), viewed (N, S). ``ignore_index`` (and any value outside
            [0, C)) marks a row with 0 loss and 0 gradient.
        weight, alpha: float32 tensors of shape (C,) on the logits' device, or None (1).
        gamma: focusing parameter, >= 0.
        ignore_index: target value of ignored rows; None: none (values outside [0, C) still give 0).
        reduce_sum: return the 0-d float32 sum of row losses instead of the (N, *spatial) losses. Deterministic:
            one fp32 partial per program, then a fixed-size ``torch.sum`` (float64 accumulation); no atomics.
        compute_grad: also return d loss_row / d logits. When False no gradient work is compiled in.
        reduced_threshold: th in (0, 1] for the reduced focal loss (factor ``((1 - p_t) / th)^gamma`` where
            ``p_t >= th``, 1 below), or 0 (off: the focal loss).

    Returns:
        ``(loss, grad)``: loss float32 of shape (N, *spatial) (or 0-d); grad of the logits' shape and dtype
        (contiguous) or None.

    Example:
        >>> x = torch.randn(4, 10, device="cuda")
        >>> t = torch.tensor([1, 0, -100, 9], device="cuda")
        >>> loss, grad = forward(x, t, weight=None, alpha=None, gamma=2.0, ignore_index=-100,
        ...                                    reduce_sum=False, compute_grad=True)
        >>> reduced, _ = forward(x, t, gamma=2.0, ignore_index=-100, reduce_sum=True, compute_grad=False,
        ...                      reduced_threshold=0.5)

    Reference:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, arXiv:1708.02002.
        Sergievskiy & Ponamarev, "Reduced Focal Loss: 1st Place Solution to xView object detection in Satellite
        Imagery", arXiv:1903.01347 (``reduced_threshold``).
    """
    return launch(logits, targets, weight=weight, alpha=alpha, gamma=gamma, ignore_index=ignore_index,
                  reduce_sum=reduce_sum, compute_grad=compute_grad, reduced_threshold=reduced_threshold)


def launch(logits: torch.Tensor, targets: torch.Tensor, *, weight: torch.Tensor | None, alpha: torch.Tensor | None,
           gamma: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool, reduced_threshold: float = 0.0,
           poly_epsilon: float | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the softmax kernel: the focal loss (:func:`forward`'s arguments), or with ``poly_epsilon`` the Poly-1
    cross-entropy (gamma and ``reduced_threshold`` must then be 0)."""
    shape = logits.shape
    device = logits.device
    n, c, s = ncs(shape)
    row_shape = (shape[0],) + tuple(shape[2:]) if len(shape) >= 2 else tuple(shape)

    if n * c * s == 0:
        loss = torch.zeros((), dtype=torch.float32, device=device) if reduce_sum else torch.zeros(
            row_shape, dtype=torch.float32, device=device)
        grad = torch.zeros(shape, dtype=logits.dtype, device=device) if compute_grad else None
        return loss, grad

    x3 = logits.reshape(n, c, s)
    t2 = targets.reshape(n, s)
    block_n, block_c, block_s = _tile_shape(n, c, s)
    n_sblocks = triton.cdiv(s, block_s)
    grid = (triton.cdiv(n, block_n) * n_sblocks,)

    if reduce_sum:
        loss_buf = torch.empty(grid[0], dtype=torch.float32, device=device)
    else:
        loss_buf = torch.empty((n, s), dtype=torch.float32, device=device)
    grad = torch.empty((n, c, s), dtype=logits.dtype, device=device) if compute_grad else None

    weight = weight.contiguous() if weight is not None else None
    alpha = alpha.contiguous() if alpha is not None else None
    log_threshold, reduced_bound = _reduced_scalars(reduced_threshold)
    with _device_guard(logits):
        _softmax_focal_fwd_kernel[grid](
            x3,
            t2,
            weight if weight is not None else x3,
            alpha if alpha is not None else x3,
            loss_buf,
            grad if grad is not None else loss_buf,
            n,
            c,
            s,
            *x3.stride(),
            *t2.stride(),
            float(gamma),
            log_threshold,
            reduced_bound,
            _NO_IGNORE if ignore_index is None else int(ignore_index),
            n_sblocks,
            0.0 if poly_epsilon is None else float(poly_epsilon),
            HAS_WEIGHT=weight is not None,
            HAS_ALPHA=alpha is not None,
            REDUCED=bool(reduced_threshold),
            POLY=poly_epsilon is not None,
            EPSILON_NONNEGATIVE=poly_epsilon is None or poly_epsilon >= 0,
            REDUCE=bool(reduce_sum),
            COMPUTE_GRAD=bool(compute_grad),
            ONE_TILE=_next_pow2(c) <= block_c,
            BLOCK_N=block_n,
            BLOCK_C=block_c,
            BLOCK_S=block_s,
            num_warps=_NUM_WARPS,
        )

    if reduce_sum:
        loss = loss_buf.sum(dtype=torch.float64).to(torch.float32)
    else:
        loss = loss_buf.reshape(row_shape)
    if grad is not None:
        grad = grad.reshape(shape)
    return loss, grad
