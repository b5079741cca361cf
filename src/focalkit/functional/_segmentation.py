"""What the segmentation losses share: the input and target forms, per-class vectors, and class probabilities.

The segmentation losses (:mod:`~focalkit.functional.dice_focal`, :mod:`~focalkit.functional.focal_tversky`) take
logits of shape (N, C, *spatial) and targets in one of two forms:

- class indices of shape (N, *spatial) or (N, 1, *spatial) (MONAI's ``to_onehot_y=True`` form), integers in
  [0, C) or ``ignore_index``; floats holding whole numbers are accepted when ``to_onehot_y=True`` (MONAI's labels are
  usually float tensors). Pixels equal to ``ignore_index`` are left out of every term and every count.
- one-hot, multi-hot or soft targets of the logits' shape, values in [0, 1] (float, integer or bool).

``to_onehot_y=None`` (the default) reads the form from the target: integer targets of the (N, *spatial) or
(N, 1, *spatial) shape are class indices, anything of the logits' shape is one-hot / soft.

Per-class vectors (``weight``, a per-class ``alpha``) follow the classes that count: with
``include_background=False`` they may have C entries (entry 0, the background, is then dropped) or C - 1 entries
(MONAI's convention, aligned with classes 1 .. C - 1). A number applies to every class.

Class probabilities are formed without cancellation: 1 - p is sigmoid(-x) for the sigmoid and, for the softmax,
the sum of the other classes' probabilities (or exponentials) at a unique maximum, where p may round to 1, so that
the false-negative sums of the Dice and Tversky terms are exact there. The Tversky term works with the logarithms
(:func:`class_log_probabilities`, :func:`log_weighted_sum`), which stay finite at any finite logit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import semantics
from .._checks import FLOAT_DTYPES, check_class_indices, check_floating, check_same_device, check_tensor, describe
from .._checks import check_unit_interval_values, scalar_value
from ..errors import argument_error, type_error
from ..value_checks import value_checks_enabled

__all__ = [
    "SegmentationTargets",
    "VectorArg",
    "check_channels",
    "check_segmentation_input",
    "class_log_probabilities",
    "class_probabilities",
    "compute_dtype",
    "finite_logsumexp",
    "kept_class_vector",
    "log_weighted_sum",
    "one_hot",
    "one_hot_indices",
    "pixel_count",
    "resolve_targets",
]

VectorArg = float | int | Sequence[float] | Tensor | None


class SegmentationTargets:
    """Targets in one of the two forms: ``index`` (N, *spatial) int64 with ``valid`` (N, *spatial) bool, or
    ``soft`` (N, C, *spatial) in the compute dtype (``valid`` None). ``valid`` (index != ignore_index) is formed on
    first use: the fused kernel counts the valid pixels itself."""

    def __init__(self, index: Tensor | None, soft: Tensor | None, ignore_index: int | None = None) -> None:
        self.index, self.soft, self.ignore_index = index, soft, ignore_index

    @functools.cached_property
    def valid(self) -> Tensor | None:
        return None if self.index is None else self.index != self.ignore_index


def compute_dtype(input: Tensor) -> torch.dtype:
    """float64 for float64 logits, float32 otherwise (float16 / bfloat16 are computed in float32)."""
    return torch.float64 if input.dtype == torch.float64 else torch.float32


def check_segmentation_input(input: object) -> Tensor:
    """Logits of shape (N, C, *spatial) in a floating dtype."""
    input = check_floating("input", input)
    if input.ndim < 2:
        raise argument_error("input", "logits of shape (N, C, *spatial)", describe(input))
    return input


def check_channels(input: Tensor, softmax: bool, include_background: bool) -> None:
    """A softmax needs two classes; dropping the background needs a class left."""
    if softmax and input.shape[1] < 2:
        raise argument_error(
            "input",
            "at least 2 channels (C = input.shape[1]) with softmax=True (a softmax over one channel is 1 everywhere; "
            "use softmax=False for one foreground channel)",
            describe(input),
        )
    if not include_background and input.shape[1] < 2:
        raise argument_error(
            "include_background",
            "True when the input has one channel (dropping channel 0 would leave no class)",
            f"include_background=False with {describe(input)}",
        )


def _index_shapes(input: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n, spatial = input.shape[0], tuple(input.shape[2:])
    return (n, *spatial), (n, 1, *spatial)


def _as_indices(input: Tensor, target: Tensor, ignore_index: int, scan_values: bool) -> Tensor:
    """Class indices (N, *spatial) as int64 from an (N, *spatial) or (N, 1, *spatial) tensor, checked (their range
    only with ``scan_values``)."""
    flat, with_channel = _index_shapes(input)
    if tuple(target.shape) == with_channel and target.ndim == input.ndim:
        target = target.reshape(flat)
    elif tuple(target.shape) != flat:
        raise argument_error(
            "target", f"class indices of shape {flat} or {with_channel}", describe(target)
        )
    if target.is_floating_point():
        if value_checks_enabled(target) and target.numel() > 0:
            finite = torch.isfinite(target)
            if not bool(finite.all()) or not bool((target == target.round()).all()):
                raise argument_error("target", "whole-number class indices (to_onehot_y=True)", describe(target))
        target = target.long()
    else:
        target = target.long()
    if scan_values:
        check_class_indices("target", target, 0, input.shape[1] - 1, ignore_index)
    return target


def _as_soft(input: Tensor, target: Tensor) -> Tensor:
    if tuple(target.shape) != tuple(input.shape):
        hint = ""
        if tuple(target.shape) in _index_shapes(input):
            hint = " (for class indices pass integer targets, or to_onehot_y=True)"
        raise argument_error("target", f"one-hot or soft targets of the input's shape {tuple(input.shape)}{hint}",
                             describe(target))
    check_unit_interval_values("target", target)
    return target.to(compute_dtype(input))


def resolve_targets(input: Tensor, target: object, to_onehot_y: object, ignore_index: int, *,
                    scan_indices: bool = True) -> SegmentationTargets:
    """Validate the target against the logits and return it in one of the two forms (see the module docstring).

    ``scan_indices=False`` leaves the range check of class indices to the fused kernel, which counts them in its own
    pass (:func:`focalkit.functional._segmentation_stats.segmentation_statistics` raises the same error)."""
    target = check_tensor("target", target)
    check_same_device("target", target, input, "input")
    if to_onehot_y is not None:
        to_onehot_y = semantics.check_bool("to_onehot_y", to_onehot_y)
    if target.is_complex():
        raise type_error("target", "a real or bool tensor", describe(target))
    if target.is_floating_point() and target.dtype not in FLOAT_DTYPES:
        raise type_error("target", "float16, bfloat16, float32 or float64 values, integers or bools", describe(target))
    num_classes = input.shape[1]
    integer = not target.is_floating_point() and target.dtype != torch.bool
    if to_onehot_y is None:
        as_index = integer and tuple(target.shape) != tuple(input.shape)
    else:
        as_index = to_onehot_y
    if as_index:
        if target.dtype == torch.bool:
            raise type_error("target", "integer class indices (bool masks are one-hot / multi-hot targets)", describe(target))
        if num_classes < 2:
            raise argument_error(
                "target",
                "one-hot / binary targets of the input's shape when the input has one channel (class indices would "
                "mark channel 0 for index 0, the inverse of a 0/1 mask)",
                describe(target),
            )
        index = _as_indices(input, target, ignore_index, scan_indices)
        return SegmentationTargets(index, None, ignore_index)
    return SegmentationTargets(None, _as_soft(input, target))


def one_hot(index: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """(N, *spatial) indices -> (N, C, *spatial) 0/1 floats; an ignored index gives an all-zero column."""
    classes = torch.arange(num_classes, device=index.device).view(1, num_classes, *([1] * (index.ndim - 1)))
    return (index.unsqueeze(1) == classes).to(dtype)


def one_hot_indices(soft: Tensor) -> Tensor | None:
    """The class indices (N, *spatial) of exactly one-hot float targets (N, C, *spatial), or None.

    Read only where value checks run (CPU by default: no device synchronisation) and when the targets need no
    gradient: the softmax focal loss of one-hot targets equals that of their indices, and the class-index form has a
    fused kernel. Anything else (soft targets, all-zero pixels, accelerators) returns None.

    Example:
        >>> one_hot_indices(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))
        tensor([[0, 1]])
    """
    if soft.requires_grad or not value_checks_enabled(soft) or soft.numel() == 0:
        return None
    ones = soft == 1
    if not bool((ones | (soft == 0)).all()) or not bool((ones.sum(1) == 1).all()):
        return None
    classes = torch.arange(soft.shape[1], device=soft.device).view(1, -1, *([1] * (soft.ndim - 2)))
    return (ones * classes).sum(1)


def kept_class_vector(
    name: str, value: VectorArg, input: Tensor, include_background: bool, *, unit_range: bool
) -> Tensor | None:
    """A per-class vector over the classes that count (C, or C - 1 without the background), in the compute dtype.

    ``None`` stays None; a number applies to every class; a sequence or 1-d tensor has C entries, or C - 1 when
    ``include_background=False`` (then entry 0 of a length-C vector, the background, is dropped).
    """
    if value is None:
        return None
    num_classes = input.shape[1]
    kept = num_classes - (0 if include_background else 1)
    dtype = compute_dtype(input)
    value = scalar_value(value)
    if semantics.is_real_number(value):
        maximum = 1.0 if unit_range else None
        number = semantics.check_number(name, value, minimum=0.0, maximum=maximum)
        return torch.full((kept,), number, dtype=dtype, device=input.device)
    if isinstance(value, Tensor):
        check_same_device(name, value, input, "input")
        if value.is_complex() or value.dtype == torch.bool or value.ndim != 1:
            raise type_error(name, "a number, a sequence of numbers or a 1-d real tensor", describe(value))
        vector = value.detach().to(dtype)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            if not semantics.is_real_number(item):
                raise type_error(name, "a sequence of real numbers", repr(value))
        vector = torch.tensor([float(v) for v in value], dtype=dtype, device=input.device)
    else:
        raise type_error(name, "a number, a sequence of numbers or a 1-d tensor", type(value).__name__)
    lengths = (num_classes,) if include_background else (num_classes, kept)
    if vector.numel() not in lengths:
        expected = (f"{num_classes} per-class values (C = input.shape[1])" if include_background else
                    f"{num_classes} per-class values (C = input.shape[1]; entry 0 is dropped) or {kept} "
                    "(one per class after the background, MONAI's convention)")
        raise argument_error(name, expected, f"shape {tuple(vector.shape)}")
    if value_checks_enabled(vector):
        if not bool(torch.isfinite(vector).all()):
            raise argument_error(name, "finite values", vector.tolist())
        if bool((vector < 0).any()) or (unit_range and bool((vector > 1).any())):
            raise argument_error(name, "per-class values in [0, 1]" if unit_range else "non-negative per-class values",
                                 vector.tolist())
    if vector.numel() != kept:
        vector = vector[1:]
    return vector


def _softmax_parts(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Pieces of the softmax of logits (N, C, S) along dim 1 that avoid 1 - p.

    With m the (detached) maximum, e = exp(x - m) is exactly 1 at every maximum. Returns (shifted = x - m, the
    maxima's mask as floats, e at the maxima (``e_top``), e elsewhere (``e_rest``), their sums over the classes
    ``top_sum`` (the number of maxima, exact) and ``rest``). The softmax's denominator is top_sum + rest, and the
    sum over the classes other than c is (top_sum - e_top_c) + (rest - e_rest_c), each part without cancellation.
    No arg-max is taken (ties are handled, and ``argmax`` along dim 1 is slow on CPU)."""
    shifted = x - x.detach().amax(1, keepdim=True)
    top = (shifted == 0).to(x.dtype)
    e = torch.exp(shifted)
    e_top = e * top
    e_rest = e - e_top
    return shifted, top, e_top, e_rest, e_top.sum(1, keepdim=True), e_rest.sum(1, keepdim=True)


