"""The meaning of ``alpha`` in every focalkit loss, in one place.

Sigmoid family (sigmoid, binary, FL*): alpha weighs positive terms and 1 - alpha negative terms,
a_t = alpha y + (1 - alpha)(1 - y) (Lin et al. 2017, eq. 3). ``alpha=None`` or a negative number disables it
(a_t = 1), as in torchvision. A sequence or tensor of length C gives a per-class alpha along dim 1.

Softmax: ``alpha=None`` disables it; a float multiplies every term (as mmcv and Keras do), a per-class sequence or
tensor of length C multiplies the term of the target class (like ``weight``, but not part of the mean's
denominator).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .. import semantics
from .._checks import class_vector, scalar_value

AlphaArg = float | int | None | Tensor | list | tuple


def _is_per_class(alpha: AlphaArg) -> bool:
    return isinstance(alpha, (list, tuple)) or (isinstance(alpha, Tensor) and alpha.ndim > 0)


def sigmoid_alpha(alpha: AlphaArg, logits: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """(alpha_pos, alpha_neg) float32 vectors of length C (or 1), or (None, None) when alpha is disabled."""
    if alpha is None:
        return None, None
    if type(alpha) is not float and _is_per_class(alpha):
        alpha_pos = class_vector("alpha", alpha, logits, check_unit_range=True)
        return alpha_pos, 1.0 - alpha_pos
    value = semantics.check_sigmoid_alpha(scalar_value(alpha))
    if value is None:
        return None, None
    num_classes = logits.shape[1] if logits.ndim >= 2 else 1
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32  # the float dtypes promoted with float32
    if torch.compiler.is_compiling():  # traced into the graph: no cache (Dynamo would trace through it with a warning)
        return _constant_alpha.__wrapped__(value, num_classes, dtype, logits.device)
    return _constant_alpha(value, num_classes, dtype, logits.device)


@functools.lru_cache(maxsize=64)
def _constant_alpha(value: float, num_classes: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """(alpha, 1 - alpha) filled to length C, made once per (value, C, dtype, device): the same alpha on every call
    of a training loop would otherwise cost two small tensors per call. Only focalkit reads them (never modified)."""
    alpha_pos = torch.full((num_classes,), value, dtype=dtype, device=device)
    return alpha_pos, 1.0 - alpha_pos


def softmax_alpha(alpha: AlphaArg, logits: Tensor) -> Tensor | float | None:
    """None, a float in [0, 1], or a float32 per-class vector of length C."""
    if alpha is None:
        return None
    if _is_per_class(alpha):
        return class_vector("alpha", alpha, logits, check_unit_range=True)
    return semantics.check_softmax_alpha(scalar_value(alpha))
