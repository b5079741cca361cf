"""The logistic quantities of the sigmoid-based detection losses, in stable closed forms (no autograd needed).

From e = exp(-|x|): p = sigmoid(x) and 1 - p = sigmoid(-x) without subtraction (both keep full relative accuracy in
the tails), and the two softplus terms -log(1 - p) = softplus(x), -log p = softplus(-x) as sums of non-negative
terms with log1p, as :mod:`focalkit.backends.pytorch.sigmoid` computes them.

Example:
    >>> p, q, sp_pos, sp_neg = logistic_parts(torch.tensor([-20.0, 0.0, 20.0]))
    >>> q[2] > 0, float(sp_neg[1]) == float(sp_pos[1])
    (tensor(True), True)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["compute_dtype", "logistic_parts"]


def compute_dtype(logits: Tensor) -> torch.dtype:
    """float32 for fp16 / bf16 / fp32 inputs, float64 for float64."""
    return torch.promote_types(logits.dtype, torch.float32)


def logistic_parts(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(p, 1 - p, softplus(x), softplus(-x)) of logits ``x`` (already in the compute dtype)."""
    e = torch.exp(-x.abs())
    log1p_e = torch.log1p(e)
    inv = 1.0 / (1.0 + e)
    nonneg = x >= 0
    p = torch.where(nonneg, inv, e * inv)
    q = torch.where(nonneg, e * inv, inv)
    softplus_pos = x.clamp_min(0) + log1p_e  # -log(1 - p)
    softplus_neg = (-x).clamp_min(0) + log1p_e  # -log p
    return p, q, softplus_pos, softplus_neg
