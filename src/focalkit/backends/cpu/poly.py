r"""Fused CPU Poly-1 focal loss: loss and gradient in one pass of a compiled C kernel (op ``poly1_focal``).

Per element, p = sigmoid(x), target y in [0, 1], u = 1 - p_t = p (1 - y) + (1 - p) y, s+ = softplus(x),
s- = softplus(-x), a_t the alpha weight (1 without per-class alpha; the poly term is not alpha-weighted), all in
float32 (the closed form of :mod:`focalkit.backends.pytorch.poly`):

.. math::

    L = u^\gamma V,\quad V = y (a_t s_- + \epsilon (1 - p)) + (1 - y)(a_t s_+ + \epsilon p),

    \frac{\partial L}{\partial x} = u^\gamma \left[\gamma (1 - 2y)\, r\, V - y (1 - p)(a_t + \epsilon p)
      + (1 - y)\, p\, (a_t + \epsilon (1 - p))\right],\qquad r = p (1 - p) / u.

u^gamma = exp(gamma log u) with log u in closed form (as the sigmoid focal kernel forms it), so it is finite and
accurate at every logit. Two kernels, chosen by the sign of epsilon:

- epsilon >= 0 (the paper's classification setting, and the default): ``fk_poly1_focal``, the sigmoid focal
  kernel's loop plus the poly term, L = u^gamma (a_t CE + epsilon u) (a sum of non-negative terms), with its
  specialisations chosen per 256-element chunk: binary targets (no log of A = u / q, no division), gamma == 2
  (u^2 by a multiplication instead of an exp), per-class alpha or not. Its cost is that of the sigmoid focal loss.
- epsilon < 0 (detection, epsilon = -1): ``fk_poly1_elem`` of the logistic-family kernel, where
  a_t s + epsilon (1 - e^{-s}) is written (a_t + epsilon) s + (-epsilon) g(s) with g(s) = s - (1 - e^{-s}) >= 0
  (a Taylor series below s = 0.1), a sum of non-negative terms free of cancellation.

Reference:
    Z. Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions", ICLR 2022,
    arXiv:2204.12511 (Poly-1 focal loss).
"""

from __future__ import annotations

from torch import Tensor

from . import logistic

__all__ = ["forward"]


def forward(logits: Tensor, targets: Tensor, *, alpha_pos: Tensor | None = None, alpha_neg: Tensor | None = None,
            gamma: float, epsilon: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool
            ) -> tuple[Tensor, Tensor | None]:
    """Per-element Poly-1 focal loss and its derivative (kernel contract, fused CPU back-end).

    Args:
        logits: CPU float tensor (fp32 / fp16 / bf16) of any shape ((N, C, ...) with per-class alpha).
        targets: float targets in [0, 1] of the logits' shape.
        alpha_pos, alpha_neg: per-class weights (C,) of the focal term's positive / negative parts, or None (1).
        gamma: focusing parameter >= 0; epsilon: the Poly-1 coefficient, >= -1.
        ignore_index: unused (float targets only).
        reduce_sum, compute_grad: as in the kernel contract.

    Example:
        >>> x = torch.tensor([[2.0, -1.0]]); y = torch.tensor([[1.0, 0.0]])
        >>> loss, grad = forward(x, y, gamma=2.0, epsilon=1.0, ignore_index=None, reduce_sum=False,
        ...                      compute_grad=True)
        >>> loss
        tensor([[0.0035, 0.0421]])
    """
    return logistic.run("poly1_focal", logits, targets, params=(gamma, epsilon), alpha_pos=alpha_pos,
                        alpha_neg=alpha_neg, reduce_sum=reduce_sum, compute_grad=compute_grad,
                        poly1_sigmoid_kernel=epsilon >= 0)
