"""Common base of the adaptive focal losses: an ``nn.Module`` plus two training-loop hooks.

Training-loop protocol (every adaptive loss accepts both calls; those that do not need one ignore it)::

    for epoch in range(epochs):
        for x, y in train_loader:
            logits = model(x)
            loss = loss_fn(logits, y)          # forward: uses the current gammas
            loss.backward(); opt.step(); opt.zero_grad()
            loss_fn.after_batch(logits.detach(), y)       # AutomatedFocalLoss updates its running mean here
        with torch.no_grad():
            val_logits = model(x_val)
        loss_fn.after_epoch(val_logits, y_val)            # AdaFocalLoss updates its per-bin gammas here
"""

from __future__ import annotations

import torch
from torch import nn

from focalkit.semantics import check_reduction

from ._per_sample import _check, per_sample_focal_loss

__all__ = ["AdaptiveFocalLoss"]


class AdaptiveFocalLoss(nn.Module):
    """Base class: subclasses implement :meth:`gamma_for` (per-sample gamma from detached p_t)."""

    def __init__(self, *, weight: torch.Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.weight = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)

    def gamma_for(self, p_t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target)
        with torch.no_grad():
            p_t = torch.softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
            gamma = self.gamma_for(p_t)
        return per_sample_focal_loss(logits, target, gamma, weight=self.weight, reduction=self.reduction)

    def after_batch(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Hook called after each optimiser step with the batch's (detached) logits. Default: nothing."""

    def after_epoch(self, val_logits: torch.Tensor, val_target: torch.Tensor) -> None:
        """Hook called once per epoch with validation logits. Default: nothing."""
