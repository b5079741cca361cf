"""The one autograd mechanism of every focalkit loss: ``torch.library`` custom ops built from the kernel contract.

For every op of :data:`focalkit.backends.contract.OPS` this module registers ``focalkit::<op>`` with one schema::

    (Tensor logits, Tensor targets, Tensor?[] tensors, Tensor scalars, int? ignore_index, bool reduce_sum,
     bool compute_grad, str backend) -> (Tensor loss, Tensor grad)

- the implementation resolves the back-end (:func:`focalkit.backends.resolve_backend`) and runs its contract
  function; ``grad`` is an empty tensor unless ``compute_grad``;
- a fake implementation gives shapes and dtypes only, so ``torch.compile(fullgraph=True)`` traces through every loss
  without a graph break; the scalars (gamma, beta, ...) travel as one float64 CPU tensor, so a changing gamma does not
  specialise the graph (a float argument of a custom op would);
- in gradient mode ``"recompute"`` (:mod:`focalkit.gradient_mode`, the default) the autograd formula saves only the
  inputs (logits and targets, plus the per-class vectors of C values): no logits-sized tensor beyond what the caller
  already holds. The backward runs the fused back-end again with ``compute_grad=True``, which writes
  d loss / d logits in one pass, and multiplies it by the incoming gradient in place (for a ``"sum"`` whose
  incoming gradient is the CPU scalar 1, eager mode hands that fresh buffer to ``.grad`` untouched). In mode ``"store"``
  the forward pass computes the gradient with the loss and saves it, and the backward returns it times the incoming
  gradient (always a new tensor, so that a retained graph's saved gradient is never handed out to be modified);
- with ``create_graph=True`` (double backward: Hessian-vector products, gradient penalties, meta-learning) the
  backward instead differentiates the op's *differentiable composition* (the same loss as log-space torch
  operations, :func:`focalkit.backends.get_differentiable`) with autograd, so second and higher derivatives are exact
  and finite.

Outside ``torch.compile`` the same implementation and autograd formula run through a plain
``torch.autograd.Function`` (:class:`_EagerLoss`): it skips the custom-op dispatch (tens of microseconds per call) and
the 1-2 s import of ``torch._dynamo`` that a custom op performs at its first call.

Example:
    >>> x = torch.randn(8, 3, requires_grad=True); y = torch.randint(0, 2, (8, 3)).float()
    >>> loss = focal_loss_op("sigmoid_focal", x, y, scalars={"gamma": 2.0}, reduce_sum=True)
    >>> loss.backward()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from . import gradient_mode
from .backends import get_differentiable, get_forward, resolve_backend
from .backends.contract import OPS, LossOp
from .errors import InvalidArgumentError

__all__ = ["focal_loss_op"]

DOUBLE_BACKWARD_IN_STORE_MODE = (
    "create_graph: expected gradient mode 'recompute' for double backward (the loss kept only its first derivative), "
    "got gradient mode 'store'; call focalkit.set_gradient_mode('recompute')"
)

_SCHEMA = (
    "(Tensor logits, Tensor targets, Tensor?[] tensors, Tensor scalars, SymInt? ignore_index, bool reduce_sum, "
    "bool compute_grad, str backend) -> (Tensor, Tensor)"
)


def _scalar_values(scalars: Tensor | Sequence[float]) -> list[float]:
    return scalars.tolist() if isinstance(scalars, Tensor) else [float(v) for v in scalars]


def _run(
    spec: LossOp, logits: Tensor, targets: Tensor, tensors: Sequence[Tensor | None], scalars: Tensor | Sequence[float],
    ignore_index: int | None, reduce_sum: bool, compute_grad: bool, backend: str,
) -> tuple[Tensor, Tensor]:
    """The op's implementation: resolve the back-end, call its contract function."""
    return _run_resolved(spec, logits, targets, tensors, scalars, ignore_index, reduce_sum, compute_grad, backend)[:2]


