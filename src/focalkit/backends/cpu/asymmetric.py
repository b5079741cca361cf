r"""Fused CPU multi-label Asymmetric Loss: loss and gradient in one pass of the logistic-family kernel
(op ``asymmetric``).

Per element, p = sigmoid(x), target y in [0, 1], margin m >= 0, p_m = max(p - m, 0), s+ = softplus(x),
s- = softplus(-x), all in float32 (``fk_asymmetric_elem`` and ``fk_asymmetric_binary_elem`` of
``csrc/focal_cpu.c``, the closed form of :mod:`focalkit.backends.pytorch.asymmetric`):

.. math::

    L = y\, (1 - p)^{\gamma_+} s_- + (1 - y)\, p_m^{\gamma_-} (-\log(1 - p_m)),

    \frac{\partial L}{\partial x} = -y\, e^{-\gamma_+ s_+} (\gamma_+ p\, s_- + 1 - p)
        + (1 - y)\, p_m^{\gamma_-} p (1 - p) \left[\gamma_-\, \frac{-\log(1 - p_m)}{p_m} + \frac{1}{(1 - p) + m}\right]

(for m = 0 the negative part is e^{-\gamma_- s_-} (\gamma_- (1 - p) s_+ + p)); 1 - p_m = (1 - p) + m, -log(1 - p_m)
is -log1p(-p_m) where 1 - p_m > sqrt(1/2) (log(1 - p_m) from its exponent and mantissa elsewhere), the ratio takes
its limit 1 at p_m = 0, and ``detach_focal_weight`` treats both focusing weights as constants in the gradient.

The kernel runs loops compiled for what a call needs: clip m > 0 or not, gamma_+ = 0 (no positive weight) or not,
gamma_- an integer up to 15 (p_m^gamma_- by multiplications, and gamma_- p_m^(gamma_- - 1) in the gradient) or not;
for gamma_+ = 0, m > 0 and the exact gradient (the paper's setting), chunks of 256 elements whose targets are all
0 or 1 take a loop with one logarithm per element (-log p for y = 1, -log(1 - p_m) for y = 0) and gamma_- in 0..8
as a compile-time power. All give the numbers of the general loop up to float32 rounding.

Reference:
    T. Ridnik, E. Ben-Baruch et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021, arXiv:2009.14119,
    section 3.
"""

from __future__ import annotations

from torch import Tensor

from . import logistic

__all__ = ["forward"]


def forward(logits: Tensor, targets: Tensor, *, gamma_pos: float, gamma_neg: float, clip: float,
            detach_focal_weight: float, ignore_index: int | None, reduce_sum: bool, compute_grad: bool
            ) -> tuple[Tensor, Tensor | None]:
    """Per-element asymmetric loss and its derivative (kernel contract, fused CPU back-end).

    Args:
        logits: CPU float tensor (fp32 / fp16 / bf16) of any shape.
        targets: float targets in [0, 1] of the logits' shape.
        gamma_pos, gamma_neg: focusing exponents of the positive and negative terms, >= 0.
        clip: the probability margin m in [0, 1] (0: no shift).
        detach_focal_weight: 1.0 to treat the focusing weights as constants in the gradient, 0.0 for the exact one.
        ignore_index: unused (float targets only).
        reduce_sum, compute_grad: as in the kernel contract.

    Example:
        >>> x = torch.tensor([[2.0, -1.0, 0.5]]); y = torch.tensor([[1.0, 0.0, 0.0]])
        >>> loss, grad = forward(x, y, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, detach_focal_weight=0.0,
        ...                      ignore_index=None, reduce_sum=False, compute_grad=True)
        >>> loss
        tensor([[0.1269, 0.0006, 0.0913]])
    """
    return logistic.run("asymmetric", logits, targets, params=(gamma_pos, gamma_neg, clip, detach_focal_weight),
                        reduce_sum=reduce_sum, compute_grad=compute_grad)
