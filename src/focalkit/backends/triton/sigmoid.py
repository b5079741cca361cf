"""Triton kernel for the sigmoid focal loss, fused forward + backward.

Implements the ``sigmoid_focal`` op of the kernel contract (:mod:`focalkit.backends.contract`). Per element ``(x, y)``:

.. math::

    p = \\sigma(x),\\quad u = 1 - p_t = p (1 - y) + (1 - p) y,\\quad
    \\mathrm{CE} = (1 - y)\\,\\mathrm{softplus}(x) + y\\,\\mathrm{softplus}(-x),

    L = a_t\\, u^{\\gamma}\\, \\mathrm{CE},\\qquad
    \\frac{\\partial L}{\\partial x} = a_t\\, u^{\\gamma}\\,[(p - y) + \\gamma (1 - 2y)\\, r\\, \\mathrm{CE}],
    \\quad r = p (1 - p) / u \\in [0, 1],

with ``a_t = alpha_pos[c] y + alpha_neg[c] (1 - y)``. Everything is computed in float32 from
``e = exp(-|x|)`` and ``log1p(e)``; ``u^gamma`` is ``exp(gamma * log u)`` with ``log u`` formed in log space
(``log p = -softplus(-x)``, ``log(1 - p) = -softplus(x)``), so no probability is ever clamped, rounded to 1 and then
raised to a power: values and gradients are finite for every ``gamma >= 0`` and every finite ``x``.

Reduced focal loss (``reduced_threshold`` th in (0, 1]; Sergievskiy & Ponamarev 2019): the factor ``u^gamma``
becomes

.. math::

    m(u) = \\begin{cases} (u / th)^{\\gamma} = e^{\\gamma (\\log u - \\log th)} & u \\le 1 - th\\ (p_t \\ge th) \\\\
                            1 & \\text{otherwise} \\end{cases}

and the gradient is the one above with ``u^gamma`` replaced by ``m(u)`` and ``gamma`` by the *effective* gamma
(``gamma`` where ``p_t >= th``, 0 below: the plain cross-entropy's gradient there). A compile-time switch leaves
the kernel without the option unchanged.

Two target kinds share one kernel (a ``tl.constexpr`` switch):

- dense float targets of the logits' shape (soft, in [0, 1]): the log-space form above;
- integer class indices of shape (N, *spatial): ``y[n, c, s] = (targets[n, s] == c)``, value ``C`` = background
  (all negative), ``ignore_index`` = the whole column (n, :, s) gets 0 loss and 0 gradient. With a binary target the
  closed form ``s = 2y - 1``, ``z = s x``, ``L = a_t sigmoid(-z)^g softplus(-z)``,
  ``dL/dx = -s a_t sigmoid(-z)^g [g sigmoid(z) softplus(-z) + sigmoid(-z)]`` is used (cheaper, same accuracy).

Layout: the logits are viewed as (N, C, S) with arbitrary strides (``reshape`` is a view for every tensor whose trailing
dims can be merged, e.g. any contiguous or channels-last-free slice; otherwise torch copies). Each program owns a
3-D tile ``[BLOCK_N, BLOCK_C, BLOCK_S]``; the program id is split into (n-block, c-block, s-block) with scalar
arithmetic, so no per-element integer division is needed. For S == 1 (detection logits (N, C)) the tile is
``[rows, classes, 1]``; for S > 1 it is mostly ``[1, classes, spatial]`` with the spatial (usually stride-1) dim
innermost. All offsets are int64.

Reference:
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection." ICCV 2017,
    arXiv:1708.02002 (eq. 5 and Appendix B).
    N. Sergievskiy, A. Ponamarev. "Reduced Focal Loss: 1st Place Solution to xView object detection in Satellite
    Imagery." arXiv:1903.01347, 2019 (the reduced focal loss).
"""

from __future__ import annotations

import contextlib
import math

import torch
import triton
import triton.language as tl

from ..._targets import ncs

__all__ = ["forward"]

# Elements per program (power of two). 2048 fp32 elements with 8 warps = 8 per thread on a GPU; in the interpreter a
# large tile also means fewer Python-level program launches.
_TILE = 2048
_NUM_WARPS = 8
# ignore_index=None (no column ignored) is passed as the smallest int64, which no valid target can equal.
_NO_IGNORE = -(2**63)


