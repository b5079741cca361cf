r"""Poly-1 focal loss on the Triton back-end (op ``poly1_focal``), fused forward + backward.

Per element, p = sigmoid(x), target y in [0, 1], u = 1 - p_t = p (1 - y) + (1 - p) y, s+ = softplus(x),
s- = softplus(-x), a_t = alpha_pos[c] y + alpha_neg[c] (1 - y) (1 unless both are given; the poly term is not
alpha-weighted, as in the paper's code) (Leng et al. 2022, PolyLoss):

.. math::

    L = u^\gamma V,\quad V = y (a_t s_- + \epsilon (1 - p)) + (1 - y)(a_t s_+ + \epsilon p),

    \frac{\partial L}{\partial x} = u^\gamma \left[\gamma (1 - 2y)\, r\, V - y (1 - p)(a_t + \epsilon p)
      + (1 - y)\, p\, (a_t + \epsilon (1 - p))\right],\qquad r = p (1 - p) / u \in [0, 1].

For epsilon < 0, a s + epsilon (1 - e^{-s}) is (a + epsilon) s + (-epsilon) g(s), g(s) = s - (1 - e^{-s}) >= 0
(a Taylor series below s = 1, (s - 1) + e^{-s} above), and a + epsilon p is (a + epsilon) + (-epsilon)(1 - p): sums of
non-negative terms. u^gamma uses log u = -s- (y = 0) or -s+ (y = 1) in closed form. The semantics are those of
:func:`focalkit.backends.pytorch.poly.forward_focal`; the kernel is the shared elementwise one of
:mod:`focalkit.backends.triton.logistic` (the sign of epsilon is compiled in).

Example:
    >>> x = torch.tensor([[2.0, -1.0]], device="cuda"); y = torch.tensor([[1.0, 0.0]], device="cuda")
    >>> loss, grad = forward(x, y, gamma=2.0, epsilon=1.0, ignore_index=None, reduce_sum=False, compute_grad=True)

Reference:
    Z. Leng, M. Tan, C. Liu, E. D. Cubuk, X. Shi, S. Cheng, D. Anguelov. "PolyLoss: A Polynomial Expansion
    Perspective of Classification Loss Functions." ICLR 2022, arXiv:2204.12511 (Poly-1 focal loss).
"""

from __future__ import annotations

import torch

from .logistic import launch

__all__ = ["forward"]


def forward(logits: torch.Tensor, targets: torch.Tensor, *, alpha_pos: torch.Tensor | None = None,
            alpha_neg: torch.Tensor | None = None, gamma: float, epsilon: float, ignore_index: int | None,
            reduce_sum: bool, compute_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-element Poly-1 focal loss and its derivative in one pass (Triton), following the kernel contract.

    Args:
        logits: float tensor (fp32 / fp16 / bf16) of any shape ((N, C, ...) with per-class alpha).
        targets: float targets in [0, 1] of the logits' shape.
        alpha_pos, alpha_neg: per-class weights (C,) of the focal term's positive / negative parts, or None (1).
        gamma: focusing parameter >= 0; epsilon: the Poly-1 coefficient, >= -1.
        ignore_index: unused (float targets only).
        reduce_sum, compute_grad: as in the kernel contract.

    Returns:
        ``(loss, grad)``: float32 losses (or their 0-d sum) and the gradient in the logits' dtype, or None.
    """
    return launch("poly", logits, targets, alpha_pos=alpha_pos, alpha_neg=alpha_neg, scalars=(gamma, epsilon),
                  options=(epsilon >= 0, False), ignore_index=None, reduce_sum=reduce_sum, compute_grad=compute_grad)
