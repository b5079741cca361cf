"""torch.library custom ops over the back-end dispatch, differentiable and traceable by torch.compile.

Two operators are registered in the ``focalkit`` namespace:

- ``focalkit::sigmoid_focal_fwd(logits, targets, alpha_pos, alpha_neg, gamma, ignore_index, reduce_sum,
  compute_grad, backend) -> (loss, grad)``
- ``focalkit::softmax_focal_fwd(logits, targets, weight, alpha, gamma, ignore_index, reduce_sum, compute_grad,
  backend) -> (loss, grad)``

Each runs :func:`focalkit.kernels.dispatch.resolve_backend` at call time and then the chosen back-end's contract
function (see ``docs/CONTRACT.md``), which returns the loss and d loss_i / d x_i from one pass. ``grad`` is an empty
tensor when ``compute_grad`` is False. The ops have

- a fake (meta) implementation giving shapes and dtypes only, so ``torch.compile(fullgraph=True)`` traces through
  them without a graph break; ``gamma`` travels as a 0-d float64 CPU tensor (a float argument of a custom op is
  specialised by Dynamo, one graph per value): a Python float gamma that changes costs one recompile, after which
  Dynamo treats it as dynamic; a tensor gamma never recompiles (tested);
- an autograd formula: ``setup_context`` saves only the gradient computed in the forward pass (one logits-sized
  tensor in the logits' dtype) and the backward multiplies it by the incoming gradient. When that incoming gradient
  is a CPU scalar equal to 1 (``loss.backward()`` on a ``"sum"``), eager mode returns the saved gradient itself, which
  autograd then moves into ``.grad`` without a copy: forward + backward then allocate one logits-sized buffer in all.
  Double backward is not supported: with ``create_graph=True`` the gradient goes through the core's
  ``focalkit._fused_function.scale_saved_grad``, whose result raises if it is differentiated again.

Use :func:`sigmoid_focal` / :func:`softmax_focal` rather than the raw ops: they decide ``compute_grad`` and return
only the loss. Outside ``torch.compile`` they run the same implementation and autograd formula through a plain
``torch.autograd.Function`` instead of the op: this skips the op dispatch and the 1-2 s import of ``torch._dynamo``
that ``torch.library.custom_op`` performs at its first call (it would make the first call of a fresh process slow).

Example:
    >>> x = torch.randn(8, 3, requires_grad=True); y = torch.randint(0, 2, (8, 3)).float()
    >>> loss = sigmoid_focal(x, y, gamma=2.0, reduce_sum=True)
    >>> loss.backward()
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .._fused_function import remember_logits, scale_saved_grad
from .dispatch import get_forward, resolve_backend

__all__ = ["sigmoid_focal", "softmax_focal"]


def _loss_dtype(logits: Tensor) -> torch.dtype:
    return torch.promote_types(logits.dtype, torch.float32)


def _run(kind, logits, targets, backend, **kwargs):
    name = resolve_backend(kind, logits, targets, backend=None if backend == "" else backend)
    return get_forward(kind, name)(logits, targets, **kwargs)


# --------------------------------------------------------------------------------------------- sigmoid
def _sigmoid_impl(
    logits: Tensor,
    targets: Tensor,
    alpha_pos: Optional[Tensor],
    alpha_neg: Optional[Tensor],
    gamma: Tensor,
    ignore_index: Optional[int],
    reduce_sum: bool,
    compute_grad: bool,
    backend: str,
) -> tuple[Tensor, Tensor]:
    loss, grad = _run(
        "sigmoid",
        logits,
        targets,
        backend,
        alpha_pos=alpha_pos,
        alpha_neg=alpha_neg,
        gamma=float(gamma),
        ignore_index=ignore_index,
        reduce_sum=reduce_sum,
        compute_grad=compute_grad,
    )
    if grad is None:
        grad = logits.new_empty(0)
    return loss, grad


_sigmoid_focal_fwd = torch.library.custom_op("focalkit::sigmoid_focal_fwd", _sigmoid_impl, mutates_args=())


@_sigmoid_focal_fwd.register_fake
def _(logits, targets, alpha_pos, alpha_neg, gamma, ignore_index, reduce_sum, compute_grad, backend):
    loss = logits.new_empty(() if reduce_sum else logits.shape, dtype=_loss_dtype(logits))
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format) if compute_grad else logits.new_empty(0)
    return loss, grad


# --------------------------------------------------------------------------------------------- softmax
def _softmax_impl(
    logits: Tensor,
    targets: Tensor,
    weight: Optional[Tensor],
    alpha: Optional[Tensor],
    gamma: Tensor,
    ignore_index: Optional[int],
    reduce_sum: bool,
    compute_grad: bool,
    backend: str,
) -> tuple[Tensor, Tensor]:
    loss, grad = _run(
        "softmax",
        logits,
        targets,
        backend,
        weight=weight,
        alpha=alpha,
        gamma=float(gamma),
        ignore_index=ignore_index,
        reduce_sum=reduce_sum,
        compute_grad=compute_grad,
    )
    if grad is None:
        grad = logits.new_empty(0)
    return loss, grad


_softmax_focal_fwd = torch.library.custom_op("focalkit::softmax_focal_fwd", _softmax_impl, mutates_args=())


@_softmax_focal_fwd.register_fake
def _(logits, targets, weight, alpha, gamma, ignore_index, reduce_sum, compute_grad, backend):
    loss = logits.new_empty(() if reduce_sum else targets.shape, dtype=_loss_dtype(logits))
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format) if compute_grad else logits.new_empty(0)
    return loss, grad


# --------------------------------------------------------------------------------------------- autograd
def _setup_context(ctx, inputs, output):
    _, grad = output
    ctx.mark_non_differentiable(grad)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(grad)
    remember_logits(ctx, inputs[0])


def _scale(ctx, grad: Tensor, grad_output: Tensor | None, per_row: bool) -> Tensor | None:
    if grad_output is None:
        return None
    if (
        not torch.is_grad_enabled()  # create_graph=True goes through the core's double-backward guard below
        and not torch.compiler.is_compiling()
        and type(grad_output) is Tensor  # not a fake / functional / proxy tensor of a tracer (opcheck, export)
        and type(grad) is Tensor
        and grad_output.ndim == 0
        and grad_output.device.type == "cpu"
        and grad.device.type == "cpu"
        and bool(grad_output == 1)
    ):
        return grad  # no copy: autograd moves it into .grad once this node releases it
    return scale_saved_grad(grad, grad_output, per_row, ctx=ctx)


def _sigmoid_backward(ctx, grad_loss, _grad_grad):
    (grad,) = ctx.saved_tensors
    return _scale(ctx, grad, grad_loss, per_row=False), None, None, None, None, None, None, None, None


def _softmax_backward(ctx, grad_loss, _grad_grad):
    (grad,) = ctx.saved_tensors
    return _scale(ctx, grad, grad_loss, per_row=True), None, None, None, None, None, None, None, None


_sigmoid_focal_fwd.register_autograd(_sigmoid_backward, setup_context=_setup_context)
_softmax_focal_fwd.register_autograd(_softmax_backward, setup_context=_setup_context)


class _EagerSigmoid(torch.autograd.Function):
    """Eager twin of ``focalkit::sigmoid_focal_fwd``: same implementation and autograd formula, no op dispatch."""

    @staticmethod
    def forward(ctx, *args):  # type: ignore[override]
        out = _sigmoid_impl(*args)
        _setup_context(ctx, args, out)
        return out

    @staticmethod
    def backward(ctx, grad_loss, grad_grad):  # type: ignore[override]
        return _sigmoid_backward(ctx, grad_loss, grad_grad)


class _EagerSoftmax(torch.autograd.Function):
    """Eager twin of ``focalkit::softmax_focal_fwd``."""

    @staticmethod
    def forward(ctx, *args):  # type: ignore[override]
        out = _softmax_impl(*args)
        _setup_context(ctx, args, out)
        return out

    @staticmethod
    def backward(ctx, grad_loss, grad_grad):  # type: ignore[override]
        return _softmax_backward(ctx, grad_loss, grad_grad)


def _call(op, eager: type[torch.autograd.Function], *args):
    # Outside torch.compile an autograd.Function runs the same code: it skips the custom-op dispatch (tens of us per
    # call) and the lazy import of torch._dynamo (1-2 s) that torch.library.custom_op does at its first call.
    if torch.compiler.is_compiling() or _force_op:
        return op(*args)
    if torch.is_grad_enabled() and args[0].requires_grad:
        return eager.apply(*args)
    return _eager_no_grad(eager, *args)


def _eager_no_grad(eager, *args):
    impl = _sigmoid_impl if eager is _EagerSigmoid else _softmax_impl
    return impl(*args)


# Tests set this to run the registered custom ops in eager mode too.
_force_op = False


def _gamma_arg(gamma: float | Tensor) -> Tensor | float:
    """gamma for the op: a 0-d float64 CPU tensor while compiling (a float argument of a custom op would be
    specialised, one graph per value), the float itself in eager mode."""
    if not (torch.compiler.is_compiling() or _force_op):
        return float(gamma)
    if isinstance(gamma, Tensor):
        return gamma.detach().to(device="cpu", dtype=torch.float64).reshape(())
    # ones * gamma (not scalar_tensor / tensor / full): Dynamo then keeps a changing float gamma symbolic after one
    # recompile instead of specialising on every value (measured with torch 2.13)
    return torch.ones((), dtype=torch.float64) * gamma


def _wants_grad(logits: Tensor) -> bool:
    return torch.is_grad_enabled() and logits.requires_grad


def sigmoid_focal(
    logits: Tensor,
    targets: Tensor,
    *,
    alpha_pos: Tensor | None = None,
    alpha_neg: Tensor | None = None,
    gamma: float | Tensor = 2.0,
    ignore_index: int | None = None,
    reduce_sum: bool = False,
    backend: str | None = None,
) -> Tensor:
    """Differentiable sigmoid focal loss through ``focalkit::sigmoid_focal_fwd`` (kernel contract semantics).

    .. math:: L = a_t (1 - p_t)^\\gamma \\mathrm{CE}(x, y),\\quad p = \\sigma(x)

    Args:
        logits: float tensor viewed as (N, C, S).
        targets: float of the logits' shape, or int64 class indices (N, *spatial) (value C = background).
        alpha_pos, alpha_neg: float32 (C,) or None. gamma: >= 0. ignore_index: index to ignore or None.
        reduce_sum: return the 0-d float32 sum instead of per-element losses.
        backend: "auto" | "torch" | "cpu" | "triton", or None to read ``$FOCALKIT_BACKEND``.

    Returns:
        float32 loss (float64 for float64 logits), logits-shaped or 0-d.

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, arXiv:1708.02002.
    """
    loss, _ = _call(
        torch.ops.focalkit.sigmoid_focal_fwd, _EagerSigmoid,
        logits, targets, alpha_pos, alpha_neg, _gamma_arg(gamma), ignore_index, bool(reduce_sum), _wants_grad(logits),
        backend or "",
    )
    return loss


def softmax_focal(
    logits: Tensor,
    targets: Tensor,
    *,
    weight: Tensor | None = None,
    alpha: Tensor | None = None,
    gamma: float | Tensor = 2.0,
    ignore_index: int | None = None,
    reduce_sum: bool = False,
    backend: str | None = None,
) -> Tensor:
    """Differentiable softmax focal loss through ``focalkit::softmax_focal_fwd`` (class-index targets).

    .. math:: L = -w_t (1 - p_t)^\\gamma \\log p_t,\\quad p = \\mathrm{softmax}(x)_{\\text{dim } 1}

    Args:
        logits: float tensor (N, C) or (N, C, d1, ...). targets: int64 (N,) or (N, d1, ...).
        weight, alpha: float32 (C,) or None. gamma: >= 0. ignore_index: index to ignore or None.
        reduce_sum: return the 0-d float32 sum instead of per-row losses.
        backend: "auto" | "torch" | "cpu" | "triton", or None to read ``$FOCALKIT_BACKEND``.

    Returns:
        float32 per-row loss of the targets' shape (float64 for float64 logits), or 0-d.

    Reference: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, arXiv:1708.02002.
    """
    loss, _ = _call(
        torch.ops.focalkit.softmax_focal_fwd, _EagerSoftmax,
        logits, targets, weight, alpha, _gamma_arg(gamma), ignore_index, bool(reduce_sum), _wants_grad(logits),
        backend or "",
    )
    return loss
