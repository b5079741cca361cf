"""One Triton kernel for the elementwise sigmoid losses of the family, fused forward + backward.

The quality focal, varifocal, Gaussian focal (from logits), asymmetric (multi-label) and Poly-1 focal losses are
all ``L(x, y) = w(p, y) * h(x, y)`` per element with ``p = sigmoid(x)``. They share one kernel,
:func:`_logistic_loss_kernel`, whose ``LOSS`` (a ``tl.constexpr`` string) picks the per-loss weight and derivative;
everything else is computed once per element, in float32, from ``e = exp(-|x|)``:

.. math::

    p = \\sigma(x),\\quad 1 - p = \\sigma(-x),\\quad s_+ = \\mathrm{softplus}(x) = -\\log(1 - p),\\quad
    s_- = \\mathrm{softplus}(-x) = -\\log p,\\quad \\mathrm{CE} = y\\, s_- + (1 - y)\\, s_+,

with ``p`` and ``1 - p`` formed without a subtraction and ``s_+``, ``s_-`` as sums of non-negative terms
(``max(+-x, 0) + log1p(e)``), so nothing overflows or cancels at any finite logit. Powers of probabilities are
``exp(exponent * log(.))`` with the log in closed form (``-s_+``, ``-s_-``) wherever the PyTorch back-end uses one,
and ``0^0 = 1``. The per-loss formulas (value and closed-form derivative) are those of the PyTorch back-end's
``forward`` of each op (:mod:`focalkit.backends.pytorch.quality`, ``.varifocal``, ``.gaussian``, ``.asymmetric``,
``.poly``), which document them with their papers; the ``_<loss>`` helpers below follow them line by line.

Targets: dense float targets of the logits' shape (any float dtype; bool as 0 / 1), or integer class indices of shape
(N, *spatial) (``y[n, c, s] = (targets[n, s] == c)``, value ``C`` = background, ``ignore_index`` = the whole column
gets 0 loss and 0 gradient). One optional per-element argument (``element``) travels with its own strides: the
per-row quality scores of index targets (class stride 0: ``y = score`` in the labelled column) or the varifocal labels
(logits-shaped).

Layout, tiling and reduction are those of :mod:`focalkit.backends.triton.sigmoid`: logits viewed as (N, C, S) with
any strides, one 3-D tile ``[BLOCK_N, BLOCK_C, BLOCK_S]`` per program, int64 offsets, and ``reduce_sum`` as one fp32
partial per program summed in float64 on the host (deterministic, no atomics).

Example:
    >>> x = torch.tensor([[2.0, -1.0]], device="cuda"); y = torch.tensor([[0.9, 0.0]], device="cuda")
    >>> loss, grad = launch("quality", x, y, scalars=(2.0,), ignore_index=None, reduce_sum=False,
    ...                     compute_grad=True)

Reference:
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection." ICCV 2017,
    arXiv:1708.02002 (the stable sigmoid forms, Appendix B); each loss's own paper is cited in its module.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..._targets import ncs
from ...errors import argument_error
from .sigmoid import _NO_IGNORE, _NUM_WARPS, _TILE, _device_guard, _log1p, _tile_shape

__all__ = ["LOSSES", "launch"]

# The kernel's LOSS codes (a compile-time string each).
LOSSES = ("quality", "varifocal", "gaussian", "asymmetric", "poly")


# --------------------------------------------------------------------------------------------- shared helpers
@triton.jit
def _power(base, exponent):
    """base^exponent for base >= 0 as exp(exponent * log(base)), with 0^0 = 1 and 0^e = 0 for e > 0."""
    positive = base > 0.0
    value = tl.exp(exponent * tl.log(tl.where(positive, base, 1.0)))
    return tl.where(exponent == 0.0, 1.0, tl.where(positive, value, 0.0))


@triton.jit
def _saturate(v, limit):
    """Clamp to [-limit, limit]; a NaN stays NaN (comparisons, not min / max)."""
    return tl.where(v > limit, limit, tl.where(v < -limit, -limit, v))


@triton.jit
def _excess(s):
    """g(s) = s - (1 - exp(-s)) >= 0 for s >= 0 without cancellation.

    s < 1: s^2 sum_{k=2..13} (-1)^k s^(k - 2) / k! (truncation below 2e-10 relative); s >= 1: (s - 1) + exp(-s),
    two non-negative terms.
    """
    t = tl.where(s < 1.0, s, 0.0)
    acc = -1.6059043836821613e-10
    acc = acc * t + 2.08767569878681e-09
    acc = acc * t - 2.505210838544172e-08
    acc = acc * t + 2.755731922398589e-07
    acc = acc * t - 2.7557319223985893e-06
    acc = acc * t + 2.48015873015873e-05
    acc = acc * t - 0.0001984126984126984
    acc = acc * t + 0.001388888888888889
    acc = acc * t - 0.008333333333333333
    acc = acc * t + 0.041666666666666664
    acc = acc * t - 0.16666666666666666
    acc = acc * t + 0.5
    return tl.where(s < 1.0, t * t * acc, (s - 1.0) + tl.exp(-s))


@triton.jit
def _poly_term(a, s, one_minus_exp, epsilon, EPSILON_NONNEGATIVE: tl.constexpr):
    """a s + epsilon (1 - e^{-s}); for epsilon < 0 as (a + epsilon) s + (-epsilon) g(s), non-negative terms."""
    if EPSILON_NONNEGATIVE:
        term = a * s + epsilon * one_minus_exp
    else:
        term = (a + epsilon) * s + (-epsilon) * _excess(s)
    return term


# --------------------------------------------------------------------------------------------- per-loss terms
@triton.jit
def _quality(y, p, q, sp_pos, sp_neg, ce, beta, grad_limit, COMPUTE_GRAD: tl.constexpr):
    """|y - p|^beta CE and its derivative (Generalized Focal Loss, eq. 5); see pytorch.quality.forward."""
    d = y * q - (1.0 - y) * p  # y - p without the rounding of 1 - p
    abs_d = tl.abs(d)
    zero = y == 0.0
    one = y == 1.0
    hard = zero | one
    representable = abs_d > 1e-30  # semantics.LOG_SPACE_BELOW
    live = representable | hard
    closed = tl.where(zero, -sp_neg, -sp_pos)  # log p (y = 0), log(1 - p) (y = 1)
    log_abs_d = tl.where(representable, tl.log(tl.where(representable, abs_d, 1.0)), tl.where(hard, closed, 0.0))
    zero_power = tl.where(beta == 0.0, 1.0, 0.0)
    loss = tl.where(live, tl.exp(beta * log_abs_d), zero_power) * ce
    grad = loss
    if COMPUTE_GRAD:
        sign = tl.where(zero, -1.0, tl.where(one, 1.0, tl.where(d > 0.0, 1.0, tl.where(d < 0.0, -1.0, 0.0))))
        sign = tl.where(live, sign, 0.0)
        magnitude = tl.exp((beta + 1.0) * log_abs_d)
        # |d|^(beta - 1) p (1 - p) CE in one exponential; 0 where CE = 0
        has_ce = ce > 0.0
        cusp = beta * tl.exp((beta - 1.0) * log_abs_d - sp_neg - sp_pos + tl.log(tl.where(has_ce, ce, 1.0)))
        magnitude = magnitude + tl.where((beta != 0.0) & has_ce, cusp, 0.0)
        grad = _saturate(-sign * magnitude, grad_limit)  # beta < 1, p -> y: saturate rather than overflow
    return loss, grad


@triton.jit
def _varifocal(y, label, p, q, sp_neg, ce, alpha, gamma, iou_weighted, COMPUTE_GRAD: tl.constexpr):
    """[l w+ + (1 - l) alpha p^gamma] CE and its derivative (VarifocalNet, eq. 2); see pytorch.varifocal.forward."""
    positive_weight = label * (iou_weighted * y + (1.0 - iou_weighted))
    negative_weight = (1.0 - label) * alpha * tl.exp(-gamma * sp_neg)  # p^gamma = exp(-gamma s-)
    loss = (positive_weight + negative_weight) * ce
    grad = loss
    if COMPUTE_GRAD:
        d_ce = (1.0 - y) * p - y * q  # p - y without cancellation at y in {0, 1}
        grad = positive_weight * d_ce + negative_weight * (gamma * q * ce + d_ce)
    return loss, grad


@triton.jit
def _gaussian(y, p, q, sp_pos, sp_neg, alpha, beta, COMPUTE_GRAD: tl.constexpr):
    """CornerNet's heatmap focal loss from logits and its derivative; see pytorch.gaussian.forward."""
    peak = y == 1.0
    negative_weight = tl.where(peak, 0.0, _power(tl.where(peak, 1.0, 1.0 - y), beta))  # (1 - y)^beta off peaks
    q_alpha = tl.exp(-alpha * sp_pos)  # (1 - p)^alpha
    p_alpha = tl.exp(-alpha * sp_neg)  # p^alpha
    peak_f = tl.where(peak, 1.0, 0.0)
    loss = peak_f * q_alpha * sp_neg + negative_weight * p_alpha * sp_pos
    grad = loss
    if COMPUTE_GRAD:
        grad = negative_weight * p_alpha * (alpha * q * sp_pos + p) - peak_f * q_alpha * (alpha * p * sp_neg + q)
    return loss, grad


