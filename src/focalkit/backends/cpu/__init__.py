"""The fused CPU back-end: a C kernel (SIMD, built at install time) computing loss and gradient in one pass.

It runs ``sigmoid_focal`` and ``softmax_focal`` (both also as the reduced focal loss, ``reduced_threshold``),
``softmax_focal_soft`` (class probabilities, or class indices with label smoothing), the
logistic family (``quality_focal``, ``varifocal``, ``gaussian_focal``, ``asymmetric``, ``poly1_focal``: one
elementwise kernel with a loss code, ``poly1_focal`` with epsilon >= 0 on the sigmoid focal kernel's loop),
``poly1_cross_entropy`` (the softmax kernel with the poly term) and the per-row ``distribution_focal`` on CPU tensors
of dtype float32, float16 or bfloat16, with class-index or float targets where the op takes them, when the compiled
library was built (``library.available()``). :data:`IMPLEMENTS` (the ops and optional arguments it has) and
:func:`unsupported` (the inputs it cannot run) are the only places that state its capabilities.

Example:
    >>> from focalkit.backends import cpu
    >>> cpu.unsupported("sigmoid_focal", torch.zeros(2, dtype=torch.float64), torch.zeros(2), {}, forced=False)
    ['it supports float32, float16 and bfloat16 logits, got torch.float64']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from .._imports import import_submodule

NAME = "cpu"

# op -> (module, the optional arguments it implements: tensors, and optional scalars such as reduced_threshold)
IMPLEMENTS = {
    "sigmoid_focal": ("sigmoid", ("alpha_pos", "alpha_neg", "reduced_threshold")),
    "softmax_focal": ("softmax", ("weight", "alpha", "reduced_threshold")),
    # class probabilities, or class indices with label smoothing
    "softmax_focal_soft": ("softmax_soft", ("class_weight",)),
    # the logistic family: one generic elementwise kernel (logistic.py), a loss code per op
    "quality_focal": ("quality", ("scores",)),
    "varifocal": ("varifocal", ("labels",)),
    "gaussian_focal": ("gaussian", ()),
    "asymmetric": ("asymmetric", ()),
    "poly1_focal": ("poly", ("alpha_pos", "alpha_neg")),
    # the softmax kernel with the poly term (class indices; probability targets and label smoothing: see the module)
    "poly1_cross_entropy": ("poly_cross_entropy", ("class_weight",)),
    "distribution_focal": ("distribution", ()),
}
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# The kernels count target values outside the allowed range in the same pass and raise the standard error.
COUNTS_INVALID_TARGETS = True


def unsupported(op: str, logits: Tensor, targets: Tensor, tensors: Mapping[str, Tensor | None], *, forced: bool) -> list[str]:
    """Reasons this back-end cannot run an op it implements on these inputs (empty when it can)."""
    reasons = []
    if logits.dtype not in _DTYPES:
        reasons.append(f"it supports float32, float16 and bfloat16 logits, got {logits.dtype}")
    if logits.device.type != "cpu" or targets.device.type != "cpu":
        reasons.append(f"the tensors are on {logits.device}, not the CPU")
    if not reasons:
        from . import library

        if not library.available():
            reasons.append(f"the compiled CPU kernels are not available ({library.load_error()})")
    return reasons


def forward(op: str) -> Callable:
    """The contract function of ``op``."""
    return import_submodule(f"{__name__}.{IMPLEMENTS[op][0]}").forward


def library_available() -> bool:
    """Whether the compiled kernel library could be loaded on this machine."""
    from . import library

    return library.available()
