"""Where the gradient of a focal loss comes from: recomputed in the backward pass, or stored by the forward pass.

- ``"recompute"`` (default): autograd keeps only the logits and the targets, which the caller holds anyway; the
  backward pass runs the fused kernel again to write d loss / d logits. Nothing logits-sized is held between forward
  and backward beyond the inputs, and ``create_graph=True`` works (double backward goes through a log-space
  composition). Forward + backward cost two passes of the kernel.
- ``"store"``: the forward pass computes the loss and its gradient in one pass and saves the gradient (one
  logits-sized tensor); the backward only scales it into a new tensor. Forward + backward cost one kernel pass and
  one more logits-sized write (faster than ``"recompute"`` at 1 thread, not always at 2: ``docs/benchmarks.md``
  measures both), the gradient is held from forward to backward, and double backward raises
  :class:`focalkit.InvalidArgumentError` (the loss kept only its first derivative).

Small inputs: outside ``torch.compile``, a call on at most ``SMALL_INPUT_ELEMENTS`` (65,536) logits computes its
gradient in the forward pass in either mode and keeps it (at most 256 KiB in float32) beside the inputs: one kernel
call instead of two, which is most of the cost of a small call, and double backward still works from the inputs. The
first backward hands the kept buffer itself on to autograd (no copy; for a ``"sum"`` it becomes ``.grad``) and drops
it; a second backward through a retained graph recomputes the gradient from the inputs.

The environment variable ``FOCALKIT_GRADIENT_MODE`` sets the initial mode. The mode is read when a loss is called
(a ``torch.compile``d function keeps the mode it was traced with).

Example:
    >>> import focalkit
    >>> focalkit.set_gradient_mode("store")
    >>> focalkit.get_gradient_mode()
    'store'
    >>> focalkit.set_gradient_mode("recompute")
"""

from __future__ import annotations

import os

from .semantics import check_choice

__all__ = ["GRADIENT_MODES", "SMALL_INPUT_ELEMENTS", "get_gradient_mode", "set_gradient_mode"]

GRADIENT_MODES = ("recompute", "store")
SMALL_INPUT_ELEMENTS = 1 << 16

_mode = check_choice("FOCALKIT_GRADIENT_MODE", os.environ.get("FOCALKIT_GRADIENT_MODE", "recompute"), GRADIENT_MODES)


def set_gradient_mode(mode: str) -> None:
    """Choose ``"recompute"`` (save the inputs, recompute the gradient in backward) or ``"store"`` (save the
    gradient computed in forward)."""
    global _mode
    _mode = check_choice("mode", mode, GRADIENT_MODES)


def get_gradient_mode() -> str:
    """The current gradient mode (see :func:`set_gradient_mode`)."""
    return _mode