@triton.jit
def _asymmetric(y, p, q, sp_pos, sp_neg, gamma_pos, gamma_neg, clip, CLIP: tl.constexpr, DETACH: tl.constexpr,
                COMPUTE_GRAD: tl.constexpr):
    """Multi-label asymmetric loss (Ridnik et al. 2021) and its derivative; see pytorch.asymmetric.forward."""
    weight_pos = tl.exp(-gamma_pos * sp_pos)  # (1 - p)^gamma_pos
    loss_pos = weight_pos * sp_neg
    if CLIP:
        shifted = p - clip
        live = shifted > 0.0
        p_m = tl.where(live, shifted, 0.0)
        q_m = q + clip  # 1 - p_m where p > m
        # -log1p(-p_m) for p_m < 1/2 (Goldberg's log1p is exact for arguments in (-1/2, 0]), else -log(1 - p_m)
        neg_ce = tl.where(p_m < 0.5, -_log1p(-tl.minimum(p_m, 0.5)), -tl.log(q_m))
        weight_neg = tl.where(live, _power(p_m, gamma_neg), 0.0)
    else:
        q_m = q
        neg_ce = sp_pos
        weight_neg = tl.exp(-gamma_neg * sp_neg)  # p^gamma_neg
    loss = y * loss_pos + (1.0 - y) * weight_neg * neg_ce
    grad = loss
    if COMPUTE_GRAD:
        pq = p * q
        if DETACH:
            grad_pos = -weight_pos * q
            if CLIP:
                grad_neg = weight_neg * (pq / q_m)
            else:
                grad_neg = weight_neg * p
        else:
            grad_pos = -weight_pos * (gamma_pos * p * sp_neg + q)
            if CLIP:
                ratio = tl.where(p_m > 0.0, neg_ce / tl.where(p_m > 0.0, p_m, 1.0), 1.0)  # limit 1 at p_m = 0
                grad_neg = weight_neg * pq * (gamma_neg * ratio + 1.0 / q_m)
            else:
                grad_neg = weight_neg * (gamma_neg * q * sp_pos + p)
        grad = y * grad_pos + (1.0 - y) * grad_neg
    return loss, grad


