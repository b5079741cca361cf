r"""Varifocal Loss on the Triton back-end (op ``varifocal``), fused forward + backward.

Per element, p = sigmoid(x), target score q in [0, 1], label l (l = [q > 0] unless ``labels`` are given), w+ = q with
``iou_weighted`` (passed as 1.0 / 0.0) or 1 (Zhang et al. 2021, VarifocalNet, eq. 2; mmdetection ``varifocal_loss``;
YOLO-style with labels):

.. math::

    L = \left[l\, w_+ + (1 - l)\, \alpha\, p^\gamma\right] \mathrm{CE},\qquad
    \frac{\partial L}{\partial x} = l\, w_+\, \mathrm{CE}' + (1 - l)\, \alpha\, p^\gamma
        \left[\gamma (1 - p)\, \mathrm{CE} + \mathrm{CE}'\right],\quad \mathrm{CE}' = (1 - q)\, p - q\, (1 - p),

with p^gamma = exp(-gamma softplus(-x)): finite for every gamma >= 0 at any logit. The semantics are those of
:func:`focalkit.backends.pytorch.varifocal.forward`; the kernel is the shared elementwise one of
:mod:`focalkit.backends.triton.logistic`.

Example:
    >>> x = torch.tensor([2.0, -1.0], device="cuda"); q = torch.tensor([0.8, 0.0], device="cuda")
    >>> loss, grad = forward(x, q, alpha=0.75, gamma=2.0, iou_weighted=1.0, reduce_sum=False, compute_grad=True)

Reference:
    H. Zhang, Y. Wang, F. Dayoub, N. Sunderhauf. "VarifocalNet: An IoU-aware Dense Object Detector." CVPR 2021,
    arXiv:2008.13367 (eq. 2).
"""

from __future__ import annotations

import torch

from .logistic import launch

__all__ = ["forward"]


def forward(logits: torch.Tensor, targets: torch.Tensor, *, labels: torch.Tensor | None = None, alpha: float,
            gamma: float, iou_weighted: float, ignore_index: int | None = None, reduce_sum: bool,
            compute_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-element varifocal loss and its derivative in one pass (Triton), following the kernel contract.

    Args:
        logits: float tensor (fp32 / fp16 / bf16) of any shape.
        targets: float target scores q in [0, 1] of the logits' shape.
        labels: per-element labels of the logits' shape (bool, integer or float; values between 0 and 1
            interpolate), or None: positives are q > 0.
        alpha: weight of the negatives' term; gamma: exponent of p on negatives; iou_weighted: 1.0 weighs
            positives by q, 0.0 by 1.
        ignore_index: unused (dense targets only).
        reduce_sum, compute_grad: as in the kernel contract.

    Returns:
        ``(loss, grad)``: float32 losses (or their 0-d sum) and the gradient in the logits' dtype, or None.
    """
    return launch("varifocal", logits, targets, element=labels, scalars=(alpha, gamma, iou_weighted),
                  ignore_index=None, reduce_sum=reduce_sum, compute_grad=compute_grad)
