"""Conversion of class-index targets to per-element binary targets for the sigmoid losses.

For logits of shape (N, C, d1, ...) and integer targets of shape (N, d1, ...), element (n, c, ...) has target
y = 1 when targets[n, ...] == c and 0 otherwise. A target equal to C is an all-negative (background) row, as dense
detection heads use, and a target equal to ``ignore_index`` removes the whole row from the loss and from the count.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def class_shape(logits: Tensor) -> list[int]:
    """Shape that broadcasts a per-class vector of length C along dim 1 of the logits: [1, C, 1, ...]."""
    shape = [1] * logits.ndim
    if logits.ndim >= 2:
        shape[1] = logits.shape[1]
    return shape


def one_hot_targets(logits: Tensor, targets: Tensor, ignore_index: int | None) -> tuple[Tensor, Tensor | None]:
    """Binary float32 targets of the logits' shape and a row-validity mask of shape (N, 1, d1, ...), or None.

    Example:
        >>> logits = torch.zeros(2, 3)
        >>> y, valid = one_hot_targets(logits, torch.tensor([1, 3]), ignore_index=-100)
        >>> y
        tensor([[0., 1., 0.],
                [0., 0., 0.]])
    """
    index = targets.unsqueeze(1)
    classes = torch.arange(logits.shape[1], device=logits.device).view(class_shape(logits))
    y = (index == classes).to(torch.float32)
    valid = None if ignore_index is None else (index != ignore_index)
    return y, valid


def count_elements(logits: Tensor, targets: Tensor, ignore_index: int | None, *, on_host: bool = False) -> Tensor | int:
    """Number of loss elements that count in a mean: all of them, or C per non-ignored row (a tensor, no sync).
    With ``on_host``, a count known without reading the targets (all elements) is returned as an int."""
    if targets.is_floating_point() or ignore_index is None:
        if on_host:
            return logits.numel()
        return torch.tensor(float(logits.numel()), device=logits.device)
    return (targets != ignore_index).sum().to(torch.float32) * logits.shape[1]


def ncs(shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
    """(N, C, S) of logits viewed as (N, C, S): N = shape[0], C = shape[1] (1 when ndim < 2), S = the rest's product.

    Example:
        >>> ncs((2, 3, 4, 5))
        (2, 3, 20)
    """
    if len(shape) == 2:  # the usual (N, C)
        return int(shape[0]), int(shape[1]), 1
    n = shape[0] if len(shape) >= 1 else 1
    c = shape[1] if len(shape) >= 2 else 1
    s = math.prod(shape[2:]) if len(shape) >= 3 else 1
    return int(n), int(c), int(s)
