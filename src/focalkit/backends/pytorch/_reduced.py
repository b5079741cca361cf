"""The reduced focal loss' modulating factor, shared by the sigmoid and softmax losses of this back-end.

Reduced focal loss (Sergievskiy & Ponamarev, "Reduced Focal Loss: 1st Place Solution to xView object detection in
Satellite Imagery", arXiv:1903.01347; segmentation_models_pytorch's ``reduced_threshold``): with threshold th in
(0, 1], the factor of the cross-entropy is

.. math::

    m(p_t) = \\begin{cases} ((1 - p_t) / th)^\\gamma & p_t \\ge th \\\\ 1 & p_t < th \\end{cases}

so well-classified examples are down-weighted as in the focal loss and the others keep the plain cross-entropy. Its
derivative is that of the focal factor with gamma where p_t >= th and of a constant below: callers compute the focal
loss' closed-form gradient with the *effective* gamma this module returns (gamma, or 0 below the threshold).

Example:
    >>> factor, gamma = reduced_factor(torch.tensor([0.1, 0.7]), 2.0, 0.5)
    >>> factor, gamma
    (tensor([0.0400, 1.0000]), tensor([2., 0.]))
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["reduced_factor"]


def reduced_factor(u: Tensor, gamma: float | Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """(m, effective gamma) for 1 - p_t = ``u`` (any shape; ``gamma`` a number or a tensor broadcastable to ``u``)."""
    reduced = u <= 1 - threshold  # p_t >= th
    gamma = torch.as_tensor(gamma, dtype=u.dtype, device=u.device)
    factor = torch.where(reduced, (u / threshold).pow(gamma), torch.ones_like(u))
    return factor, torch.where(reduced, gamma, torch.zeros_like(gamma))