def class_probabilities(x: Tensor, softmax: bool) -> tuple[Tensor, Tensor]:
    """(p, 1 - p) for logits of shape (N, C, S), each accurate to a few ulps of its own size.

    1 - p is formed as sigmoid(-x) for the sigmoid; for the softmax as the sum of the other classes'
    probabilities at a unique maximum (where p may round to 1) and as 1 - p elsewhere (there p <= 1/2, and 1 - p
    loses nothing).

    Example:
        >>> p, q = class_probabilities(torch.tensor([[[40.0], [0.0]]]), softmax=True)
        >>> q[0, 0, 0] > 0  # 1 - p of the dominant class is exp(-40), not 0
        tensor(True)
    """
    if not softmax:
        return torch.sigmoid(x), torch.sigmoid(-x)
    p = torch.softmax(x, 1)
    top = x == x.detach().amax(1, keepdim=True)
    unique = (top & (top.sum(1, keepdim=True) == 1)).to(x.dtype)
    others = (p * (1.0 - unique)).sum(1, keepdim=True)
    # a blend by a 0/1 mask (exact either way; a `where` would be slower here)
    return p, (1.0 - p) * (1.0 - unique) + others * unique


def class_log_probabilities(x: Tensor, softmax: bool) -> tuple[Tensor, Tensor]:
    """(log p, log(1 - p)) for logits of shape (N, C, S), finite at any finite logit (C >= 2 for the softmax)."""
    if not softmax:
        return F.logsigmoid(x), F.logsigmoid(-x)
    shifted, top, e_top, e_rest, top_sum, rest = _softmax_parts(x)
    log_total = torch.log1p((top_sum - 1.0) + rest)  # log(top_sum + rest), accurate when rest is tiny
    others = (top_sum - e_top) + (rest - e_rest)  # >= 1 except at a unique maximum, where it is `rest`
    unique_top = (top > 0) & (top_sum == 1)
    log_others = torch.log(torch.where(unique_top, torch.ones_like(others), others))
    # at a unique maximum, log(rest) as a log-sum-exp over the other classes (rest may underflow to 0)
    masked = torch.where(top > 0, torch.full_like(shifted, float("-inf")), shifted)
    masked = torch.where(top_sum == x.shape[1], torch.zeros_like(masked), masked)  # all classes tied: unused
    log_rest = torch.logsumexp(masked, 1, keepdim=True)
    log_others = torch.where(unique_top, log_rest.expand_as(log_others), log_others)
    return shifted - log_total, log_others - log_total


