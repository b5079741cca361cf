r"""Gaussian focal loss from logits on the Triton back-end (op ``gaussian_focal``), fused forward + backward.

Per element, heatmap target y in [0, 1], peaks where y == 1 exactly, s+ = softplus(x) = -log(1 - p),
s- = softplus(-x) = -log p (Law & Deng 2018, CornerNet eq. 1; Zhou et al. 2019, CenterNet; mmdetection
``gaussian_focal_loss`` with its ``alpha``, and its ``gamma`` named ``beta``):

.. math::

    L = [y = 1]\, e^{-\alpha s_+} s_- + [y < 1]\,(1 - y)^\beta e^{-\alpha s_-} s_+,

    \frac{\partial L}{\partial x} = -[y = 1]\,(1 - p)^\alpha (\alpha\, p\, s_- + 1 - p)
        + [y < 1]\,(1 - y)^\beta p^\alpha (\alpha (1 - p)\, s_+ + p),

finite at every logit for every alpha, beta >= 0 (``0^0 = 1``). The semantics are those of
:func:`focalkit.backends.pytorch.gaussian.forward`; the kernel is the shared elementwise one of
:mod:`focalkit.backends.triton.logistic`.

Example:
    >>> x = torch.tensor([2.0, -1.0], device="cuda"); y = torch.tensor([1.0, 0.5], device="cuda")
    >>> loss, grad = forward(x, y, alpha=2.0, beta=4.0, reduce_sum=False, compute_grad=True)

Reference:
    H. Law, J. Deng. "CornerNet: Detecting Objects as Paired Keypoints." ECCV 2018, arXiv:1808.01244 (eq. 1).
"""

from __future__ import annotations

import torch

from .logistic import launch

__all__ = ["forward"]


def forward(logits: torch.Tensor, targets: torch.Tensor, *, alpha: float, beta: float,
            ignore_index: int | None = None, reduce_sum: bool, compute_grad: bool
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-element Gaussian focal loss from logits and its derivative in one pass (Triton).

    Args:
        logits: float tensor (fp32 / fp16 / bf16) of any shape.
        targets: float heatmap targets in [0, 1] of the logits' shape (1 exactly at the peaks).
        alpha: exponent of the probability factors; beta: exponent of (1 - y) off the peaks. Both >= 0.
        ignore_index: unused (dense targets only).
        reduce_sum, compute_grad: as in the kernel contract.

    Returns:
        ``(loss, grad)``: float32 losses (or their 0-d sum) and the gradient in the logits' dtype, or None.
    """
    return launch("gaussian", logits, targets, scalars=(alpha, beta), ignore_index=None, reduce_sum=reduce_sum,
                  compute_grad=compute_grad)
