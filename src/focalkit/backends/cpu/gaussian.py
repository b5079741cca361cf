r"""Fused CPU Gaussian focal loss from logits: loss and gradient in one pass of the logistic-family kernel
(op ``gaussian_focal``).

Per element, p = sigmoid(x), heatmap target y in [0, 1] with peaks where y == 1 exactly, s+ = softplus(x),
s- = softplus(-x), all in float32 (``fk_gaussian_elem`` of ``csrc/focal_cpu.c``, the closed form of
:mod:`focalkit.backends.pytorch.gaussian`):

.. math::

    L = [y = 1]\, e^{-\alpha s_+} s_- + [y < 1]\,(1 - y)^\beta e^{-\alpha s_-} s_+,

    \frac{\partial L}{\partial x} = -[y = 1]\,(1 - p)^\alpha (\alpha\, p\, s_- + 1 - p)
        + [y < 1]\,(1 - y)^\beta p^\alpha (\alpha (1 - p)\, s_+ + p),

finite at every logit for every alpha, beta >= 0 ((1 - y)^0 = 1).

Reference:
    H. Law, J. Deng, "CornerNet: Detecting Objects as Paired Keypoints", ECCV 2018, arXiv:1808.01244, eq. (1);
    X. Zhou, D. Wang, P. Krahenbuhl, "Objects as Points", 2019, arXiv:1904.07850.
"""

from __future__ import annotations

from torch import Tensor

from . import logistic

__all__ = ["forward"]


def forward(logits: Tensor, targets: Tensor, *, alpha: float, beta: float, ignore_index: int | None = None,
            reduce_sum: bool, compute_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Per-element Gaussian focal loss from logits and its derivative (kernel contract, fused CPU back-end).

    Args:
        logits: CPU float tensor (fp32 / fp16 / bf16) of any shape.
        targets: float heatmap targets in [0, 1] of the logits' shape.
        alpha: exponent of the focusing terms; beta: exponent of the penalty reduction (1 - y)^beta.
        ignore_index: unused (dense targets only).
        reduce_sum, compute_grad: as in the kernel contract.

    Example:
        >>> x = torch.tensor([2.0, -1.0]); y = torch.tensor([1.0, 0.5])
        >>> loss, grad = forward(x, y, alpha=2.0, beta=4.0, reduce_sum=False, compute_grad=True)
        >>> loss
        tensor([0.0018, 0.0014])
    """
    return logistic.run("gaussian_focal", logits, targets, params=(alpha, beta), reduce_sum=reduce_sum,
                        compute_grad=compute_grad)
