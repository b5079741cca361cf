"""When focalkit reads tensor *values* to check them.

Shape, dtype, device and hyper-parameter checks read only metadata and always run, before any compute. Checks that
must read tensor values (targets in [0, 1], class indices in range, probabilities in [0, 1], per-class alpha in
[0, 1]) are governed by :func:`set_value_checks`:

- ``"auto"`` (default): run them on CPU tensors, where they cost no device synchronisation, and skip them on
  accelerator tensors, where reading a value back would stall the stream on every call.
- ``"always"``: run them everywhere (one host synchronisation per check on a GPU). Use while debugging.
- ``"never"``: skip them.

They are also skipped while ``torch.compile`` traces, since a value check would break the graph. The environment
variable ``FOCALKIT_VALUE_CHECKS`` sets the initial mode.

Example:
    >>> import focalkit
    >>> focalkit.set_value_checks("always")
    >>> focalkit.get_value_checks()
    'always'
    >>> focalkit.set_value_checks("auto")
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from .semantics import check_choice

__all__ = ["VALUE_CHECK_MODES", "get_value_checks", "set_value_checks", "value_checks_enabled"]

VALUE_CHECK_MODES = ("auto", "always", "never")

_value_check_mode = check_choice("FOCALKIT_VALUE_CHECKS", os.environ.get("FOCALKIT_VALUE_CHECKS", "auto"), VALUE_CHECK_MODES)


def set_value_checks(mode: str) -> None:
    """Choose when checks that read tensor values run: ``"auto"`` (CPU only), ``"always"`` or ``"never"``."""
    global _value_check_mode
    _value_check_mode = check_choice("mode", mode, VALUE_CHECK_MODES)


def get_value_checks() -> str:
    """Return the current value-check mode (see :func:`set_value_checks`)."""
    return _value_check_mode


def value_checks_enabled(tensor: Tensor) -> bool:
    """Whether value checks should run for a tensor on this device, in this mode, now."""
    if _value_check_mode == "never" or torch.compiler.is_compiling():
        return False
    return _value_check_mode == "always" or tensor.is_cpu