def _run_resolved(
    spec: LossOp, logits: Tensor, targets: Tensor, tensors: Sequence[Tensor | None], scalars: Tensor | Sequence[float],
    ignore_index: int | None, reduce_sum: bool, compute_grad: bool, backend: str,
) -> tuple[Tensor, Tensor, str]:
    """:func:`_run`, also returning the name of the back-end that ran (the eager backward reuses it)."""
    named = dict(zip(spec.tensor_args, tensors))
    values = dict(zip(spec.scalar_args, _scalar_values(scalars)))
    options = {k: values.pop(k, 0.0) for k in spec.optional_scalars}  # trailing optional scalars may be left out
    options = {k: v for k, v in options.items() if v != 0}  # an option is passed only when it is on
    name = resolve_backend(spec.name, logits, targets, {**named, **options}, backend=backend or None)
    present = {k: v for k, v in named.items() if v is not None}
    loss, grad = get_forward(spec.name, name)(
        logits, targets, **present, **values, **options,
        ignore_index=ignore_index, reduce_sum=reduce_sum, compute_grad=compute_grad,
    )
    return loss, (logits.new_empty(0) if grad is None else grad), name


def _loss_shape(spec: LossOp, logits: Tensor, reduce_sum: bool) -> tuple[int, ...]:
    if reduce_sum:
        return ()
    if spec.per_row:
        return (logits.shape[0], *logits.shape[2:])
    return tuple(logits.shape)


def _fake(spec: LossOp, logits, targets, tensors, scalars, ignore_index, reduce_sum, compute_grad, backend):
    loss = logits.new_empty(_loss_shape(spec, logits, reduce_sum), dtype=torch.promote_types(logits.dtype, torch.float32))
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format) if compute_grad else logits.new_empty(0)
    return loss, grad


# --------------------------------------------------------------------------------------------- autograd formula
def _setup_context(spec: LossOp, ctx, inputs, output, *, eager: bool = False, keep_inputs: bool = False) -> None:
    logits, targets, tensors, scalars, ignore_index, reduce_sum, compute_grad, backend = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)
    ctx.stored_grad = bool(compute_grad)  # gradient mode "store" or a small input: the forward computed the gradient
    ctx.kept_inputs = bool(compute_grad and keep_inputs)  # a small input: its inputs too, for double backward
    scalar_tensor = scalars if isinstance(scalars, Tensor) else None
    if ctx.kept_inputs:
        ctx.save_for_backward(output[1], logits, targets, scalar_tensor)
        ctx.tensors = tuple(tensors)
    elif compute_grad:
        ctx.save_for_backward(output[1])
        ctx.tensors = ()
    elif eager:  # the per-class vectors (C values each, made by focalkit, no autograd history) ride on the context,
        # as do an op's element_args (the caller's detached per-element scores / labels, held by the caller anyway)
        ctx.save_for_backward(logits, targets, scalar_tensor)
        ctx.tensors = tuple(tensors)
    else:
        ctx.save_for_backward(logits, targets, scalar_tensor, *tensors)
        ctx.tensors = None
    ctx.spec = spec
    ctx.eager = eager
    ctx.tensor_list_has_none = any(t is None for t in tensors)
    ctx.scalar_values = None if scalar_tensor is not None else tuple(scalars)
    ctx.ignore_index = ignore_index
    ctx.reduce_sum = reduce_sum
    ctx.backend = backend


def _broadcast(spec: LossOp, grad_output: Tensor, like: Tensor) -> Tensor:
    """The incoming gradient shaped to multiply a logits-shaped gradient."""
    if grad_output.ndim != 0 and spec.per_row:
        grad_output = grad_output.unsqueeze(1)
    return grad_output.to(like.dtype)


def _scaled(spec: LossOp, grad: Tensor, grad_output: Tensor, *, owned: bool = False) -> Tensor:
    """grad times the incoming gradient. In eager mode: the buffer itself when that is the CPU scalar 1, and with
    ``owned`` (a fresh buffer nothing else refers to) multiplied in place, so that no second logits-sized buffer is
    allocated (a GPU's incoming 1, or the 1 / N of a mean)."""
    eager = not torch.compiler.is_compiling() and type(grad_output) is Tensor  # not a tracer's fake / proxy tensor
    if (
        eager
        and grad_output.ndim == 0
        and grad_output.device.type == "cpu"
        and grad.device.type == "cpu"
        and bool(grad_output == 1)
    ):
        return grad  # no copy: autograd moves it into .grad once this node releases it
    if eager and owned and type(grad) is Tensor and grad.is_contiguous():  # no element stored twice (expand)
        return grad.mul_(_broadcast(spec, grad_output, grad))
    return grad * _broadcast(spec, grad_output, grad)


