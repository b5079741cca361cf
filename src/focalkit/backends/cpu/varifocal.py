r"""Fused CPU Varifocal Loss: loss and gradient in one pass of the logistic-family kernel (op ``varifocal``).

Per element, p = sigmoid(x), target score q in [0, 1], label l (q > 0 unless given), w+ = q (``iou_weighted``) or 1,
all in float32 (``fk_varifocal_elem`` of ``csrc/focal_cpu.c``, the closed form of
:mod:`focalkit.backends.pytorch.varifocal`):

.. math::

    L = \left[l\, w_+ + (1 - l)\, \alpha\, p^\gamma\right] \mathrm{CE},\qquad
    \mathrm{CE} = q\,\mathrm{softplus}(-x) + (1 - q)\,\mathrm{softplus}(x),

    \frac{\partial L}{\partial x} = l\, w_+\, \mathrm{CE}' + (1 - l)\, \alpha\, p^\gamma
        \left[\gamma (1 - p)\, \mathrm{CE} + \mathrm{CE}'\right],\qquad \mathrm{CE}' = (1 - q)\, p - q\, (1 - p),

with p^gamma = exp(-gamma softplus(-x)): finite for every gamma >= 0 at any logit.

Reference:
    H. Zhang, Y. Wang, F. Dayoub, N. Sunderhauf, "VarifocalNet: An IoU-aware Dense Object Detector", CVPR 2021,
    arXiv:2008.13367, eq. (2).
"""

from __future__ import annotations

from torch import Tensor

from . import logistic

__all__ = ["forward"]


def forward(logits: Tensor, targets: Tensor, *, labels: Tensor | None = None, alpha: float, gamma: float,
            iou_weighted: float, ignore_index: int | None = None, reduce_sum: bool, compute_grad: bool
            ) -> tuple[Tensor, Tensor | None]:
    """Per-element varifocal loss and its derivative (kernel contract, fused CPU back-end).

    Args:
        logits: CPU float tensor (fp32 / fp16 / bf16) of any shape.
        targets: float target scores q in [0, 1] of the logits' shape.
        labels: per-element labels of the logits' shape (any real dtype), or None: positives are q > 0.
        alpha: weight of the negatives' term; gamma: exponent of p on negatives; iou_weighted: 1.0 weighs positives
            by q, 0.0 by 1.
        ignore_index: unused (dense targets only).
        reduce_sum, compute_grad: as in the kernel contract.

    Example:
        >>> x = torch.tensor([2.0, -1.0]); q = torch.tensor([0.8, 0.0])
        >>> loss, _ = forward(x, q, alpha=0.75, gamma=2.0, iou_weighted=1.0, reduce_sum=False, compute_grad=False)
        >>> loss
        tensor([0.4215, 0.0170])
    """
    return logistic.run("varifocal", logits, targets, params=(alpha, gamma, iou_weighted), element=labels,
                        reduce_sum=reduce_sum, compute_grad=compute_grad)
