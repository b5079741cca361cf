"""The one place that chooses a focal-loss back-end.

Back-ends implement the "Kernel contract" of ``docs/CONTRACT.md`` (``sigmoid_focal_forward`` /
``softmax_focal_forward``):

========  ==========================================================  ==============================================
name      module                                                      used by ``"auto"`` when
========  ==========================================================  ==============================================
triton    ``focalkit.kernels.triton_sigmoid`` / ``triton_softmax``    the logits are on a CUDA device and Triton is
                                                                      installed
cpu       ``focalkit.kernels.cpu_sigmoid`` / ``cpu_softmax``          the logits are on the CPU (fp32 / fp16 / bf16)
                                                                      and the compiled C library was built
torch     ``focalkit._sigmoid_math`` / ``focalkit._softmax_math``     otherwise (any device, float64, pos_weight)
========  ==========================================================  ==============================================

A back-end can be forced with the ``backend=`` argument of :mod:`focalkit.kernels.ops` functions or, when that is
None, with the environment variable ``FOCALKIT_BACKEND`` (read at every call). Forcing one that cannot run these
inputs raises :class:`BackendUnavailableError` (a :class:`focalkit.InvalidArgumentError`, so also a ``ValueError``)
saying why. Back-end modules are imported lazily: ``import focalkit`` never imports Triton.

Example:
    >>> from focalkit.kernels.dispatch import resolve_backend
    >>> resolve_backend("sigmoid", torch.zeros(4, 3), torch.zeros(4, 3))  # doctest: +SKIP
    'cpu'
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Callable

import torch
from torch import Tensor

from .._errors import InvalidArgumentError

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "BackendUnavailableError",
    "available_backends",
    "get_forward",
    "requested_backend",
    "resolve_backend",
]

BACKENDS = ("auto", "torch", "cpu", "triton")
ENV_VAR = "FOCALKIT_BACKEND"
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_TORCH_FORWARD = {
    "sigmoid": ("focalkit._sigmoid_math", "sigmoid_focal_forward_torch"),
    "softmax": ("focalkit._softmax_math", "softmax_focal_forward_torch"),
}


class BackendUnavailableError(InvalidArgumentError):
    """A forced back-end cannot run these inputs (not installed, not built, wrong device, dtype or option)."""


def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def _cpu_available() -> bool:
    from . import cpu_lib

    return cpu_lib.available()


def requested_backend(backend: str | None = None) -> str:
    """The requested back-end name: ``backend`` if given, else ``$FOCALKIT_BACKEND``, else ``"auto"``."""
    source = "backend"
    if backend is None:
        backend = os.environ.get(ENV_VAR) or "auto"
        source = ENV_VAR
    if not isinstance(backend, str) or backend.lower() not in BACKENDS:
        raise InvalidArgumentError(f"{source}: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend.lower()


def _feature_used(value: object) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and value == 0:
        return False
    return True


def _why_not(name: str, kind: str, logits: Tensor, targets: Tensor, features: dict[str, object]) -> str | None:
    """None when back-end ``name`` can run these inputs, else the reason."""
    if name == "torch":
        return None
    unsupported = [k for k, v in features.items() if _feature_used(v)]
    if unsupported:
        return f"it does not implement {', '.join(unsupported)}"
    if logits.dtype not in _KERNEL_DTYPES:
        return f"it supports float32, float16 and bfloat16 logits, got {logits.dtype}"
    if kind == "softmax" and targets.is_floating_point():
        return "it supports class-index targets only"
    if name == "cpu":
        if logits.device.type != "cpu" or targets.device.type != "cpu":
            return f"the tensors are on {logits.device}, not the CPU"
        if not _cpu_available():
            from . import cpu_lib

            return f"the compiled CPU kernels are not available ({cpu_lib.load_error()})"
        return None
    if name == "triton":
        if not _triton_importable():
            return "Triton is not installed"
        interpreter = os.environ.get("TRITON_INTERPRET") == "1"
        if logits.device.type != "cuda" and not interpreter:
            return f"the tensors are on {logits.device} (Triton needs CUDA, or TRITON_INTERPRET=1 for CPU tensors)"
        return None
    raise InvalidArgumentError(f"backend: expected one of {', '.join(BACKENDS)}, got {name!r}")


def resolve_backend(
    kind: str, logits: Tensor, targets: Tensor, backend: str | None = None, **features: object
) -> str:
    """Choose the back-end for one call.

    Args:
        kind: ``"sigmoid"`` or ``"softmax"``.
        logits, targets: the call's tensors (only device, dtype and kind are looked at).
        backend: ``"auto"`` | ``"torch"`` | ``"cpu"`` | ``"triton"``, or None to read ``$FOCALKIT_BACKEND``.
        **features: options only the torch back-end implements (e.g. ``pos_weight=tensor``); a value other than
            None / False / 0 rules the kernels out.

    Returns:
        The back-end name ("torch", "cpu" or "triton").

    Raises:
        BackendUnavailableError: a forced back-end cannot run these inputs.
        InvalidArgumentError: unknown back-end name or kind.
    """
    if kind not in _TORCH_FORWARD:
        raise InvalidArgumentError(f"kind: expected 'sigmoid' or 'softmax', got {kind!r}")
    name = requested_backend(backend)
    if name != "auto":
        reason = _why_not(name, kind, logits, targets, features)
        if reason is not None:
            raise BackendUnavailableError(f"backend: {name!r} was requested but cannot run this call: {reason}")
        return name
    if logits.device.type == "cuda":
        return "triton" if _why_not("triton", kind, logits, targets, features) is None else "torch"
    if logits.device.type == "cpu" and _why_not("cpu", kind, logits, targets, features) is None:
        return "cpu"
    return "torch"


def get_forward(kind: str, name: str) -> Callable[..., tuple[Tensor, Tensor | None]]:
    """The contract function ``<kind>_focal_forward`` of back-end ``name`` (imported lazily)."""
    if name == "torch":
        module, attr = _TORCH_FORWARD[kind]
        return getattr(importlib.import_module(module), attr)
    if name in ("cpu", "triton"):
        module = importlib.import_module(f"focalkit.kernels.{name}_{kind}")
        return getattr(module, f"{kind}_focal_forward")
    raise InvalidArgumentError(f"backend: expected one of torch, cpu, triton, got {name!r}")


def available_backends() -> dict[str, bool]:
    """Which back-ends could run on this machine at all (not per call): ``{"torch": True, "cpu": ..., "triton": ...}``."""
    return {
        "torch": True,
        "cpu": _cpu_available(),
        "triton": _triton_importable() and (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1"),
    }
