"""Equalized focal loss in PyTorch operations: the fused loss + gradient, and the differentiable composition.

:func:`forward` is the portable back-end of the ``equalized_focal`` op of the kernel contract
(:mod:`focalkit.backends.contract`): the sigmoid focal loss with a focusing factor gamma_j and a weighting factor
w_j per class j (dim 1), and, when asked, d loss_i / d x_i from the same pass, in float32 whatever the input dtype
(float64 for float64 logits). :func:`differentiable` is the same loss as log-space torch operations, which autograd
differentiates to any order (used for double backward).

Math (Li et al. 2022, arXiv:2201.02593; soft target y in [0, 1], p = sigmoid(x), class j of the element):

.. math::

    u = 1 - p_t = p (1 - y) + (1 - p) y, \\qquad
    \\mathrm{CE} = y\\, \\mathrm{softplus}(-x) + (1 - y)\\, \\mathrm{softplus}(x), \\qquad
    a_t = \\alpha^+_j y + \\alpha^-_j (1 - y)

    L = a_t\\, w_j\\, u^{\\gamma_j}\\, \\mathrm{CE}, \\qquad
    \\frac{\\partial L}{\\partial x} = a_t\\, w_j\\, u^{\\gamma_j}
        \\left[(p - y) + \\gamma_j (1 - 2y)\\, r\\, \\mathrm{CE}\\right],
    \\quad r = \\frac{p (1 - p)}{u} \\in [0, 1]\\ (0 \\text{ where } u = 0).

This is the closed form of the core sigmoid focal loss (:mod:`focalkit.backends.pytorch.sigmoid`) with gamma read
per class: the gradient has no :math:`u^{\\gamma_j - 1}` factor, p and 1 - p both come from e = exp(-|x|) without
subtraction, and the cross-entropy is a sum of non-negative softplus terms, so loss and gradient are finite at any
logit for every gamma_j >= 0 (0^0 = 1: a class with gamma_j = 0 is the alpha-weighted cross-entropy).
"""

from __future__ import annotations

from torch import Tensor

from . import sigmoid

__all__ = ["differentiable", "forward"]


def forward(logits: Tensor, targets: Tensor, *, gamma: Tensor, weight: Tensor | None = None,
            alpha_pos: Tensor | None = None, alpha_neg: Tensor | None = None, ignore_index: int | None,
            reduce_sum: bool, compute_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Per-element equalized focal loss and its derivative, following the kernel contract.

    Args:
        logits: float tensor (N, C, d1, ...).
        targets: float tensor of the logits' shape, or int64 class indices of shape (N, d1, ...) (C = background).
        gamma: per-class focusing factors gamma_j >= 0, shape (C,).
        weight: per-class weighting factors w_j >= 0, shape (C,), or None (1).
        alpha_pos, alpha_neg: per-class weights of positive / negative terms, shape (C,), or None (1).
        ignore_index: index-target value whose rows contribute nothing (None: no such value).
        reduce_sum: return the sum instead of per-element losses.
        compute_grad: also return d loss_i / d x_i (in the logits' dtype); otherwise None.

    Returns:
        ``(loss, grad)``: float32 loss (float64 for float64 logits; logits-shaped, or 0-d when ``reduce_sum``)
        and the gradient or None.

    Example:
        >>> x = torch.tensor([[2.0, -1.0]]); y = torch.tensor([[1.0, 0.0]])
        >>> loss, grad = forward(x, y, gamma=torch.tensor([2.0, 6.0]), weight=torch.tensor([1.0, 3.0]),
        ...                      ignore_index=None, reduce_sum=False, compute_grad=True)
        >>> grad.shape
        torch.Size([1, 2])
    """
    return sigmoid.forward(
        logits, targets, alpha_pos=alpha_pos, alpha_neg=alpha_neg, gamma=gamma, class_weight=weight,
        ignore_index=ignore_index, reduce_sum=reduce_sum, compute_grad=compute_grad,
    )


def differentiable(logits: Tensor, targets: Tensor, *, gamma: Tensor, weight: Tensor | None = None,
                   alpha_pos: Tensor | None = None, alpha_neg: Tensor | None = None,
                   ignore_index: int | None) -> Tensor:
    r"""Per-element equalized focal loss as a log-space composition that autograd differentiates to any order, with
    respect to the logits and to soft targets.

    .. math::

        \log u = \begin{cases} \log u & u > 10^{-30} \\
            -\mathrm{softplus}(x) \text{ if } y \ge 1/2,\ -\mathrm{softplus}(-x) \text{ otherwise} & \text{else}
            \end{cases},\qquad
        L = a_t\, w_j\, e^{\gamma_j \log u}\, [\, y\, \mathrm{softplus}(-x) + (1 - y)\, \mathrm{softplus}(x)\,]

    Every intermediate is finite for finite x, so first and second derivatives are finite at any logit and any
    gamma_j >= 0 (the composition of :func:`focalkit.backends.pytorch.sigmoid.differentiable` with gamma per class).

    Returns:
        float32 (float64 for float64 logits) losses of the logits' shape.

    Example:
        >>> x = torch.tensor([[30.0, -2.0]], dtype=torch.float64, requires_grad=True)
        >>> y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
        >>> loss = differentiable(x, y, gamma=torch.tensor([0.5, 10.0]), ignore_index=None)
        >>> h = torch.autograd.grad(torch.autograd.grad(loss.sum(), x, create_graph=True)[0].sum(), x)[0]
        >>> bool(torch.isfinite(h).all())
        True
    """
    return sigmoid.differentiable(
        logits, targets, alpha_pos=alpha_pos, alpha_neg=alpha_neg, gamma=gamma, class_weight=weight,
        ignore_index=ignore_index,
    )
