"""Small helpers shared by the detection and classification family tests."""

from __future__ import annotations

import torch


def with_grad(fn, x, *args, **kwargs):
    """(loss, d sum(loss) / d x) of fn(x, ...) with autograd, on a fresh leaf copy of x."""
    x = x.detach().clone().requires_grad_(True)
    loss = fn(x, *args, **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def reference_with_grad(fn, x, *args, **kwargs):
    """:func:`with_grad` in float64 (for the ``focalkit.reference`` functions)."""
    return with_grad(fn, x.detach().to(torch.float64), *args, **kwargs)


def saved_bytes(fn):
    """(bytes of the unique storages autograd saves while ``fn()`` runs, the loss)."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn()
    return sum(storages.values()), loss


def max_relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours - theirs| / |theirs| (0 where both are 0), in float64."""
    ours, theirs = ours.detach().double(), theirs.detach().double()
    scale = theirs.abs().clamp_min(1e-300)
    both_zero = (ours == 0) & (theirs == 0)
    return float(torch.where(both_zero, torch.zeros_like(scale), (ours - theirs).abs() / scale).max())
