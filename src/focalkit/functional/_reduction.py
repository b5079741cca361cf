"""Reductions and normalisers shared by every focalkit loss.

What each reduction divides by (documented in the README as well):

- ``"none"``: no reduction; per-element (sigmoid, FL*, binary) or per-row (softmax) losses.
- ``"sum"``: the sum of all losses.
- ``"mean"``: the sum divided by a denominator, by default
    * sigmoid / FL* / binary losses: the number of loss elements that count — every element for float targets,
      C per non-ignored row for class-index targets (ignored rows are excluded from the sum *and* the count);
    * softmax loss: exactly as ``F.cross_entropy``: the sum of ``weight[target]`` over non-ignored rows (the number
      of non-ignored rows without ``weight``), or the number of rows for probability targets.
  With ``normalizer=`` the denominator is that number or tensor instead (e.g. the number of positive anchors, as
  RetinaNet does). With ``sync_normalizer=True`` and ``torch.distributed`` initialised, the denominator is
  all-reduced and averaged over the processes, so that with gradient averaging (DDP) the loss and the gradients
  equal those of one process on the concatenated batch. A denominator of 0 is replaced by 1, so an empty or fully
  ignored batch gives 0 with a gradient path, never NaN (``F.cross_entropy`` gives NaN there). A ``normalizer``
  that is negative, infinite or NaN raises :class:`~focalkit.InvalidArgumentError` when it is a Python number or a
  CPU tensor; an accelerator tensor is not read (that would synchronise), and such a value makes the loss NaN.

Reduced losses are returned in float32 for float16 / bfloat16 inputs (the sum is accumulated in float32 and a float16
sum above 65504 would overflow) and in the input dtype otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from .._autograd import focal_loss_op
from .._checks import check_number, check_same_device, describe
from .._targets import count_elements
from ..value_checks import value_checks_enabled
from ..errors import argument_error

__all__ = ["NORMALIZED_MIN_DENOMINATOR", "finish_reduction", "check_normalizer", "reduce_elementwise", "weighted_loss"]

# The normalized focal loss divides by the sum of the modulating factors, clamped below at this value (as
# segmentation_models_pytorch clamps it), so that a batch of perfectly classified examples gives 0, not NaN.
NORMALIZED_MIN_DENOMINATOR = 1e-6


def check_normalizer(normalizer: object, reduction: str, sync_normalizer: bool, logits: Tensor) -> None:
    """Validate ``normalizer`` / ``sync_normalizer`` against the reduction before any compute."""
    if not isinstance(sync_normalizer, bool):
        raise argument_error("sync_normalizer", "a bool", repr(sync_normalizer))
    if normalizer is None:
        if sync_normalizer and reduction != "mean":
            raise argument_error("sync_normalizer", 'reduction="mean" (it synchronises the mean\'s denominator)', f"reduction={reduction!r}")
        return
    if reduction != "mean":
        raise argument_error("normalizer", 'reduction="mean" (the normalizer replaces the mean\'s denominator)', f"reduction={reduction!r}")
    if isinstance(normalizer, Tensor):
        if normalizer.numel() != 1 or normalizer.dtype == torch.bool or normalizer.is_complex():
            raise argument_error("normalizer", "a number or a one-element real tensor", describe(normalizer))
        check_same_device("normalizer", normalizer, logits, "input")
        if value_checks_enabled(normalizer):  # CPU tensors (no device sync); on accelerators the result carries NaN
            check_number("normalizer", float(normalizer.detach().reshape(())), minimum=0.0)
    else:
        check_number("normalizer", normalizer, minimum=0.0)


def _all_reduce_mean(value: Tensor) -> Tensor:
    """Average a scalar over the processes of the default group (a copy: the caller's tensor is untouched)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()


def finish_reduction(
    total: Tensor,
    reduction: str,
    default_denominator: Callable[[], Tensor | int],
    normalizer: Tensor | float | None,
    sync_normalizer: bool,
    input_dtype: torch.dtype,
) -> Tensor:
    """Turn a summed loss into the requested reduction ("sum" or "mean"), see the module docstring.
    ``default_denominator`` returns a tensor, or an int when the count is known on the host (no tensor operation)."""
    if reduction == "mean":
        denominator = default_denominator() if normalizer is None else normalizer
        if not isinstance(denominator, Tensor) and not sync_normalizer:
            # a host number (checked finite and >= 0): one division, 0 -> 1 as below
            return _in_dtype(total / (float(denominator) or 1.0), input_dtype)
        denominator = torch.as_tensor(denominator, device=total.device).reshape(())
        denominator = denominator.to(total.dtype).detach()
        if sync_normalizer:
            denominator = _all_reduce_mean(denominator)
        # 0 -> 1 (an empty or fully ignored batch gives 0); a negative, infinite or NaN denominator, which only an
        # unchecked accelerator tensor can bring here, makes the result NaN instead of a plausible wrong value
        usable = (denominator >= 0) & (denominator < float("inf"))
        denominator = torch.where(usable, denominator, torch.full_like(denominator, float("nan")))
        total = total / torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return _in_dtype(total, input_dtype)


def _in_dtype(total: Tensor, input_dtype: torch.dtype) -> Tensor:
    """A reduced loss in the inputs' dtype, float32 for float16 / bfloat16 inputs."""
    out_dtype = input_dtype if input_dtype in (torch.float32, torch.float64) else torch.float32
    return total if total.dtype == out_dtype else total.to(out_dtype)


def reduce_elementwise(
    loss: Tensor,
    reduction: str,
    inputs: Tensor,
    targets: Tensor,
    ignore_index: int | None,
    normalizer: Tensor | float | None = None,
    sync_normalizer: bool = False,
) -> Tensor:
    """Finish a per-element loss of the sigmoid family (already summed unless ``reduction="none"``): "none" returns
    it in the inputs' dtype; "mean" divides by the elements that count (all of them for float targets, C per
    non-ignored row for class indices) or by ``normalizer``."""
    if reduction == "none":
        return loss.to(inputs.dtype)
    return finish_reduction(
        loss, reduction, lambda: count_elements(inputs, targets, ignore_index, on_host=True), normalizer, sync_normalizer,
        inputs.dtype
    )


def weighted_loss(
    op: str,
    inputs: Tensor,
    targets: Tensor,
    reduction: str,
    weight: Tensor | None,
    *,
    tensors: dict[str, Tensor | None] | None = None,
    scalars: dict[str, float],
    ignore_index: int | None = None,
    scan_targets: Callable[[], None] | None = None,
) -> Tensor:
    """The loss of contract op ``op`` times an optional element ``weight``: unreduced for ``reduction="none"``, else
    its sum (fused into the kernel when there is no weight). ``scan_targets``: as in :func:`focal_loss_op`."""
    fuse_sum = reduction != "none" and weight is None
    loss = focal_loss_op(
        op, inputs, targets, tensors=tensors, scalars=scalars, ignore_index=ignore_index, reduce_sum=fuse_sum,
        scan_targets=scan_targets,
    )
    if weight is not None:
        loss = loss * weight
        if reduction != "none":
            loss = loss.sum()
    return loss
