r"""Quality Focal Loss on the Triton back-end (op ``quality_focal``), fused forward + backward.

Per element, p = sigmoid(x), quality target y in [0, 1], d = y - p = y (1 - p) - (1 - y) p (Li et al. 2020,
"Generalized Focal Loss", eq. 5; mmdetection ``quality_focal_loss``):

.. math::

    L = |d|^\beta\, \mathrm{CE},\qquad \mathrm{CE} = y\,\mathrm{softplus}(-x) + (1 - y)\,\mathrm{softplus}(x),

    \frac{\partial L}{\partial x} = -\mathrm{sign}(d) \left[|d|^{\beta + 1}
        + \beta\, e^{(\beta - 1) \log|d| + \log p + \log(1 - p) + \log \mathrm{CE}}\right].

log|d| is log p (y = 0) or log(1 - p) (y = 1) in closed form; a soft target with |d| <= 1e-30 counts as d = 0
(``0^0 = 1``); for beta < 1 the cusp at p -> y saturates at the logits dtype's largest finite value. These are the
semantics of :func:`focalkit.backends.pytorch.quality.forward`; the kernel is the shared elementwise one of
:mod:`focalkit.backends.triton.logistic`.

Example:
    >>> x = torch.tensor([[2.0, -1.0]], device="cuda"); y = torch.tensor([[0.9, 0.0]], device="cuda")
    >>> loss, grad = forward(x, y, beta=2.0, ignore_index=None, reduce_sum=False, compute_grad=True)

Reference:
    X. Li, W. Wang, L. Wu, S. Chen, X. Hu, J. Li, J. Tang, J. Yang. "Generalized Focal Loss: Learning Qualified and
    Distributed Bounding Boxes for Dense Object Detection." NeurIPS 2020, arXiv:2006.04388 (eq. 5).
"""

from __future__ import annotations

import torch

from .logistic import launch

__all__ = ["forward"]


def forward(logits: torch.Tensor, targets: torch.Tensor, *, scores: torch.Tensor | None = None, beta: float,
            ignore_index: int | None, reduce_sum: bool, compute_grad: bool
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-element quality focal loss and its derivative in one pass (Triton), following the kernel contract.

    Args:
        logits: float tensor (fp32 / fp16 / bf16) of shape (N, C, d1, ...), or any shape for float targets.
        targets: float quality targets in [0, 1] of the logits' shape, or int64 class indices (N, d1, ...) with
            C = background and ``ignore_index`` rows contributing nothing.
        scores: with index targets, the quality of each row's labelled class, shape (N, d1, ...); None gives 1.
        beta: the exponent of |y - p|, >= 0.
        ignore_index: index-target value of ignored rows, or None.
        reduce_sum, compute_grad: as in the kernel contract.

    Returns:
        ``(loss, grad)``: float32 losses of the logits' shape (or their 0-d sum) and the gradient in the logits'
        shape and dtype, or None.
    """
    index_targets = not (targets.is_floating_point() or targets.dtype == torch.bool)
    return launch("quality", logits, targets, element=scores if index_targets else None, scalars=(beta,),
                  ignore_index=ignore_index, reduce_sum=reduce_sum, compute_grad=compute_grad)
