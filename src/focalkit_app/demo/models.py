"""The classification demos' small model: an MLP classifier (the detection demo's detector is in detection_model.py)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """Two-layer perceptron: Linear(D, H) -> ReLU -> Linear(H, C).

    Args:
      in_dim: D; num_classes: C; hidden: H (128).
      init_bias: optional constant for the last layer's bias (e.g. ``focalkit.prior_bias(0.01)`` for sigmoid heads).

    Shapes: (N, D) -> (N, C) logits.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 128, init_bias: float | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)
        if init_bias is not None:
            nn.init.constant_(self.head.bias, init_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