@triton.jit
def _poly(y, a_t, p, q, sp_pos, sp_neg, gamma, epsilon, EPSILON_NONNEGATIVE: tl.constexpr,
          COMPUTE_GRAD: tl.constexpr):
    """Poly-1 focal loss u^gamma [a_t CE + epsilon u] (Leng et al. 2022) and its derivative; see
    pytorch.poly.forward_focal."""
    u = p * (1.0 - y) + q * y  # 1 - p_t
    # log u in closed form for hard targets (finite at any logit); soft targets keep u >= min(p, 1 - p)
    log_u = tl.where(y == 0.0, -sp_neg, tl.where(y == 1.0, -sp_pos, tl.log(tl.where(u > 0.0, u, 1.0))))
    modulating = tl.where((y == 0.0) | (y == 1.0) | (u > 0.0), tl.exp(gamma * log_u), 0.0)
    modulating = tl.where(gamma == 0.0, 1.0, modulating)
    value = (y * _poly_term(a_t, sp_neg, q, epsilon, EPSILON_NONNEGATIVE)
             + (1.0 - y) * _poly_term(a_t, sp_pos, p, epsilon, EPSILON_NONNEGATIVE))
    loss = modulating * value
    grad = loss
    if COMPUTE_GRAD:
        r = tl.where(u > 0.0, p * q / tl.where(u > 0.0, u, 1.0), 0.0)  # p (1 - p) / u in [0, 1]
        if EPSILON_NONNEGATIVE:
            slope_pos = a_t + epsilon * p
            slope_neg = a_t + epsilon * q
        else:
            slope_pos = (a_t + epsilon) + (-epsilon) * q
            slope_neg = (a_t + epsilon) + (-epsilon) * p
        d_value = (1.0 - y) * p * slope_neg - y * q * slope_pos
        grad = modulating * (gamma * (1.0 - 2.0 * y) * r * value + d_value)
    return loss, grad


