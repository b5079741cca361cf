"""The Triton back-end: fused loss + gradient kernels for CUDA tensors (loaded only when used).

It runs ``sigmoid_focal`` and ``softmax_focal`` (both also as the reduced focal loss, ``reduced_threshold``), the
family ``quality_focal``, ``varifocal``, ``gaussian_focal``, ``distribution_focal``, ``asymmetric`` and
``poly1_focal`` and, on the softmax kernel, ``poly1_cross_entropy``, on float32, float16 and bfloat16 logits on a CUDA
device (the elementwise losses share one kernel, :mod:`focalkit.backends.triton.logistic`). With
``TRITON_INTERPRET=1`` Triton's interpreter runs the same kernels on CPU tensors; the dispatcher then uses it only
when it is forced (``backend="triton"`` or ``FOCALKIT_BACKEND=triton``), never by ``"auto"``. Nothing here imports
Triton until a kernel module is loaded.

Example:
    >>> from focalkit.backends import triton
    >>> triton.unsupported("sigmoid_focal", torch.zeros(2, 3), torch.zeros(2, 3), {}, forced=False)[-1]
    'the tensors are on cpu (Triton needs CUDA, or TRITON_INTERPRET=1 and a forced back-end for CPU tensors)'
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from .._imports import import_submodule

NAME = "triton"

# op -> (module, the optional arguments it implements: tensors, and optional scalars such as reduced_threshold)
IMPLEMENTS = {
    "sigmoid_focal": ("sigmoid", ("alpha_pos", "alpha_neg", "reduced_threshold")),
    "softmax_focal": ("softmax", ("weight", "alpha", "reduced_threshold")),
    "quality_focal": ("quality", ("scores",)),
    "varifocal": ("varifocal", ("labels",)),
    "gaussian_focal": ("gaussian", ()),
    "distribution_focal": ("distribution", ()),
    "asymmetric": ("asymmetric", ()),
    "poly1_focal": ("poly", ("alpha_pos", "alpha_neg")),
    # the softmax kernel with the poly term (class indices; probability targets and label smoothing: see the module)
    "poly1_cross_entropy": ("poly_cross_entropy", ("class_weight",)),
}
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# The distribution focal kernel holds a row's bins (dim 1) in one tile: its widest row.
DISTRIBUTION_MAX_BINS = 4096


@functools.cache
def installed() -> bool:
    """Whether Triton can be imported (checked once per process without importing it: the search for the package
    stats the file system, which would cost more than a small loss call)."""
    return importlib.util.find_spec("triton") is not None


def interpreter() -> bool:
    """Whether Triton's CPU interpreter is on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def unsupported(op: str, logits: Tensor, targets: Tensor, tensors: Mapping[str, Tensor | None], *, forced: bool) -> list[str]:
    """Reasons this back-end cannot run an op it implements on these inputs (empty when it can)."""
    reasons = []
    if logits.dtype not in _DTYPES:
        reasons.append(f"it supports float32, float16 and bfloat16 logits, got {logits.dtype}")
    if op == "distribution_focal" and logits.ndim >= 2 and logits.shape[1] > DISTRIBUTION_MAX_BINS:
        reasons.append(
            f"it holds at most {DISTRIBUTION_MAX_BINS} bins along dim 1 for distribution_focal, got {logits.shape[1]}"
        )
    if not installed():
        reasons.append("Triton is not installed")
    if logits.device.type != "cuda" and not (interpreter() and forced):
        reasons.append(
            f"the tensors are on {logits.device} (Triton needs CUDA, or TRITON_INTERPRET=1 and a forced back-end for "
            "CPU tensors)"
        )
    return reasons


def forward(op: str) -> Callable:
    """The contract function of ``op`` (imports Triton)."""
    return import_submodule(f"{__name__}.{IMPLEMENTS[op][0]}").forward
