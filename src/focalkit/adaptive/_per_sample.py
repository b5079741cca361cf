"""Softmax focal term with a per-sample (possibly negative) gamma, computed in log space.

.. math::

    \\ell_i = \\begin{cases}
        -(1 - p_{t,i})^{\\gamma_i} \\log p_{t,i}   & \\gamma_i \\ge 0 \\text{ (focal)} \\\\
        -(1 + p_{t,i})^{|\\gamma_i|} \\log p_{t,i} & \\gamma_i < 0 \\text{ (inverse focal, Ghosh et al. 2022)}
    \\end{cases}

with :math:`\\log p_t = x_t - \\operatorname{LSE}(x)` and
:math:`\\log(1 - p_t) = \\operatorname{LSE}_{k \\ne t}(x_k) - \\operatorname{LSE}(x)`, so the modulating factor is
:math:`\\exp(\\gamma \\log(1 - p_t))`: no ``pow`` on a probability, no clamping, and the value and gradient stay finite
for finite logits even when :math:`p_t` rounds to 1 (the sum over the other classes never cancels).

The gammas are treated as constants (they are selected from detached statistics by the adaptive schemes).
"""

from __future__ import annotations

import numbers

import torch

from focalkit.errors import argument_error, type_error
from focalkit.semantics import check_number, check_reduction

__all__ = ["per_sample_focal_loss", "true_class_probability"]


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        got = type(logits).__name__ + (f" of dtype {logits.dtype}" if isinstance(logits, torch.Tensor) else "")
        raise type_error("logits", "a floating-point torch.Tensor", got)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise argument_error("logits", "shape (N, C) with C >= 2", tuple(logits.shape))
    if not isinstance(target, torch.Tensor) or target.dtype != torch.int64:
        got = target.dtype if isinstance(target, torch.Tensor) else type(target).__name__
        raise type_error("target", "an int64 torch.Tensor of class indices", got)
    if target.shape != logits.shape[:1]:
        raise argument_error("target", f"shape ({logits.shape[0]},)", tuple(target.shape))


def true_class_probability(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Detached :math:`p_t = \\mathrm{softmax}(x)_t`, shape (N,), float32."""
    _check(logits, target)
    with torch.no_grad():
        return torch.softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)


def per_sample_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax focal loss with one gamma per row; negative gamma selects the inverse focal loss.

    Args:
      logits: (N, C) float tensor of unnormalised scores.
      target: (N,) int64 class indices in [0, C).
      gamma: (N,) float tensor (or a finite real number) of focusing parameters; detached before use.
      weight: optional (C,) per-class weight multiplying each row's loss.
      reduction: ``"none"`` -> (N,), ``"sum"``, or ``"mean"`` (sum / N).

    Returns:
      float32 loss (float64 for float64 logits).

    Example:
      >>> import torch
      >>> x = torch.tensor([[2.0, 0.0], [0.0, 30.0]]); t = torch.tensor([0, 1])
      >>> per_sample_focal_loss(x, t, torch.tensor([0.0, 2.0]), reduction="none").shape
      torch.Size([2])

    References:
      Lin et al. 2017 (arXiv:1708.02002); Ghosh et al. 2022, AdaFocal (NeurIPS), inverse focal loss.
    """
    _check(logits, target)
    check_reduction(reduction)
    if gamma is None or isinstance(gamma, (numbers.Number, str, bytes)):  # a scalar (tensors, arrays: as they are)
        gamma = check_number("gamma", gamma)  # any finite real: a negative gamma selects the inverse focal loss
    # fp16 / bf16 are computed in fp32; fp32 and fp64 keep their precision.
    x = logits if logits.dtype == torch.float64 else logits.float()
    g = torch.as_tensor(gamma).detach().to(x.dtype).expand(x.shape[0])
    lse = torch.logsumexp(x, dim=1)
    log_pt = x.gather(1, target[:, None]).squeeze(1) - lse
    others = x.scatter(1, target[:, None], float("-inf"))
    log1m_pt = torch.logsumexp(others, dim=1) - lse
    magnitude = g.abs()
    # log(1 + p_t) = log1p(exp(log p_t)) is bounded in [0, log 2]; both branches stay finite.
    log_mod = torch.where(g >= 0, magnitude * log1m_pt, magnitude * torch.log1p(torch.exp(log_pt)))
    loss = -torch.exp(log_mod) * log_pt
    if weight is not None:
        loss = loss * torch.as_tensor(weight).to(x.dtype)[target]
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / max(x.shape[0], 1)
    return loss
