"""Fused CPU sigmoid focal loss: loss and gradient in one pass of a compiled C kernel.

Implements the ``sigmoid_focal`` op of the kernel contract (:mod:`focalkit.backends.contract`) on CPU tensors by calling
``fk_sigmoid_focal`` of ``csrc/focal_cpu.c`` through :mod:`ctypes` (see :mod:`focalkit.backends.cpu.library`). Per
element (x, y), all in float32, from e = exp(-|x|), l = log1p(e), q = 1 / (1 + e):

.. math::

    p = \\sigma(x),\\quad u = 1 - p_t = p (1 - y) + (1 - p) y,\\quad
    \\mathrm{CE} = \\max(x, 0) - x y + \\log(1 + e^{-|x|}),\\quad a_t = \\alpha^+_c y + \\alpha^-_c (1 - y)

    L = a_t\\, u^{\\gamma}\\, \\mathrm{CE},\\qquad
    \\frac{\\partial L}{\\partial x} = a_t\\, u^{\\gamma}\\,[(p - y) + \\gamma (1 - 2y)\\, r\\, \\mathrm{CE}],
    \\quad r = p (1 - p) / u.

``u`` is formed as ``q * A`` with ``A = e y + (1 - y)`` for x >= 0 (``e (1 - y) + y`` for x < 0) and
``log u = log A - l`` (``log A = -|x|`` exactly when the target lies on the predicted side), so ``u^gamma =
exp(gamma log u)`` is finite and accurate at every finite logit and gamma >= 0; no probability is clamped.
Reduced focal loss (``reduced_threshold`` th in (0, 1]): the factor becomes ``(u / th)^gamma = exp(gamma (log u -
log th))`` where ``u <= 1 - th`` (p_t >= th) and 1 elsewhere, where the gradient is the cross-entropy's (gamma taken
as 0 in the formula above). It runs in its own compiled variants of the loop, so the plain focal loss is unchanged.

When every target of a 256-element chunk is exactly 0 or 1 (always for class-index targets) one log and one
division are skipped. Underflow: values below 2^-126 are flushed to 0 (e.g. the loss of x = -90, y = 0).

Memory: reads logits and targets once, writes the gradient (logits' dtype) and, unless ``reduce_sum``, the float32
per-element loss; the sum needs one float64 per 4096 elements.

Reference:
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection." ICCV 2017,
    arXiv:1708.02002 (eq. 5 and Appendix B).
    N. Sergievskiy, A. Ponamarev. "Reduced Focal Loss: 1st Place Solution to xView object detection in Satellite
    Imagery." arXiv:1903.01347, 2019.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import InvalidArgumentError
from ..._checks import check_class_indices, check_unit_interval_values
from ..._targets import ncs
from ...value_checks import value_checks_enabled
from ..contract import GRADIENT_ONLY
from . import library as cpu_lib

__all__ = ["forward"]

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)




def _bad_targets(targets: Tensor, c: int, ignore_index: int | None, count: int) -> InvalidArgumentError:
    if targets.is_floating_point():
        expected = "float targets in [0, 1]"
    else:
        expected = f"class indices in [0, {c}]" + (f" or ignore_index={ignore_index}" if ignore_index is not None else "")
    return InvalidArgumentError(f"targets: expected {expected}, got {count} value(s) outside (found by the CPU kernel)")


def _alpha_vec(a: Tensor | None, c: int) -> Tensor:
    if a is None:
        return torch.ones(c, dtype=torch.float32)
    if a.dtype == torch.float32 and a.is_cpu and a.dim() == 1 and a.size(0) == c and a.is_contiguous():
        return a  # the usual case, without four no-op conversions (only its data pointer is read)
    return a.detach().to(device="cpu", dtype=torch.float32).contiguous().reshape(c)


def forward(logits: Tensor, targets: Tensor, *, alpha_pos: Tensor | None = None, alpha_neg: Tensor | None = None,
            gamma: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool | str, reduced_threshold: float = 0.0
) -> tuple[Tensor, Tensor | None]:
    """Sigmoid focal loss and d loss_i / d x_i in one pass (kernel contract, fused CPU back-end).

    Args:
        logits: CPU float tensor (fp32 / fp16 / bf16), viewed as (N, C, S); made contiguous if it is not.
        targets: float tensor of the logits' shape (soft, in [0, 1]) or integer class indices of shape (N, *spatial);
            index C means background (all negative), ``ignore_index`` zeroes the whole (n, :, s) column.
        alpha_pos, alpha_neg: float32 (C,) weights of positive / negative terms, or None (weight 1).
        gamma: focusing parameter >= 0.
        ignore_index: index-target value to ignore, or None.
        reduce_sum: return the 0-d float32 sum (deterministic: float64 block partials added in order).
        compute_grad: also return the gradient in the logits' dtype; otherwise None and no gradient work.
            ``GRADIENT_ONLY``: the gradient alone (the kernel forms no loss; None in its place).
        reduced_threshold: th in (0, 1] for the reduced focal loss (factor ((1 - p_t) / th)^gamma where p_t >= th,
            1 below), or 0 (off).

    Returns:
        ``(loss, grad)``: float32 logits-shaped loss (or 0-d sum) and the logits-shaped gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, -1.0]]); y = torch.tensor([[1.0, 0.0]])
        >>> loss, grad = forward(x, y, alpha_pos=None, alpha_neg=None, gamma=2.0,
        ...     ignore_index=None, reduce_sum=True, compute_grad=True)
    """
    kernel = cpu_lib.lib().fk_sigmoid_focal
    x = logits.contiguous()  # only its data pointer is read (no autograd history is recorded on it)
    shape = x.shape
    n, c, s = ncs(shape)
    total = n * c * s
    floating = targets.is_floating_point()
    if floating:
        t = targets if targets.dtype in _FLOAT_DTYPES else targets.detach().to(torch.float32)
        t = t.contiguous() if t.shape == shape else t.expand(shape).contiguous()
    else:
        t = targets.detach().to(torch.int64).contiguous()
        if t.numel() != n * s:
            raise InvalidArgumentError(f"targets: expected {n * s} class indices for logits of shape {tuple(shape)}, got {t.numel()}")
    ap = an = None
    if alpha_pos is not None or alpha_neg is not None:
        ap, an = _alpha_vec(alpha_pos, c), _alpha_vec(alpha_neg, c)

    gradient_only = compute_grad == GRADIENT_ONLY  # the kernel then forms no loss at all
    loss = None if reduce_sum or gradient_only else torch.empty(shape, dtype=torch.float32)
    grad = torch.empty_like(x, memory_format=torch.contiguous_format) if compute_grad else None
    sums = cpu_lib.block_sums(total, reduce_sum and not gradient_only)
    has_ignore = ignore_index is not None and not floating
    address = cpu_lib.address
    head = (x.data_ptr(), cpu_lib.DTYPE_CODES[x.dtype], t.data_ptr(), cpu_lib.DTYPE_CODES[t.dtype], address(ap),
            address(an), float(gamma), float(reduced_threshold), int(ignore_index) if has_ignore else 0,
            int(has_ignore), n, c, s)
    outputs = (address(loss), address(grad), address(sums))

    def work(start: int, end: int, threads: int, piece: int) -> int:
        return kernel(*head, start, end, *outputs, threads, piece)

    bad = cpu_lib.parallel_for(total, work)
    if bad and value_checks_enabled(targets):  # with value checks off, out-of-range rows count as background / 0
        if targets.is_floating_point():  # the standard message, from a host scan that runs only on failure
            check_unit_interval_values("targets", targets)
        else:
            check_class_indices("targets", targets, 0, c, ignore_index if has_ignore else None)
        raise _bad_targets(targets, c, ignore_index if has_ignore else None, bad)
    if sums is not None:
        loss = sums.total()
    return loss, grad