# --------------------------------------------------------------------------------------------- the kernel
@triton.jit
def _logistic_loss_kernel(
    x_ptr, y_ptr, element_ptr, apos_ptr, aneg_ptr, loss_ptr, grad_ptr,
    N, C, S,
    sxn, sxc, sxs,
    syn, syc, sys_,
    sen, sec, ses,
    s0, s1, s2,
    grad_limit,
    ignore_index,
    n_cblocks, n_sblocks,
    LOSS: tl.constexpr,
    INDEX_TARGETS: tl.constexpr,
    HAS_ELEMENT: tl.constexpr,
    HAS_ALPHA: tl.constexpr,
    OPTION_A: tl.constexpr,
    OPTION_B: tl.constexpr,
    REDUCE: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """One [BLOCK_N, BLOCK_C, BLOCK_S] tile of per-element losses (or their partial sum) and gradients.

    ``s0, s1, s2`` are the loss's scalars in its op's order; ``OPTION_A`` / ``OPTION_B`` its compile-time switches
    (asymmetric: clip > 0 / detach; poly: epsilon >= 0); ``grad_limit`` the logits dtype's largest finite value.
    """
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

    # Shared logistic parts, from e = exp(-|x|): no overflow, no cancellation.
    e = tl.exp(-tl.abs(x))
    l1 = _log1p(e)
    inv = 1.0 / (1.0 + e)
    p = tl.where(x >= 0, inv, e * inv)  # sigmoid(x)
    q = tl.where(x >= 0, e * inv, inv)  # sigmoid(-x) = 1 - p
    sp_pos = tl.maximum(x, 0.0) + l1  # softplus(x)  = -log(1 - p)
    sp_neg = tl.maximum(-x, 0.0) + l1  # softplus(-x) = -log p

    if HAS_ELEMENT:
        element = tl.load(element_ptr + n * sen + c * sec + s * ses, mask=mask, other=0.0).to(tl.float32)
    else:
        element = 1.0
    if INDEX_TARGETS:
        t = tl.load(y_ptr + n * syn + s * sys_, mask=row_mask, other=ignore_index)
        pos = t == c
        keep = mask & (t != ignore_index)
        # where, not a product: the element value (a score) of a background or ignored row never enters the loss
        y = tl.where(pos, element, 0.0)
    else:
        y = tl.load(y_ptr + n * syn + c * syc + s * sys_, mask=mask, other=0.0).to(tl.float32)
        keep = mask
    ce = y * sp_neg + (1.0 - y) * sp_pos

    if LOSS == "quality":
        loss, grad = _quality(y, p, q, sp_pos, sp_neg, ce, s0, grad_limit, COMPUTE_GRAD)
    elif LOSS == "varifocal":
        if HAS_ELEMENT:
            label = element
        else:
            label = tl.where(y > 0.0, 1.0, 0.0)
        loss, grad = _varifocal(y, label, p, q, sp_neg, ce, s0, s1, s2, COMPUTE_GRAD)
    elif LOSS == "gaussian":
        loss, grad = _gaussian(y, p, q, sp_pos, sp_neg, s0, s1, COMPUTE_GRAD)
    elif LOSS == "asymmetric":
        loss, grad = _asymmetric(y, p, q, sp_pos, sp_neg, s0, s1, s2, OPTION_A, OPTION_B, COMPUTE_GRAD)
    else:  # "poly" (launch admits only the LOSSES)
        if HAS_ALPHA:
            a_pos = tl.load(apos_ptr + c1, mask=c1 < C, other=1.0).to(tl.float32)[None, :, None]
            a_neg = tl.load(aneg_ptr + c1, mask=c1 < C, other=1.0).to(tl.float32)[None, :, None]
            a_t = a_pos * y + a_neg * (1.0 - y)
        else:
            a_t = 1.0
        loss, grad = _poly(y, a_t, p, q, sp_pos, sp_neg, s0, s1, OPTION_A, COMPUTE_GRAD)

    out_off = (n * C + c) * S + s
    loss = tl.where(keep, loss, 0.0)
    if REDUCE:
        tl.store(loss_ptr + pid, tl.sum(tl.where(mask, loss, 0.0)))
    else:
        tl.store(loss_ptr + out_off, loss, mask=mask)
    if COMPUTE_GRAD:
        grad = tl.where(keep, grad, 0.0)
        tl.store(grad_ptr + out_off, grad.to(grad_ptr.dtype.element_ty), mask=mask)


# --------------------------------------------------------------------------------------------- host side
def _as_loadable(t: torch.Tensor) -> torch.Tensor:
    """bool tensors as uint8 (a view, no copy): Triton loads them as 0 / 1 bytes."""
    return t.view(torch.uint8) if t.dtype == torch.bool else t


def launch(loss: str, logits: torch.Tensor, targets: torch.Tensor, *, element: torch.Tensor | None = None,
           alpha_pos: torch.Tensor | None = None, alpha_neg: torch.Tensor | None = None,
           scalars: tuple[float, ...], options: tuple[bool, bool] = (False, False), ignore_index: int | None,
           reduce_sum: bool, compute_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the elementwise kernel for one loss; the contract's ``(loss, grad)``.

    Args:
        loss: one of :data:`LOSSES` (``"quality"``, ``"varifocal"``, ``"gaussian"``, ``"asymmetric"``, ``"poly"``).
        logits: float tensor (fp32 / fp16 / bf16) viewed as (N, C, S): N = shape[0], C = shape[1] (1 when
            ndim < 2), S = the product of the remaining dims. Any strides.
        targets: float (or bool) targets of the logits' shape, or integer class indices of shape (N, *spatial)
            (``C`` = background, ``ignore_index`` = ignored column).
        element: the per-element argument, or None: with index targets the per-row values of shape (N, *spatial)
            placed in the labelled column (quality scores), with dense targets a logits-shaped tensor (labels).
        alpha_pos, alpha_neg: per-class weights (C,) read by ``"poly"`` when both are given.
        scalars: the loss's float hyper-parameters (at most three), in the order of its op's ``scalar_args``
            (asymmetric: ``detach_focal_weight`` travels in ``options``).
        options: two compile-time switches of the loss (asymmetric: clip > 0, detach; poly: epsilon >= 0).
        ignore_index: index-target value of ignored columns, or None.
        reduce_sum, compute_grad: as in the kernel contract.

    Returns:
        ``(loss, grad)``: float32 logits-shaped losses (or their 0-d sum) and the gradient in the logits' shape and
        dtype (contiguous), or None.
    """
    if loss not in LOSSES:
        raise argument_error("loss", f"one of {', '.join(LOSSES)}", repr(loss))
    shape = logits.shape
    device = logits.device
    n, c, s = ncs(shape)
    index_targets = not (targets.is_floating_point() or targets.dtype == torch.bool)

    if n * c * s == 0:
        loss_out = torch.zeros((), dtype=torch.float32, device=device) if reduce_sum else torch.zeros(
            shape, dtype=torch.float32, device=device)
        return loss_out, (torch.zeros(shape, dtype=logits.dtype, device=device) if compute_grad else None)

    x3 = logits.reshape(n, c, s)
    if index_targets:
        y3 = targets.reshape(n, s)
        y_strides = (y3.stride(0), 0, y3.stride(1))
    else:
        y3 = _as_loadable(targets).reshape(n, c, s)
        y_strides = y3.stride()
    if element is None:
        e3, e_strides = x3, (0, 0, 0)
    elif index_targets:
        e3 = _as_loadable(element).reshape(n, s)
        e_strides = (e3.stride(0), 0, e3.stride(1))
    else:
        e3 = _as_loadable(element).reshape(n, c, s)
        e_strides = e3.stride()
    has_alpha = alpha_pos is not None and alpha_neg is not None
    alpha_pos = alpha_pos.contiguous() if has_alpha else None
    alpha_neg = alpha_neg.contiguous() if has_alpha else None

    block_n, block_c, block_s = _tile_shape(n, c, s, _TILE)
    n_cblocks = triton.cdiv(c, block_c)
    n_sblocks = triton.cdiv(s, block_s)
    grid = (triton.cdiv(n, block_n) * n_cblocks * n_sblocks,)
    loss_buf = torch.empty(grid[0] if reduce_sum else (n, c, s), dtype=torch.float32, device=device)
    grad = torch.empty((n, c, s), dtype=logits.dtype, device=device) if compute_grad else None
    s0, s1, s2 = (tuple(float(v) for v in scalars) + (0.0, 0.0, 0.0))[:3]

    with _device_guard(logits):
        _logistic_loss_kernel[grid](
            x3, y3, e3,
            alpha_pos if has_alpha else x3, alpha_neg if has_alpha else x3,
            loss_buf, grad if grad is not None else loss_buf,
            n, c, s,
            *x3.stride(), *y_strides, *e_strides,
            s0, s1, s2,
            float(torch.finfo(logits.dtype).max),
            _NO_IGNORE if ignore_index is None else int(ignore_index),
            n_cblocks, n_sblocks,
            LOSS=loss,
            INDEX_TARGETS=index_targets,
            HAS_ELEMENT=element is not None,
            HAS_ALPHA=has_alpha,
            OPTION_A=bool(options[0]),
            OPTION_B=bool(options[1]),
            REDUCE=bool(reduce_sum),
            COMPUTE_GRAD=bool(compute_grad),
            BLOCK_N=block_n,
            BLOCK_C=block_c,
            BLOCK_S=block_s,
            num_warps=_NUM_WARPS,
        )

    loss_out = loss_buf.sum(dtype=torch.float64).to(torch.float32) if reduce_sum else loss_buf.reshape(shape)
    return loss_out, (None if grad is None else grad.reshape(shape))
