"""Which back-end runs a focal-loss call, and why.

Every loss is an op of the kernel contract (:mod:`focalkit.backends.contract`). Each back-end is one sub-package
that declares which ops and optional arguments it implements (``IMPLEMENTS``), which inputs of those it cannot run
and why (``unsupported(op, logits, targets, tensors, forced)``, a list of readable reasons), and returns the op's
contract function (``forward(op)``):

========  ===============================  =========================================================================
name      package                          runs
========  ===============================  =========================================================================
triton    ``focalkit.backends.triton``     fused kernels for CUDA tensors (fp32 / fp16 / bf16) when Triton is
                                           installed
cpu       ``focalkit.backends.cpu``        fused C kernels for CPU tensors (fp32 / fp16 / bf16) when the library was
                                           built at install time
torch     ``focalkit.backends.pytorch``    every op on any device and dtype (float64, ``pos_weight``, probability
                                           targets, FL*, losses from probabilities)
========  ===============================  =========================================================================

``"auto"`` walks this priority list and takes the first back-end with no reason against the call. A back-end can
be forced with ``backend=`` or, when that is None, the environment variable ``FOCALKIT_BACKEND`` (read at every
call). Forcing one that cannot run the call raises :class:`BackendUnavailableError` (a ``ValueError``) with its
reasons, with one exception: the environment variable is a preference for the ops the forced back-end implements,
so a call it does not implement at all (an op such as ``binary_focal``, or an option such as ``pos_weight``) runs on
the PyTorch back-end, which implements everything. Back-end packages import nothing heavy: Triton is imported only when a Triton kernel runs.

Example:
    >>> import torch, focalkit.backends as backends
    >>> backends.resolve_backend("sigmoid_focal", torch.zeros(4, 3, dtype=torch.float64), torch.zeros(4, 3))
    'torch'
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Mapping
from types import ModuleType

from torch import Tensor

from ..errors import InvalidArgumentError
from .contract import OPS

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "PRIORITY",
    "BackendUnavailableError",
    "available_backends",
    "backend_counts_invalid_targets",
    "clear_dispatch_cache",
    "cpu_kernel_isa",
    "get_differentiable",
    "get_forward",
    "missing_features",
    "requested_backend",
    "resolve_backend",
    "unsupported_reasons",
]

ENV_VAR = "FOCALKIT_BACKEND"
PRIORITY = ("triton", "cpu", "torch")
BACKENDS = ("auto", *PRIORITY)
_PACKAGES = {"triton": "triton", "cpu": "cpu", "torch": "pytorch"}


class BackendUnavailableError(InvalidArgumentError):
    """A forced back-end cannot run these inputs (not installed, not built, wrong device, dtype or option)."""


@functools.cache
def _package(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{_PACKAGES[name]}")


def requested_backend(backend: str | None = None) -> str:
    """The requested back-end name: ``backend`` if given, else ``$FOCALKIT_BACKEND``, else ``"auto"``."""
    source = "backend"
    if backend is None:
        backend = os.environ.get(ENV_VAR) or "auto"
        source = ENV_VAR
    if not isinstance(backend, str) or backend.lower() not in BACKENDS:
        raise InvalidArgumentError(f"{source}: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend.lower()


def _check_op(op: str) -> None:
    if op not in OPS:
        raise InvalidArgumentError(f"op: expected one of {', '.join(OPS)}, got {op!r}")


def missing_features(name: str, op: str, tensors: Mapping[str, Tensor | float | None] | None = None) -> list[str]:
    """What of this call back-end ``name`` does not implement: the op itself, or optional arguments (tensors, and the
    op's ``optional_scalars`` that are switched on)."""
    _check_op(op)
    implements = _package(name).IMPLEMENTS
    if op not in implements:
        return [f"it does not implement the op {op!r}"]
    _, arguments = implements[op]
    return [f"it does not implement {arg}" for arg, value in (tensors or {}).items()
            if value is not None and arg not in arguments]


def unsupported_reasons(
    name: str, op: str, logits: Tensor, targets: Tensor, tensors: Mapping[str, Tensor | None] | None = None, *,
    forced: bool = False,
) -> list[str]:
    """Why back-end ``name`` cannot run ``op`` on these inputs (an empty list when it can)."""
    missing = missing_features(name, op, tensors)
    return missing or _package(name).unsupported(op, logits, targets, tensors or {}, forced=forced)


def resolve_backend(
    op: str,
    logits: Tensor,
    targets: Tensor,
    tensors: Mapping[str, Tensor | None] | None = None,
    backend: str | None = None,
) -> str:
    """Choose the back-end for one call.

    Args:
        op: an op of :data:`focalkit.backends.contract.OPS` (e.g. ``"sigmoid_focal"``).
        logits, targets: the call's tensors (only device, dtype and kind are looked at).
        tensors: the op's optional arguments by name (None: absent), e.g. ``{"pos_weight": w}``; an optional
            scalar that is switched on is given by its value, e.g. ``{"reduced_threshold": 0.5}``.
        backend: ``"auto"`` | ``"torch"`` | ``"cpu"`` | ``"triton"``, or None to read ``$FOCALKIT_BACKEND``.

    Returns:
        The back-end name ("torch", "cpu" or "triton").

    Raises:
        BackendUnavailableError: a forced back-end cannot run these inputs (the message gives its reasons).
        InvalidArgumentError: unknown back-end name or op.
    """
    key = _dispatch_key(op, logits, targets, tensors, backend)
    cached = _RESOLVED.get(key)
    if cached is not None:
        return cached
    name = _resolve(op, logits, targets, tensors, backend)
    if len(_RESOLVED) < _RESOLVED_MAX:
        _RESOLVED[key] = name
    return name


# Resolved calls by what the back-ends' rules look at, so that a repeated call skips the walk over the priority list
# (tens of microseconds, as much as a small loss call): the op, the requested back-end and the environment variables
# read, device and dtype of logits and targets, which optional arguments are present, and the width of dim 1 that
# the Triton distribution kernel checks. A back-end's ``unsupported`` must decide from these alone; the library and
# Triton availability it also reads are fixed for the process. Only successful resolutions are kept.
_RESOLVED: dict[tuple, str] = {}
_RESOLVED_MAX = 4096


def _dispatch_key(op: str, logits: Tensor, targets: Tensor, tensors: Mapping[str, object] | None,
                  backend: str | None) -> tuple:
    # in the caller's order: the same arguments named in another order are another key for the same resolution
    present = tuple([k for k, v in tensors.items() if v is not None]) if tensors else ()
    width = logits.shape[1] if op == "distribution_focal" and logits.ndim >= 2 else None
    return (op, backend, os.environ.get(ENV_VAR), os.environ.get("TRITON_INTERPRET"), logits.device, logits.dtype,
            targets.device, targets.dtype, present, width)


def clear_dispatch_cache() -> None:
    """Forget the resolved calls (after changing what a back-end's rules read, e.g. in tests that unload the CPU
    library)."""
    _RESOLVED.clear()


def _resolve(op: str, logits: Tensor, targets: Tensor, tensors: Mapping[str, Tensor | None] | None,
             backend: str | None) -> str:
    _check_op(op)
    name = requested_backend(backend)
    if name != "auto" and backend is None and missing_features(name, op, tensors):
        return "torch"  # the environment's preference covers only what the forced back-end implements
    if name != "auto":
        reasons = unsupported_reasons(name, op, logits, targets, tensors, forced=True)
        if reasons:
            raise BackendUnavailableError(
                f"backend: {name!r} was requested but cannot run this call: {'; '.join(reasons)}"
            )
        return name
    refused = []
    for candidate in PRIORITY:
        reasons = unsupported_reasons(candidate, op, logits, targets, tensors)
        if not reasons:
            return candidate
        refused.append(f"{candidate}: {'; '.join(reasons)}")
    raise BackendUnavailableError(f"backend: no back-end can run {op}: {' | '.join(refused)}")


@functools.cache
def backend_counts_invalid_targets(name: str) -> bool:
    """Whether back-end ``name`` counts invalid target values in its own pass (and raises the standard error when
    value checks are on), so that the loss op need not scan them first."""
    return bool(getattr(_package(name), "COUNTS_INVALID_TARGETS", False))


def get_forward(op: str, name: str) -> Callable[..., tuple[Tensor, Tensor | None]]:
    """The contract function of ``op`` in back-end ``name`` (imported lazily)."""
    _check_op(op)
    if name not in PRIORITY:
        raise InvalidArgumentError(f"backend: expected one of {', '.join(PRIORITY)}, got {name!r}")
    return _package(name).forward(op)


def get_differentiable(op: str) -> Callable[..., Tensor]:
    """The differentiable composition of ``op`` (PyTorch back-end), used for double backward."""
    _check_op(op)
    return _package("torch").differentiable(op)


def available_backends() -> dict[str, bool]:
    """Which back-ends could run at all on this machine (not per call): ``{"torch": True, "cpu": ..., "triton": ...}``."""
    import torch

    from . import cpu, triton

    return {
        "torch": True,
        "cpu": cpu.library_available(),
        "triton": triton.installed() and (torch.cuda.is_available() or triton.interpreter()),
    }


def cpu_kernel_isa() -> str:
    """Which build of the fused CPU kernels is loaded: ``"avx512"``, ``"avx2"``, ``"base"`` or ``"none"``."""
    from .cpu import library

    return library.isa()