def _first_derivative(ctx, logits, targets, tensors, scalars, grad_output: Tensor) -> Tensor:
    spec: LossOp = ctx.spec
    if not ctx.eager:  # the custom op's backward: call the op again, so that tracers see an opaque op
        _, grad = _CUSTOM_OPS[spec.name](logits, targets, list(tensors), scalars, ctx.ignore_index, True, True, ctx.backend)
    else:
        _, grad = _run(spec, logits.detach(), targets, tensors, scalars, ctx.ignore_index, True, True, ctx.backend)
    # the eager back-end call returned a new gradient buffer that only this backward holds
    return _scaled(spec, grad, grad_output, owned=ctx.eager)


def _second_order(ctx, logits, targets, tensors, scalars, grad_output: Tensor) -> Tensor:
    """d loss / d logits as a differentiable function of the logits and of ``grad_output`` (create_graph=True)."""
    spec: LossOp = ctx.spec
    named = {k: v for k, v in zip(spec.tensor_args, tensors) if v is not None}
    values = dict(zip(spec.scalar_args, _scalar_values(scalars)))
    with torch.enable_grad():
        loss = get_differentiable(spec.name)(logits, targets, **named, **values, ignore_index=ctx.ignore_index)
        weights = grad_output.to(loss.dtype)
        weights = weights.expand(loss.shape) if weights.ndim == 0 else weights
        (grad,) = torch.autograd.grad(loss, logits, grad_outputs=weights, create_graph=True)
    return grad


def _saved_inputs(ctx) -> tuple[Tensor, Tensor, Tensor | None, Sequence[Tensor | None]]:
    """(logits, targets, scalar tensor or None, per-class tensors) as :func:`_setup_context` saved them."""
    if ctx.kept_inputs:
        _, logits, targets, scalar_tensor = ctx.saved_tensors
        return logits, targets, scalar_tensor, ctx.tensors
    logits, targets, scalar_tensor, *tensors = ctx.saved_tensors
    return logits, targets, scalar_tensor, tensors if ctx.tensors is None else ctx.tensors


def _backward(ctx, grad_loss, _grad_grad):
    grad = None
    double = torch.is_grad_enabled() and not torch.compiler.is_compiling()  # create_graph=True
    second_order = double and type(grad_loss) is Tensor
    if grad_loss is not None and ctx.stored_grad and not (ctx.kept_inputs and second_order):
        if double and not ctx.kept_inputs:  # gradient mode "store" kept only the first derivative
            raise InvalidArgumentError(DOUBLE_BACKWARD_IN_STORE_MODE)
        stored = ctx.saved_tensors[0]
        # always a new tensor: with retain_graph the stored gradient must stay intact for the next backward
        grad = stored * _broadcast(ctx.spec, grad_loss, stored)
    elif grad_loss is not None:
        logits, targets, scalar_tensor, tensors = _saved_inputs(ctx)
        scalars = scalar_tensor if scalar_tensor is not None else ctx.scalar_values
        if second_order:
            grad = _second_order(ctx, logits, targets, tensors, scalars, grad_loss)
        else:
            grad = _first_derivative(ctx, logits, targets, tensors, scalars, grad_loss)
    # the custom op's backward mirrors how torch.library flattened the inputs: a list of tensors is expanded, a list
    # holding a None is one leaf
    tensors_grad = None if ctx.eager or ctx.tensor_list_has_none else [None] * len(ctx.spec.tensor_args)
    return grad, None, tensors_grad, None, None, None, None, None


def _register(spec: LossOp):
    def impl(logits, targets, tensors, scalars, ignore_index, reduce_sum, compute_grad, backend):
        return _run(spec, logits, targets, tensors, scalars, ignore_index, reduce_sum, compute_grad, backend)

    op = torch.library.custom_op(f"focalkit::{spec.name}", impl, mutates_args=(), schema=_SCHEMA)
    op.register_fake(lambda *args: _fake(spec, *args))
    op.register_autograd(_backward, setup_context=lambda ctx, inputs, output: _setup_context(spec, ctx, inputs, output))
    return op


_CUSTOM_OPS = {name: _register(spec) for name, spec in OPS.items()}


