r"""Fused CPU soft-target softmax focal loss: loss and gradient in one pass of a compiled C kernel.

Implements the ``softmax_focal_soft`` op of the kernel contract (:mod:`focalkit.backends.contract`): class
probabilities, or class indices with label smoothing, on CPU tensors, by calling ``fk_softmax_soft_focal`` of
``csrc/focal_cpu.c`` through :mod:`ctypes`. For each row (column (n, :, s) of logits viewed as (N, C, S)), all in
float32, with q the targets smoothed as q (1 - ls) + ls / C and multiplied by the class weight w:

.. math::

    m = \max_k x_k,\quad S' = \sum_{k \ne \mathrm{top}} e^{x_k - m},\quad \log p_c = x_c - m - \log(1 + S'),\quad
    u_c = 1 - p_c\ (S' / (1 + S') \text{ for the largest class})

    L = \sum_c q_c w_c u_c^{\gamma} (-\log p_c),\qquad
    B_c = q_c w_c u_c^{\gamma} (1 - \gamma p_c \log p_c / u_c),\qquad
    \frac{\partial L}{\partial x_j} = p_j \sum_c B_c - B_j

(:math:`\log p_c / u_c \to -1` where u_c = 0). u of the largest class is formed from S' (never as 1 - p), so the
loss and gradient keep their accuracy when one class dominates; ``u^gamma`` is ``exp(gamma log max(u, FLT_MIN))``
(``u * u`` for gamma = 2; the PyTorch back-end clamps S' instead, a difference below FLT_MIN^gamma). One exp per logit. A NaN logit makes its row NaN; classes
whose weighted target is 0 add nothing (also where their log-probability is -inf). Ignored rows (``ignore_index``,
class-index targets) give 0 loss and 0 gradient; class indices outside [0, C) count as invalid and raise the
standard error when value checks are on.

The reduced focal loss (``reduced_threshold``) and inputs without rows or classes run on the PyTorch back-end
(:func:`focalkit.backends.pytorch.softmax.forward_soft`), the former chosen by the dispatcher (this back-end does not
declare the option), the latter from here.

Reference:
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection." ICCV 2017,
    arXiv:1708.02002 (the multi-class form of eq. 5, with soft targets).
    C. Szegedy et al. "Rethinking the Inception Architecture for Computer Vision." CVPR 2016 (label smoothing).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import InvalidArgumentError
from ..._targets import ncs
from . import library as cpu_lib
from .softmax import raise_counted_class_indices

__all__ = ["forward"]

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def forward(logits: Tensor, targets: Tensor, *, class_weight: Tensor | None = None, gamma: float,
            label_smoothing: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool,
            reduced_threshold: float = 0.0) -> tuple[Tensor, Tensor | None]:
    """Soft-target softmax focal loss per row and its gradient in one pass (kernel contract, fused CPU back-end).

    Args:
        logits: CPU float tensor (N, C) or (N, C, d1, ...) (fp32 / fp16 / bf16).
        targets: class probabilities of the logits' shape (any float dtype), or class indices (N,) / (N, d1, ...).
        class_weight: per-class (C,) multiplier (weight times alpha), or None.
        gamma: focusing parameter >= 0.
        label_smoothing: ls in [0, 1]: q becomes q (1 - ls) + ls / C.
        ignore_index: class-index value of rows to ignore, or None.
        reduce_sum: return the 0-d float32 sum (float64 block partials added in order).
        compute_grad: also return d loss / d logits (logits' shape and dtype); otherwise None and no gradient work.
        reduced_threshold: must be 0 here (the option runs on the PyTorch back-end).

    Returns:
        ``(loss, grad)``: float32 per-row losses of shape (N, d1, ...) (or a 0-d sum) and the gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, 0.5, -1.0]])
        >>> loss, grad = forward(x, torch.tensor([[0.8, 0.2, 0.0]]), gamma=2.0, label_smoothing=0.0,
        ...     ignore_index=None, reduce_sum=False, compute_grad=True)
    """
    shape = logits.shape
    n, c, s = ncs(shape)
    rows = n * s
    if rows == 0 or c == 0 or reduced_threshold:
        from ..pytorch.softmax import forward_soft

        return forward_soft(logits, targets, class_weight=class_weight, gamma=gamma, label_smoothing=label_smoothing,
                            ignore_index=ignore_index, reduce_sum=reduce_sum, compute_grad=compute_grad,
                            reduced_threshold=reduced_threshold)
    lib = cpu_lib.lib()
    x = logits.detach().contiguous()
    if targets.is_floating_point():
        t = targets.detach()
        if t.dtype not in _FLOAT_DTYPES:
            t = t.to(torch.float32)
        t = t.contiguous()
        if t.shape != shape:
            raise InvalidArgumentError(f"targets: expected class probabilities of shape {tuple(shape)}, got {tuple(t.shape)}")
        has_ignore = False
    else:
        t = targets.detach().to(torch.int64).contiguous()
        if t.numel() != rows:
            raise InvalidArgumentError(f"targets: expected {rows} class indices for logits of shape {tuple(shape)}, got {t.numel()}")
        has_ignore = ignore_index is not None
    wt = None
    if class_weight is not None:
        wt = class_weight.detach().to(device="cpu", dtype=torch.float32).contiguous().reshape(c)

    loss, grad, sums = cpu_lib.row_outputs((shape[0], *shape[2:]), x, rows, reduce_sum, compute_grad)
    xdt, tdt = cpu_lib.DTYPE_CODES[x.dtype], cpu_lib.DTYPE_CODES[t.dtype]
    ign = int(ignore_index) if has_ignore else 0
    xp, tp, wp = x.data_ptr(), t.data_ptr(), cpu_lib.address(wt)
    lp, gp, sp = cpu_lib.address(loss), cpu_lib.address(grad), cpu_lib.address(sums)
    g, ls = float(gamma), float(label_smoothing)

    stride = cpu_lib.scratch_stride(4 * c)  # 4 C floats per thread

    def work(start: int, end: int, threads: int, piece: int) -> int:
        scratch = cpu_lib.scratch_pointer(stride * threads)
        return lib.fk_softmax_soft_focal(xp, xdt, tp, tdt, wp, g, ls, ign, int(has_ignore), n, c, s, start, end, lp,
                                         gp, sp, scratch, stride, threads, piece)

    # parallelise over rows; a row costs about C elements of work
    bad = cpu_lib.parallel_for(rows, work, min_parallel=max(1, cpu_lib.MIN_PARALLEL // c))
    raise_counted_class_indices(targets, c, ignore_index if has_ignore else None, bad)
    if reduce_sum:
        loss = sums.total()
    return loss, grad
