r"""Asymmetric Loss (multi-label) on the Triton back-end (op ``asymmetric``), fused forward + backward.

Per element, p = sigmoid(x), target y in [0, 1], probability margin m = ``clip`` >= 0, p_m = max(p - m, 0),
s+ = softplus(x), s- = softplus(-x) (Ridnik, Ben-Baruch et al. 2021):

.. math::

    L = y\, (1 - p)^{\gamma_+} (-\log p) + (1 - y)\, p_m^{\gamma_-} (-\log(1 - p_m)),

    \frac{dL_+}{dx} = -e^{-\gamma_+ s_+} (\gamma_+ p\, s_- + 1 - p),\qquad
    \frac{dL_-}{dx} = p_m^{\gamma_-}\, p (1 - p) \left[\gamma_-\, \frac{-\log(1 - p_m)}{p_m}
        + \frac{1}{(1 - p) + m}\right]\ (m > 0),

with 1 - p_m = (1 - p) + m (no cancellation), the ratio taken as its limit 1 at p_m = 0, and for m = 0
p^g- = exp(-g- s-), dL-/dx = exp(-g- s-) (g- (1 - p) s+ + p). ``detach_focal_weight`` (1.0 / 0.0) treats the focusing
weights as constants in the gradient. The semantics are those of :func:`focalkit.backends.pytorch.asymmetric.forward`;
the kernel is the shared elementwise one of :mod:`focalkit.backends.triton.logistic` (the margin and the detach
switch are compiled in).

Example:
    >>> x = torch.tensor([[2.0, -1.0, 0.5]], device="cuda"); y = torch.tensor([[1.0, 0.0, 0.0]], device="cuda")
    >>> loss, grad = forward(x, y, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, detach_focal_weight=0.0,
    ...                      ignore_index=None, reduce_sum=False, compute_grad=True)

Reference:
    T. Ridnik, E. Ben-Baruch, N. Zamir, A. Noy, I. Friedman, M. Protter, L. Zelnik-Manor. "Asymmetric Loss For
    Multi-Label Classification." ICCV 2021, arXiv:2009.14119 (section 3).
"""

from __future__ import annotations

import torch

from .logistic import launch

__all__ = ["forward"]


def forward(logits: torch.Tensor, targets: torch.Tensor, *, gamma_pos: float, gamma_neg: float, clip: float,
            detach_focal_weight: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-element asymmetric loss and its derivative in one pass (Triton), following the kernel contract.

    Args:
        logits: float tensor (fp32 / fp16 / bf16) of any shape.
        targets: float targets in [0, 1] of the logits' shape (multi-hot or soft).
        gamma_pos, gamma_neg: focusing exponents of the positive and negative terms, >= 0.
        clip: the probability margin m in [0, 1] (0: no shift).
        detach_focal_weight: 1.0 to treat the focusing weights as constants in the gradient, 0.0 for the exact one.
        ignore_index: unused (float targets only).
        reduce_sum, compute_grad: as in the kernel contract.

    Returns:
        ``(loss, grad)``: float32 losses (or their 0-d sum) and the gradient in the logits' dtype, or None.
    """
    return launch("asymmetric", logits, targets, scalars=(gamma_pos, gamma_neg, clip),
                  options=(clip > 0, detach_focal_weight != 0), ignore_index=None, reduce_sum=reduce_sum,
                  compute_grad=compute_grad)