def _next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def _tile_shape(n: int, c: int, s: int, tile: int) -> tuple[int, int, int]:
    """Split ``tile`` elements into ``(BLOCK_N, BLOCK_C, BLOCK_S)``: spatial (innermost in memory) first."""
    block_s = min(_next_pow2(s), tile)
    block_c = min(_next_pow2(c), max(1, tile // block_s))
    block_n = min(_next_pow2(n), max(1, tile // (block_s * block_c)))
    return block_n, block_c, block_s


@triton.jit
def _log1p(v):
    """log(1 + v) for v in [0, 1], accurate to a few ulp (Goldberg's trick; needs no libdevice)."""
    w = 1.0 + v
    d = w - 1.0
    return tl.where(d == 0.0, v, tl.log(w) * (v / tl.where(d == 0.0, 1.0, d)))


@triton.jit
def _modulating_factor(u, log_u, gamma, log_threshold, reduced_bound, REDUCED: tl.constexpr):
    """(m, effective gamma) for 1 - p_t = ``u``: ``(exp(gamma log u), gamma)``, or with ``REDUCED``
    ``(exp(gamma (log u - log th)), gamma)`` where ``u <= reduced_bound = 1 - th`` and ``(1, 0)`` elsewhere.

    ``gamma = 0`` gives exactly 1 (``exp(0)``); ``log u`` must be finite (callers put a large negative number in
    place of log 0, which gives m = 0 for gamma > 0)."""
    if REDUCED:
        reduced = u <= reduced_bound
        factor = tl.where(reduced, tl.exp(gamma * (log_u - log_threshold)), 1.0)
        effective_gamma = tl.where(reduced, gamma, 0.0)
    else:
        factor = tl.exp(gamma * log_u)
        effective_gamma = gamma
    return factor, effective_gamma


def _reduced_scalars(reduced_threshold: float) -> tuple[float, float]:
    """The kernels' ``(log th, 1 - th)`` for threshold ``th`` in (0, 1]; ``(0, 0)`` when the option is off (0)."""
    if not reduced_threshold:
        return 0.0, 0.0
    return math.log(reduced_threshold), 1.0 - reduced_threshold


@triton.jit
def _sigmoid_focal_fwd_kernel(
    x_ptr,
    y_ptr,
    apos_ptr,
    aneg_ptr,
    loss_ptr,
    grad_ptr,
    N,
    C,
    S,
    sxn,
    sxc,
    sxs,
    syn,
    syc,
    sys_,
    gamma,
    log_threshold,
    reduced_bound,
    ignore_index,
    n_cblocks,
    n_sblocks,
    INDEX_TARGETS: tl.constexpr,
    HAS_APOS: tl.constexpr,
    HAS_ANEG: tl.constexpr,
    REDUCED: tl.constexpr,
    REDUCE: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    sb = pid % n_sblocks
    rest = pid // n_sblocks
    cb = rest % n_cblocks
    nb = rest // n_cblocks

    n = (nb * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64))[:, None, None]
    c1 = cb * BLOCK_C + tl.arange(0, BLOCK_C).to(tl.int64)
    c = c1[None, :, None]
    s = (sb * BLOCK_S + tl.arange(0, BLOCK_S).to(tl.int64))[None, None, :]
    row_mask = (n < N) & (s < S)
    mask = row_mask & (c < C)

    x = tl.load(x_ptr + n * sxn + c * sxc + s * sxs, mask=mask, other=0.0).to(tl.float32)

    # Shared building blocks, all from e = exp(-|x|): no overflow, no cancellation.
    e = tl.exp(-tl.abs(x))
    l1 = _log1p(e)
    inv = 1.0 / (1.0 + e)
    sig_pos = tl.where(x >= 0, inv, e * inv)  # sigmoid(x)  = p
    sig_neg = tl.where(x >= 0, e * inv, inv)  # sigmoid(-x) = 1 - p
    sp_pos = tl.maximum(x, 0.0) + l1  # softplus(x)  = -log(1 - p)
    sp_neg = tl.maximum(-x, 0.0) + l1  # softplus(-x) = -log(p)

    if HAS_APOS:
        a_pos = tl.load(apos_ptr + c1, mask=c1 < C, other=1.0).to(tl.float32)[None, :, None]
    else:
        a_pos = 1.0
    if HAS_ANEG:
        a_neg = tl.load(aneg_ptr + c1, mask=c1 < C, other=1.0).to(tl.float32)[None, :, None]
    else:
        a_neg = 1.0

    if INDEX_TARGETS:
        t = tl.load(y_ptr + n * syn + s * sys_, mask=row_mask, other=ignore_index)
        pos = t == c
        keep = mask & (t != ignore_index)
        a_t = tl.where(keep, tl.where(pos, a_pos, a_neg), 0.0)
        ce = tl.where(pos, sp_neg, sp_pos)  # softplus(-z)
        u = tl.where(pos, sig_neg, sig_pos)  # sigmoid(-z) = 1 - p_t
        v = tl.where(pos, sig_pos, sig_neg)  # sigmoid(z)  = p_t
        log_u = -tl.where(pos, sp_pos, sp_neg)  # -softplus(z), finite
        ug, g_eff = _modulating_factor(u, log_u, gamma, log_threshold, reduced_bound, REDUCED)
        wl = a_t * ug
        loss = wl * ce
        if COMPUTE_GRAD:
            g0 = wl * (g_eff * v * ce + u)
            grad = tl.where(pos, -g0, g0)
    else:
        y = tl.load(y_ptr + n * syn + c * syc + s * sys_, mask=mask, other=0.0).to(tl.float32)
        a_t = tl.where(mask, a_pos * y + a_neg * (1.0 - y), 0.0)
        ym = 1.0 - y
        # log u = logaddexp(log p + log(1 - y), log(1 - p) + log y); a zero weight gives -inf, never both.
        la = tl.where(ym > 0.0, tl.log(tl.where(ym > 0.0, ym, 1.0)) - sp_neg, float("-inf"))
        lb = tl.where(y > 0.0, tl.log(tl.where(y > 0.0, y, 1.0)) - sp_pos, float("-inf"))
        lm = tl.maximum(la, lb)
        lm = tl.where(lm == float("-inf"), 0.0, lm)  # only for targets outside [0, 1]; keeps lanes NaN-free
        log_u = lm + _log1p(tl.exp(tl.minimum(la, lb) - lm))
        u = sig_pos * ym + sig_neg * y  # only compared with 1 - th (reduced); the factor is taken from log u
        ug, g_eff = _modulating_factor(u, log_u, gamma, log_threshold, reduced_bound, REDUCED)
        wl = a_t * ug
        ce = ym * sp_pos + y * sp_neg
        loss = wl * ce
        if COMPUTE_GRAD:
            r = tl.minimum(tl.exp(-log_u - sp_pos - sp_neg), 1.0)  # p (1 - p) / u
            p_minus_y = sig_pos * ym - sig_neg * y
            grad = wl * (p_minus_y + g_eff * (1.0 - 2.0 * y) * r * ce)

    out_off = (n * C + c) * S + s
    if REDUCE:
        tl.store(loss_ptr + pid, tl.sum(tl.where(mask, loss, 0.0)))
    else:
        tl.store(loss_ptr + out_off, loss, mask=mask)
    if COMPUTE_GRAD:
        tl.store(grad_ptr + out_off, grad.to(grad_ptr.dtype.element_ty), mask=mask)


def _device_guard(t: torch.Tensor):
    """Launch on the tensor's GPU (Triton launches on the current device); no-op for CPU tensors (interpreter)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()



def forward(logits: torch.Tensor, targets: torch.Tensor, *, alpha_pos: torch.Tensor | None = None,
            alpha_neg: torch.Tensor | None = None, gamma: float, ignore_index: int | None, reduce_sum: bool,
            compute_grad: bool, reduced_threshold: float = 0.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sigmoid focal loss and its gradient in one pass (Triton).

    Args:
        logits: float tensor (fp32 / fp16 / bf16) viewed as (N, C, S): N = shape[0], C = shape[1] (1 when
            ndim < 2), S = product of the remaining dims. Any strides.
        targets: float of the logits' shape (soft targets in [0, 1]; bool is accepted as 0 / 1), or an integer
            tensor of shape (N, *spatial) holding class indices: ``c`` marks class c positive, ``C`` = background,
            ``ignore_index`` = ignored column (0 loss, 0 gradient).
        alpha_pos, alpha_neg: float32 tensors of shape (C,) on the logits' device, or None (weight 1).
            ``a_t = alpha_pos[c] y + alpha_neg[c] (1 - y)``.
        gamma: focusing parameter, >= 0.
        ignore_index: class index of ignored columns (index targets only); None: nothing is ignored.
        reduce_sum: return the 0-d float32 sum instead of per-element losses. Deterministic: one fp32 partial per
            program, then a fixed-size ``torch.sum`` (float64 accumulation) of the partials; no atomics.
        compute_grad: also return d loss_i / d x_i. When False no gradient work is compiled in.
        reduced_threshold: th in (0, 1] for the reduced focal loss (factor ``((1 - p_t) / th)^gamma`` where
            ``p_t >= th``, 1 below), or 0 (off: the focal loss).

    Returns:
        ``(loss, grad)``: loss is float32, logits-shaped (or 0-d when ``reduce_sum``); grad has the logits' shape and
        dtype (contiguous), or is None when ``compute_grad`` is False.

    Example:
        >>> x = torch.tensor([[-2.0, 3.0]], device="cuda")
        >>> t = torch.tensor([1], device="cuda")  # class 1 positive, class 0 negative
        >>> loss, grad = forward(x, t, alpha_pos=None, alpha_neg=None, gamma=2.0,
        ...                                    ignore_index=-100, reduce_sum=False, compute_grad=True)
        >>> reduced, _ = forward(x, t, gamma=2.0, ignore_index=None, reduce_sum=True, compute_grad=False,
        ...                      reduced_threshold=0.5)

    Reference:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, arXiv:1708.02002.
        Sergievskiy & Ponamarev, "Reduced Focal Loss: 1st Place Solution to xView object detection in Satellite
        Imagery", arXiv:1903.01347 (``reduced_threshold``).
    """
    shape = logits.shape
    device = logits.device
    n, c, s = ncs(shape)
    total = n * c * s
    index_targets = not (targets.is_floating_point() or targets.dtype == torch.bool)

    if total == 0:
        loss = torch.zeros((), dtype=torch.float32, device=device) if reduce_sum else torch.zeros(
            shape, dtype=torch.float32, device=device)
        grad = torch.zeros(shape, dtype=logits.dtype, device=device) if compute_grad else None
        return loss, grad

    x3 = logits.reshape(n, c, s)
    if index_targets:
        y3 = targets.reshape(n, s)
        syn, syc, sys_ = y3.stride(0), 0, y3.stride(1)
    else:
        if targets.dtype == torch.bool:
            targets = targets.to(logits.dtype)
        y3 = targets.reshape(n, c, s)
        syn, syc, sys_ = y3.stride()

    block_n, block_c, block_s = _tile_shape(n, c, s, _TILE)
    n_nblocks = triton.cdiv(n, block_n)
    n_cblocks = triton.cdiv(c, block_c)
    n_sblocks = triton.cdiv(s, block_s)
    grid = (n_nblocks * n_cblocks * n_sblocks,)

    if reduce_sum:
        loss_buf = torch.empty(grid[0], dtype=torch.float32, device=device)
    else:
        loss_buf = torch.empty((n, c, s), dtype=torch.float32, device=device)
    grad = torch.empty((n, c, s), dtype=logits.dtype, device=device) if compute_grad else None

    alpha_pos = alpha_pos.contiguous() if alpha_pos is not None else None
    alpha_neg = alpha_neg.contiguous() if alpha_neg is not None else None
    log_threshold, reduced_bound = _reduced_scalars(reduced_threshold)
    with _device_guard(logits):
        _sigmoid_focal_fwd_kernel[grid](
            x3,
            y3,
            alpha_pos if alpha_pos is not None else x3,
            alpha_neg if alpha_neg is not None else x3,
            loss_buf,
            grad if grad is not None else loss_buf,
            n,
            c,
            s,
            *x3.stride(),
            syn,
            syc,
            sys_,
            float(gamma),
            log_threshold,
            reduced_bound,
            _NO_IGNORE if ignore_index is None else int(ignore_index),
            n_cblocks,
            n_sblocks,
            INDEX_TARGETS=index_targets,
            HAS_APOS=alpha_pos is not None,
            HAS_ANEG=alpha_neg is not None,
            REDUCED=bool(reduced_threshold),
            REDUCE=bool(reduce_sum),
            COMPUTE_GRAD=bool(compute_grad),
            BLOCK_N=block_n,
            BLOCK_C=block_c,
            BLOCK_S=block_s,
            num_warps=_NUM_WARPS,
        )

    if reduce_sum:
        loss = loss_buf.sum(dtype=torch.float64).to(torch.float32)
    else:
        loss = loss_buf.reshape(shape)
    if grad is not None:
        grad = grad.reshape(shape)
    return loss, grad
