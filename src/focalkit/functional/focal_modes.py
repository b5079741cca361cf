"""``focal_loss``: one entry point with segmentation_models_pytorch's modes ("binary", "multiclass", "multilabel")."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import semantics
from ..backends.pytorch import sigmoid as torch_sigmoid
from .._checks import FLOAT_DTYPES, check_class_indices, check_floating, check_gamma, check_ignore_index
from .._checks import check_same_device, check_tensor, check_unit_interval_values, describe, scalar_value
from ..errors import argument_error, type_error
from ._alpha import AlphaArg
from ._reduction import NORMALIZED_MIN_DENOMINATOR, finish_reduction
from .sigmoid import sigmoid_focal_loss
from .softmax import softmax_focal_loss

__all__ = ["MODES", "focal_loss"]

MODES = ("binary", "multiclass", "multilabel")


def _check_alpha(alpha: AlphaArg, mode: str) -> AlphaArg:
    """None, a number in [0, 1], or (multi-class / multi-label) per-class values, checked by the loss."""
    value = scalar_value(alpha)
    if value is None or isinstance(value, (list, tuple)) or (isinstance(value, Tensor) and value.ndim > 0):
        if value is not None and mode == "binary":
            raise type_error("alpha", "None or a number in [0, 1] for mode='binary'", type(value).__name__)
        return value
    if not semantics.is_real_number(value):
        raise type_error("alpha", "None, a number in [0, 1] or per-class values", repr(value))
    return semantics.check_number("alpha", value, minimum=0.0, maximum=1.0)


def _binary_targets(input: Tensor, target: Tensor, mode: str) -> Tensor:
    if tuple(target.shape) == tuple(input.shape):
        return target
    if mode == "binary" and input.ndim >= 2 and input.shape[1] == 1 and target.ndim == input.ndim - 1 \
            and tuple(target.shape) == (input.shape[0], *input.shape[2:]):
        return target.unsqueeze(1)
    expected = f"targets of the input's shape {tuple(input.shape)}"
    if mode == "binary" and input.ndim >= 2 and input.shape[1] == 1:
        expected += f" or {(input.shape[0], *input.shape[2:])}"
    raise argument_error("target", expected, describe(target))


def focal_loss(
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    alpha: AlphaArg = None,
    gamma: float = 2.0,
    ignore_index: int | None = None,
    reduction: str = "mean",
    one_vs_rest: bool = True,
    normalized: bool = False,
    reduced_threshold: float | None = None,
) -> Tensor:
    r"""Focal loss with the modes and conventions of segmentation_models_pytorch's ``FocalLoss``.

    .. math::

        \mathrm{FL} = -\alpha_t (1 - p_t)^\gamma \log p_t, \qquad p = \sigma(x),\ p_t = p y + (1 - p)(1 - y),\
        \alpha_t = \alpha y + (1 - \alpha)(1 - y),

    per element, computed by :func:`focalkit.sigmoid_focal_loss` (exact, in log space) in every mode, without a
    per-class loop:

    - ``"binary"``: logits (N, 1, *spatial) or any shape, targets 0/1 (or soft) of the logits' shape or, for
      (N, 1, *spatial) logits, (N, *spatial). ``"mean"`` averages over the elements.
    - ``"multilabel"``: logits (N, C, *spatial), multi-hot (or soft) targets of that shape; ``"mean"`` averages
      over the elements.
    - ``"multiclass"``: logits (N, C, *spatial), class indices (N, *spatial). As smp, the loss is the sum over
      the C classes of the one-vs-rest sigmoid focal loss of channel c against (target == c), each averaged over
      the pixels: ``"mean"`` = sum / (number of pixels not ignored). ``one_vs_rest=False`` uses the softmax focal
      loss instead (:func:`focalkit.softmax_focal_loss`, mean over the pixels not ignored; ``alpha`` then weighs
      every term, or each class' term when per-class).

    ``ignore_index`` leaves out the elements (binary / multilabel: target values equal to it) or the pixels
    (multiclass) it marks, from the sum and from the mean's count, as smp does. smp's default alpha (None) and
    gamma (2.0) are kept. Where this differs from smp: smp's "mean" of an empty or fully ignored batch is NaN (here
    0); for soft targets smp's p_t is exp(-BCE), here torchvision's p t + (1 - p)(1 - t) (equal for 0/1 targets);
    "none" keeps the logits' shape (smp: the kept elements, flattened); a multiclass index >= C is an error (smp:
    no class); ``"batchwise_mean"`` is not supported.

    ``normalized`` and ``reduced_threshold`` are smp's normalized and reduced focal losses, with smp's scopes: the
    normalized loss divides by the sum of the modulating factors over all kept elements in "binary" and
    "multilabel" mode (smp's one flattened call), and per class over the kept pixels in "multiclass" mode (smp's
    per-class calls); the denominator is at least 1e-6 and is differentiated.

    Args:
        input: logits, see the modes.
        target: see the modes.
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        alpha: None (no weighting), a number in [0, 1] for positives (1 - alpha for negatives), or per-class values
            of length C (multiclass / multilabel, focalkit's extension).
        gamma: focusing parameter >= 0.
        ignore_index: target value (binary / multilabel) or class index (multiclass) to leave out; None: none.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (element-wise losses of the logits' shape, 0 where ignored;
            per pixel (N, *spatial) for the softmax form). smp's ``"batchwise_mean"`` is not supported.
        one_vs_rest: multiclass only: smp's sum of per-class sigmoid losses (True) or the softmax focal loss.
        normalized: smp's normalized focal loss (see above).
        reduced_threshold: smp's reduced focal loss: the factor ((1 - p_t) / reduced_threshold)^gamma where
            p_t >= reduced_threshold, 1 below; a number in (0, 1] or None (off).

    Returns:
        The reduced loss (float32 for float16 / bfloat16 logits) or the element-wise losses in the logits' dtype.

    Example:
        >>> x = torch.tensor([[[[2.0, -1.0]], [[0.0, 1.0]], [[-1.0, 0.5]]]])   # (N=1, C=3, H=1, W=2)
        >>> focal_loss(x, torch.tensor([[[0, 2]]]), "multiclass")
        tensor(0.4949)
        >>> focal_loss(x[:, :1], torch.tensor([[[1, 0]]]), "binary", alpha=0.25)
        tensor(0.0087)

    Reference:
        T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017; segmentation_models_pytorch
        ``smp.losses.FocalLoss`` (modes and reductions).
    """
    input = check_floating("input", input)
    mode = semantics.check_choice("mode", mode, MODES)
    gamma = check_gamma(gamma)
    alpha = _check_alpha(alpha, mode)
    if ignore_index is not None:
        ignore_index = check_ignore_index(ignore_index)
    reduction = semantics.check_reduction(reduction)
    one_vs_rest = semantics.check_bool("one_vs_rest", one_vs_rest)
    normalized = semantics.check_bool("normalized", normalized)
    threshold = semantics.check_reduced_threshold(scalar_value(reduced_threshold))
    options = {"gamma": gamma, "normalized": normalized, "threshold": threshold}
    if not one_vs_rest and mode != "multiclass":
        raise argument_error("one_vs_rest", f"True for mode={mode!r} (only 'multiclass' has a softmax form)", False)
    target = check_tensor("target", target)
    check_same_device("target", target, input, "input")
    if target.is_complex() or (target.is_floating_point() and target.dtype not in FLOAT_DTYPES):
        raise type_error("target", "real or bool targets", describe(target))
    if mode == "multiclass":
        return _multiclass(input, target, alpha, options, ignore_index, reduction, one_vs_rest)
    if mode == "multilabel" and input.ndim < 2:
        raise argument_error("input", "logits of shape (N, C, *spatial) for mode='multilabel'", describe(input))
    target = _binary_targets(input, target, mode)
    dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
    valid = None
    if ignore_index is not None:
        valid = target != ignore_index
        target = torch.where(valid, target, torch.zeros_like(target))
    y = target.to(dtype)
    check_unit_interval_values("target", y)
    weight = None if valid is None else valid.to(dtype)
    loss = sigmoid_focal_loss(input, y, alpha, gamma, "none" if reduction == "none" else "sum", weight=weight,
                              reduced_threshold=threshold or None)
    if normalized:
        loss = loss / _factor_sum(input, y, weight, options)
    if reduction == "none":
        return loss

    def count() -> Tensor:
        if valid is None:
            return torch.tensor(float(input.numel()), device=input.device)
        return valid.sum().to(torch.float32)

    return finish_reduction(loss, reduction, count, None, False, input.dtype)


def _factor_sum(input: Tensor, targets: Tensor, weight: Tensor | None, options: dict, dims: tuple[int, ...] | None = None,
                index_ignore: int | None = None) -> Tensor:
    """The normalized focal loss' denominator: the sum of the modulating factors of the kept elements (over ``dims``,
    all by default), at least 1e-6."""
    factors = torch_sigmoid.modulating_factor(input, targets, gamma=options["gamma"], ignore_index=index_ignore,
                                              reduced_threshold=options["threshold"])
    if weight is not None:
        factors = factors * weight
    total = factors.sum() if dims is None else factors.sum(dim=dims, keepdim=True)
    return total.clamp_min(NORMALIZED_MIN_DENOMINATOR)


def _multiclass(
    input: Tensor, target: Tensor, alpha: AlphaArg, options: dict, ignore_index: int | None, reduction: str,
    one_vs_rest: bool,
) -> Tensor:
    if input.ndim < 2 or input.shape[1] < 1:
        raise argument_error("input", "logits of shape (N, C, *spatial) with C >= 1 for mode='multiclass'",
                             describe(input))
    if target.is_floating_point() or target.dtype == torch.bool:
        raise type_error("target", "integer class indices for mode='multiclass'", describe(target))
    expected = (input.shape[0], *input.shape[2:])
    if tuple(target.shape) != expected:
        raise argument_error("target", f"class indices of shape {expected} (the input's shape without dim 1)",
                             describe(target))
    target = target.long()
    check_class_indices("target", target, 0, input.shape[1] - 1, ignore_index)
    index_ignore = -100 if ignore_index is None else ignore_index
    gamma, normalized, threshold = options["gamma"], options["normalized"], options["threshold"]
    if not one_vs_rest:
        return softmax_focal_loss(input, target, None, index_ignore, reduction, alpha=alpha, gamma=gamma,
                                  normalized=normalized, reduced_threshold=threshold or None)
    # normalized: each class' losses are divided by that class' factor sum, so they are summed after the division
    inner = "none" if reduction == "none" or normalized else "sum"
    per_class = (0, *range(2, input.ndim))
    if input.shape[1] == 1:  # one class column: 0/1 float targets (index 1 would mean background)
        dtype = torch.float64 if input.dtype == torch.float64 else torch.float32
        valid = (target != index_ignore).unsqueeze(1)
        y = ((target == 0).unsqueeze(1) & valid).to(dtype)
        weight = valid.to(dtype)
        loss = sigmoid_focal_loss(input, y, alpha, gamma, inner, weight=weight, reduced_threshold=threshold or None)
        if normalized:
            loss = loss / _factor_sum(input, y, weight, options, per_class)
    else:
        loss = sigmoid_focal_loss(input, target, alpha, gamma, inner, ignore_index=index_ignore,
                                  reduced_threshold=threshold or None)
        if normalized:
            loss = loss / _factor_sum(input, target, None, options, per_class, index_ignore)
    if normalized and reduction != "none":
        loss = loss.sum()
    if reduction == "none":
        return loss

    def pixels() -> Tensor:  # smp: the sum over classes of per-class means over the pixels not ignored
        return (target != index_ignore).sum().to(torch.float32)

    return finish_reduction(loss, reduction, pixels, None, False, input.dtype)
