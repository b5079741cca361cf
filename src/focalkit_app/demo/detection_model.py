"""The miniature one-stage detector of ``focalkit demo --task detection``: a RetinaNet classification subnet.

conv3x3(1 -> W) -> GroupNorm -> ReLU -> [conv3x3(W -> W, dilation d) -> GroupNorm -> ReLU] for d in ``dilations``
-> conv3x3(W -> C * A). GroupNorm in the subnet follows the later RetinaNet heads (e.g. FCOS, GFL, VarifocalNet use
GN); it speeds up the first few hundred training steps of this small network. The last layer's
weights start at N(0, 0.01^2) and its bias at ``init_bias`` (the paper's prior initialisation with
``focalkit.prior_bias(0.01)``). Shapes: (B, 1, H, W) -> (B, C * A, H, W) logits.

Reference:
  T.-Y. Lin et al., Focal Loss for Dense Object Detection, ICCV 2017, section 4.1 and 3.3 (initialisation);
  Y. Wu, K. He, Group Normalization, ECCV 2018.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GNDetector"]


class GNDetector(nn.Module):
    """Example:
      >>> GNDetector(12, width=8)(torch.zeros(2, 1, 24, 24)).shape
      torch.Size([2, 12, 24, 24])
    """

    def __init__(self, outputs: int, width: int = 16, dilations: tuple[int, ...] = (1, 2, 4), groups: int = 4,
                 init_bias: float = 0.0) -> None:
        super().__init__()

        def block(cin: int, d: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, width, 3, padding=d, dilation=d), nn.GroupNorm(groups, width), nn.ReLU()]

        layers: list[nn.Module] = block(1, 1)
        for d in dilations:
            layers += block(width, d)
        self.body = nn.Sequential(*layers)
        self.cls = nn.Conv2d(width, outputs, 3, padding=1)
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.constant_(self.cls.bias, init_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.body(x))