def log_weighted_sum(log_f: Tensor, w: Tensor, dims: tuple[int, ...]) -> Tensor:
    """log sum(w exp(log_f)) over ``dims`` in float64, -inf where the sum is 0, with a gradient that stays finite.

    The terms are scaled by their largest value before the sum (the scale is a constant, the result does not depend
    on it), so that a sum of terms that underflow in float32 keeps its logarithm and its gradient.

    Example:
        >>> log_weighted_sum(torch.tensor([[-200.0, -201.0]]), torch.tensor([[1.0, 1.0]]), (1,))
        tensor([-199.6867], dtype=torch.float64)
    """
    counts = w > 0
    with torch.no_grad():
        scale = torch.where(counts, log_f, float("-inf")).amax(dim=dims, keepdim=True)
        scale = torch.where(torch.isfinite(scale), scale, torch.zeros_like(scale))
    z = torch.where(counts, log_f - scale, float("-inf"))
    total = (w * torch.exp(z)).sum(dims).to(torch.float64)
    positive = total > 0
    logs = torch.log(torch.where(positive, total, torch.ones_like(total))) + scale.reshape(total.shape).to(torch.float64)
    return torch.where(positive, logs, torch.full_like(logs, float("-inf")))


def finite_logsumexp(terms: list[Tensor]) -> tuple[Tensor, Tensor]:
    """(log sum exp over the terms, mask of entries where any term is finite), -inf where none is, NaN-free in
    backward."""
    stacked = torch.stack(terms)
    any_finite = torch.isfinite(stacked).any(0)
    # -inf terms next to a finite one get weight 0; where every term is -inf, zeros stand in (masked below)
    safe = torch.where(any_finite.unsqueeze(0), stacked, torch.zeros_like(stacked))
    value = torch.logsumexp(safe, 0)
    return torch.where(any_finite, value, torch.full_like(value, float("-inf"))), any_finite


def pixel_count(input: Tensor) -> int:
    """The number of pixels per image (the product of the spatial sizes; 1 without spatial dimensions)."""
    return math.prod(input.shape[2:])
