"""Small models of the demo: an MLP classifier and a miniature one-stage dense detector."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "TinyDetector"]


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


class TinyDetector(nn.Module):
    """Fully convolutional one-stage detector head in miniature (RetinaNet-like classification subnet only).

    conv3x3(1 -> W) -> ReLU -> [conv3x3(W -> W, dilation d) -> ReLU] for d in ``dilations`` -> conv3x3(W -> A).
    The last bias starts at ``init_bias`` (the paper's prior initialisation when set to ``prior_bias(0.01)``; 0
    otherwise). Shapes: (B, 1, H, W) -> (B, A, H, W) anchor logits.
    """

    def __init__(self, num_anchors: int, width: int = 16, dilations: tuple[int, ...] = (1, 2, 4),
                 init_bias: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
        for d in dilations:
            layers += [nn.Conv2d(width, width, 3, padding=d, dilation=d), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.cls = nn.Conv2d(width, num_anchors, 3, padding=1)
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.constant_(self.cls.bias, init_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.body(x))
