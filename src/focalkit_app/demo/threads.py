"""Torch intra-op thread setting for the demo's small models."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["torch_threads"]


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Use ``n`` torch threads inside the block (None -> 1) and restore the previous setting afterwards.

    The demo's models see batches of 64 x 64 features; for them one intra-op thread was measured faster than two on
    a 2-core machine (thread hand-off costs more than the arithmetic), and much faster when the machine is busy.
    Pass ``--threads`` to override.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(n or 1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