class _EagerLoss(torch.autograd.Function):
    """Eager twin of the custom ops: the same implementation and autograd formula, without the op dispatch."""

    @staticmethod
    def forward(ctx, spec, logits, targets, tensors, scalars, ignore_index, reduce_sum, store, backend, small):  # type: ignore[override]
        loss, grad, name = _run_resolved(spec, logits, targets, tensors, scalars, ignore_index, reduce_sum, store, backend)
        out = (loss, grad)
        # the backward runs on the back-end the forward resolved to (no second walk over the priority list)
        inputs = (logits, targets, tensors, scalars, ignore_index, reduce_sum, store, name)
        _setup_context(spec, ctx, inputs, out, eager=True, keep_inputs=small)
        return out

    @staticmethod
    def backward(ctx, grad_loss, grad_grad):  # type: ignore[override]
        return (None, *_backward(ctx, grad_loss, grad_grad), None)


def _scalars_for_compile(values: Sequence[float | Tensor]) -> Tensor:
    """The scalars as one float64 CPU tensor built so that Dynamo keeps a changing float symbolic after one
    recompile instead of specialising on every value (``ones * value``, measured with torch 2.13)."""
    parts = []
    for value in values:
        if isinstance(value, Tensor):
            parts.append(value.detach().to(device="cpu", dtype=torch.float64).reshape(()))
        else:
            parts.append(torch.ones((), dtype=torch.float64) * value)
    if not parts:  # an op without scalar arguments (distribution_focal)
        return torch.zeros(0, dtype=torch.float64)
    return torch.stack(parts)


def focal_loss_op(
    op: str,
    logits: Tensor,
    targets: Tensor,
    *,
    tensors: Mapping[str, Tensor | None] | None = None,
    scalars: Mapping[str, float | Tensor],
    ignore_index: int | None = None,
    reduce_sum: bool = False,
    backend: str | None = None,
) -> Tensor:
    """The loss of contract op ``op`` (per element, per row, or its float32 sum), differentiable w.r.t. ``logits``.

    Args:
        op: a name in :data:`focalkit.backends.contract.OPS`.
        logits, targets: already validated tensors.
        tensors: the op's optional per-class vectors (and per-element ``element_args``) by name (missing or None:
            absent).
        scalars: the op's float hyper-parameters by name (all of them; an optional one left out is off).
        ignore_index: index-target value to ignore, or None.
        reduce_sum: return the 0-d sum instead of unreduced losses.
        backend: ``"auto"`` | ``"torch"`` | ``"cpu"`` | ``"triton"``, or None to read ``$FOCALKIT_BACKEND``.

    Returns:
        float32 loss (float64 for float64 logits).
    """
    spec = OPS[op]
    tensors = tensors or {}
    if torch.is_grad_enabled() and targets.requires_grad:
        # soft targets that require grad (distillation, learned labels): the differentiable composition, which
        # autograd differentiates exactly with respect to the logits and the targets
        loss = get_differentiable(op)(
            logits, targets, **{k: v for k, v in tensors.items() if v is not None},
            **{k: float(v) for k, v in scalars.items()}, ignore_index=ignore_index,
        )
        return loss.sum() if reduce_sum else loss
    tensor_list = [tensors.get(name) for name in spec.tensor_args]
    # an optional scalar that is not given is off (0)
    scalar_list = [scalars.get(name, 0.0) if name in spec.optional_scalars else scalars[name] for name in spec.scalar_args]
    backend = backend or ""
    reduce_sum = bool(reduce_sum)
    store = gradient_mode.get_gradient_mode() == "store" and torch.is_grad_enabled() and logits.requires_grad
    if torch.compiler.is_compiling():
        loss, _ = _CUSTOM_OPS[op](
            logits, targets, tensor_list, _scalars_for_compile(scalar_list), ignore_index, reduce_sum, store, backend
        )
        return loss
    values = tuple(float(v) for v in scalar_list)
    if torch.is_grad_enabled() and logits.requires_grad:
        # a small input computes its gradient in the forward pass in either mode: one pass instead of two, and
        # the few kilobytes held until backward cost less than a second call (gradient_mode.SMALL_INPUT_ELEMENTS)
        small = not store and logits.numel() <= gradient_mode.SMALL_INPUT_ELEMENTS
        loss, _ = _EagerLoss.apply(spec, logits, targets, tensor_list, values, ignore_index, reduce_sum, store or small,
                                   backend, small)
        return loss
    loss, _ = _run(spec, logits, targets, tensor_list, values, ignore_index, reduce_sum, False, backend)
    return loss
