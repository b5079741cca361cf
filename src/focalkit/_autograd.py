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
  already holds. The backward runs the fused back-end again with ``compute_grad=True`` (outside ``torch.compile``
  with ``GRADIENT_ONLY``: a back-end that can then skips the losses), which writes d loss / d logits in one pass,
  and multiplies it by the incoming gradient in place (for a ``"sum"`` whose incoming gradient is the CPU scalar 1,
  eager mode hands that fresh buffer to ``.grad`` untouched). In mode ``"store"`` the forward pass computes the
  gradient with the loss and saves it, and the backward returns it times the incoming gradient (always a new tensor,
  so that a retained graph's saved gradient is never handed out to be modified);
- with ``create_graph=True`` (double backward: Hessian-vector products, gradient penalties, meta-learning) the
  backward instead differentiates the op's *differentiable composition* (the same loss as log-space torch
  operations, :func:`focalkit.backends.get_differentiable`) with autograd, so second and higher derivatives are exact
  and finite.

Outside ``torch.compile`` the same implementation and autograd formula run through a plain
``torch.autograd.Function`` (:class:`_EagerLoss`): it skips the custom-op dispatch (tens of microseconds per call) and
the 1-2 s import of ``torch._dynamo`` that a custom op performs at its first call. A call resolves its back-end once
(:class:`_EagerCall`: the back-end, its contract function and keyword arguments, and the choice whether the targets
need a host scan, ``scan_targets``), and a small input (at most ``gradient_mode.SMALL_INPUT_ELEMENTS`` logits)
computes its gradient in the forward pass; its first backward hands that buffer on and drops it (no copy), and a
later backward through a retained graph recomputes it from the inputs, which it keeps for that and for double
backward.

Example:
    >>> x = torch.randn(8, 3, requires_grad=True); y = torch.randint(0, 2, (8, 3)).float()
    >>> loss = focal_loss_op("sigmoid_focal", x, y, scalars={"gamma": 2.0}, reduce_sum=True)
    >>> loss.backward()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from . import gradient_mode
from .backends import backend_counts_invalid_targets, get_differentiable, get_forward, resolve_backend
from .backends.contract import GRADIENT_ONLY, OPS, LossOp
from .errors import InvalidArgumentError
from .value_checks import value_checks_enabled

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
    """The op's implementation: resolve the back-end, call its contract function (an empty gradient when none)."""
    named = dict(zip(spec.tensor_args, tensors))
    values = dict(zip(spec.scalar_args, _scalar_values(scalars)))
    _, forward, kwargs = _prepare(spec, logits, targets, named, values, ignore_index, backend)
    loss, grad = forward(logits, targets, **kwargs, reduce_sum=reduce_sum, compute_grad=compute_grad)
    return loss, (logits.new_empty(0) if grad is None else grad)


# what _prepare returns: the back-end's name, its contract function and the keyword arguments for it
_Prepared = tuple[str, Callable[..., tuple[Tensor, Tensor | None]], dict[str, object]]


def _prepare(
    spec: LossOp, logits: Tensor, targets: Tensor, named: Mapping[str, Tensor | None], values: Mapping[str, float],
    ignore_index: int | None, backend: str | None,
) -> _Prepared:
    """Resolve the back-end of one call: its name, its contract function and the keyword arguments for it (all of
    them but ``reduce_sum`` and ``compute_grad``): the tensors present, the scalars, the optional scalars switched on
    (an option is passed only when it is on; one left out of ``values`` is off) and ``ignore_index``."""
    kwargs: dict[str, object] = {k: v for k, v in named.items() if v is not None}
    options = {}
    for key, value in values.items():
        if key not in spec.optional_scalars:
            kwargs[key] = value
        elif value != 0:
            options[key] = value
    name = resolve_backend(spec.name, logits, targets, {**named, **options} if options else named,
                           backend=backend or None)
    kwargs.update(options)
    kwargs["ignore_index"] = ignore_index
    return name, get_forward(spec.name, name), kwargs


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
def _setup_context(spec: LossOp, ctx, inputs, output) -> None:
    """The custom op's autograd context: the stored gradient (gradient mode "store") or the inputs."""
    logits, targets, tensors, scalars, ignore_index, reduce_sum, compute_grad, backend = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)
    ctx.stored_grad = bool(compute_grad)  # gradient mode "store": the forward computed the gradient
    if compute_grad:
        ctx.save_for_backward(output[1])
    else:
        ctx.save_for_backward(logits, targets, scalars, *tensors)
    ctx.spec = spec
    ctx.tensor_list_has_none = any(t is None for t in tensors)
    ctx.ignore_index = ignore_index
    ctx.backend = backend


def _broadcast(spec: LossOp, grad_output: Tensor, like: Tensor) -> Tensor:
    """The incoming gradient shaped to multiply a logits-shaped gradient."""
    if grad_output.ndim != 0 and spec.per_row:
        grad_output = grad_output.unsqueeze(1)
    return grad_output if grad_output.dtype == like.dtype else grad_output.to(like.dtype)


def _is_cpu_one(grad_output: Tensor) -> bool:
    """The incoming gradient is the CPU scalar 1 (``loss.backward()`` of a sum), read without a tensor operation."""
    return grad_output.is_cpu and grad_output.dim() == 0 and grad_output.item() == 1


def _scaled(spec: LossOp, grad: Tensor, grad_output: Tensor, *, owned: bool = False) -> Tensor:
    """grad times the incoming gradient. In eager mode: the buffer itself when that is the CPU scalar 1, and with
    ``owned`` (a fresh buffer nothing else refers to) multiplied in place, so that no second logits-sized buffer is
    allocated (a GPU's incoming 1, or the 1 / N of a mean)."""
    eager = not torch.compiler.is_compiling() and type(grad_output) is Tensor  # not a tracer's fake / proxy tensor
    if eager and grad.is_cpu and _is_cpu_one(grad_output):
        return grad  # no copy: autograd moves it into .grad once this node releases it
    if eager and owned and type(grad) is Tensor and grad.is_contiguous():  # no element stored twice (expand)
        return grad.mul_(_broadcast(spec, grad_output, grad))
    return grad * _broadcast(spec, grad_output, grad)


def _stored_scaled(spec: LossOp, stored: Tensor, grad_output: Tensor) -> Tensor:
    """The gradient the forward pass stored times the incoming gradient: always a new tensor, so that with
    ``retain_graph`` the stored gradient stays intact for the next backward (``torch.autograd.grad`` would hand the
    stored tensor itself to the caller)."""
    return stored * _broadcast(spec, grad_output, stored)


def _second_order(spec: LossOp, logits: Tensor, targets: Tensor, named: Mapping[str, Tensor],
                  values: Mapping[str, float], ignore_index: int | None, grad_output: Tensor) -> Tensor:
    """d loss / d logits as a differentiable function of the logits and of ``grad_output`` (create_graph=True)."""
    with torch.enable_grad():
        loss = get_differentiable(spec.name)(logits, targets, **named, **values, ignore_index=ignore_index)
        weights = grad_output.to(loss.dtype)
        weights = weights.expand(loss.shape) if weights.ndim == 0 else weights
        (grad,) = torch.autograd.grad(loss, logits, grad_outputs=weights, create_graph=True)
    return grad


def _backward(ctx, grad_loss, _grad_grad):
    """The custom op's backward: the stored gradient, the op called again (an opaque op for tracers), or with
    ``create_graph=True`` the differentiable composition."""
    spec: LossOp = ctx.spec
    grad = None
    double = torch.is_grad_enabled() and not torch.compiler.is_compiling()  # create_graph=True
    if grad_loss is not None and ctx.stored_grad:
        if double:  # gradient mode "store" kept only the first derivative
            raise InvalidArgumentError(DOUBLE_BACKWARD_IN_STORE_MODE)
        grad = _stored_scaled(spec, ctx.saved_tensors[0], grad_loss)
    elif grad_loss is not None:
        logits, targets, scalars, *tensors = ctx.saved_tensors
        if double and type(grad_loss) is Tensor:
            named = {k: v for k, v in zip(spec.tensor_args, tensors) if v is not None}
            values = dict(zip(spec.scalar_args, _scalar_values(scalars)))
            grad = _second_order(spec, logits, targets, named, values, ctx.ignore_index, grad_loss)
        else:
            _, grad = _CUSTOM_OPS[spec.name](logits, targets, list(tensors), scalars, ctx.ignore_index, True, True,
                                             ctx.backend)
            grad = _scaled(spec, grad, grad_loss)
    # the custom op's backward mirrors how torch.library flattened the inputs: a list of tensors is expanded, a list
    # holding a None is one leaf
    tensors_grad = None if ctx.tensor_list_has_none else [None] * len(spec.tensor_args)
    return grad, None, tensors_grad, None, None, None, None, None


def _register(spec: LossOp):
    def impl(logits, targets, tensors, scalars, ignore_index, reduce_sum, compute_grad, backend):
        return _run(spec, logits, targets, tensors, scalars, ignore_index, reduce_sum, compute_grad, backend)

    op = torch.library.custom_op(f"focalkit::{spec.name}", impl, mutates_args=(), schema=_SCHEMA)
    op.register_fake(lambda *args: _fake(spec, *args))
    op.register_autograd(_backward, setup_context=lambda ctx, inputs, output: _setup_context(spec, ctx, inputs, output))
    return op


_CUSTOM_OPS = {name: _register(spec) for name, spec in OPS.items()}


class _EagerCall:
    """One eager call of a contract op, everything but its logits and targets: the op, the contract function of the
    back-end it resolved to and its keyword arguments (the per-class vectors of C values, made by focalkit without
    autograd history, and an op's element_args, the caller's detached per-element scores / labels, ride here rather
    than among the saved tensors), and where the gradient comes from."""

    __slots__ = ("spec", "forward", "kwargs", "reduce_sum", "grad_in_forward", "keeps_inputs")

    def __init__(self, spec: LossOp, prepared: _Prepared, reduce_sum: bool, *, store: bool, small: bool) -> None:
        self.spec = spec
        _, self.forward, self.kwargs = prepared  # as _prepare returns them
        self.reduce_sum = reduce_sum
        self.grad_in_forward = store or small  # gradient mode "store", or a small input (either mode)
        self.keeps_inputs = small and not store  # a small input keeps its inputs too, for double backward

    def differentiable_arguments(self) -> tuple[dict[str, Tensor], dict[str, float]]:
        """The keyword arguments of the op's differentiable composition: (tensors present, scalars)."""
        named = {k: v for k, v in self.kwargs.items() if k in self.spec.tensor_args}
        values = {k: v for k, v in self.kwargs.items() if k in self.spec.scalar_args}
        return named, values


class _EagerLoss(torch.autograd.Function):
    """Eager twin of the custom ops: the same implementation and autograd formula, without the op dispatch (tens of
    microseconds per call) and with the call's arguments resolved once (:class:`_EagerCall`)."""

    @staticmethod
    def forward(ctx, logits, targets, call: _EagerCall):  # type: ignore[override]
        loss, grad = call.forward(logits, targets, **call.kwargs, reduce_sum=call.reduce_sum,
                                  compute_grad=call.grad_in_forward)
        ctx.call = call
        if call.keeps_inputs:
            # a small input: the gradient (at most SMALL_INPUT_ELEMENTS values) rides on the context, so that the
            # first backward can hand the buffer itself on and drop it (a later backward through a retained graph
            # recomputes it from the inputs, kept for that and for double backward)
            ctx.small_grad = grad
            ctx.save_for_backward(logits, targets)
        elif call.grad_in_forward:
            ctx.save_for_backward(grad)
        else:
            ctx.save_for_backward(logits, targets)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):  # type: ignore[override]
        if grad_loss is None:
            return None, None, None
        call: _EagerCall = ctx.call
        spec = call.spec
        double = torch.is_grad_enabled()  # create_graph=True
        if call.keeps_inputs and not double:
            grad, ctx.small_grad = ctx.small_grad, None
            if grad is not None:  # the first backward: nothing else refers to the buffer any more
                return _scaled(spec, grad, grad_loss, owned=True), None, None
        saved = ctx.saved_tensors
        if call.grad_in_forward and not call.keeps_inputs:
            if double:  # gradient mode "store" kept only the first derivative
                raise InvalidArgumentError(DOUBLE_BACKWARD_IN_STORE_MODE)
            return _stored_scaled(spec, saved[0], grad_loss), None, None
        logits, targets = saved
        if double:
            named, values = call.differentiable_arguments()
            grad = _second_order(spec, logits, targets, named, values, call.kwargs["ignore_index"], grad_loss)
            return grad, None, None
        _, grad = call.forward(logits.detach(), targets, **call.kwargs, reduce_sum=True, compute_grad=GRADIENT_ONLY)
        # a new gradient buffer that only this backward holds
        return _scaled(spec, grad, grad_loss, owned=True), None, None


# torch.autograd.Function.apply without its Python wrapper (argument binding for setup_context, functorch checks and
# unwrapping: about 5 us, a tenth of a small call); _apply_eager takes the wrapper whenever a functorch transform
# (vmap, grad, ...) is active, which needs it
_EAGER_APPLY = torch._C._FunctionBase.__dict__["apply"].__get__(None, _EagerLoss)


def _apply_eager(logits: Tensor, targets: Tensor, call: _EagerCall) -> Tensor:
    if torch._C._are_functorch_transforms_active():
        return _EagerLoss.apply(logits, targets, call)
    return _EAGER_APPLY(logits, targets, call)


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
    scan_targets: Callable[[], None] | None = None,
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
        scan_targets: the host scan of the targets' values (raising the standard error), or None. It runs when value
            checks are on for the targets (:func:`focalkit.value_checks_enabled`) unless the back-end chosen counts
            invalid targets in its own pass (the fused CPU kernels do, and raise the same error): the choice is made
            once, here.

    Returns:
        float32 loss (float64 for float64 logits).
    """
    spec = OPS[op]
    tensors = tensors or {}
    scan = scan_targets is not None and value_checks_enabled(targets)  # never while compiling
    if torch.is_grad_enabled() and targets.requires_grad:
        if scan:  # the differentiable composition counts nothing
            scan_targets()
        # soft targets that require grad (distillation, learned labels): the differentiable composition, which
        # autograd differentiates exactly with respect to the logits and the targets
        loss = get_differentiable(op)(
            logits, targets, **{k: v for k, v in tensors.items() if v is not None},
            **{k: float(v) for k, v in scalars.items()}, ignore_index=ignore_index,
        )
        return loss.sum() if reduce_sum else loss
    reduce_sum = bool(reduce_sum)
    differentiable = torch.is_grad_enabled() and logits.requires_grad
    store = differentiable and gradient_mode.get_gradient_mode() == "store"
    if torch.compiler.is_compiling():
        # an optional scalar that is not given is off (0)
        scalar_list = [scalars.get(k, 0.0) if k in spec.optional_scalars else scalars[k] for k in spec.scalar_args]
        loss, _ = _CUSTOM_OPS[op](
            logits, targets, [tensors.get(k) for k in spec.tensor_args], _scalars_for_compile(scalar_list),
            ignore_index, reduce_sum, store, backend or "",
        )
        return loss
    named = {k: tensors.get(k) for k in spec.tensor_args}
    values = {k: float(v) for k, v in scalars.items() if k in spec.scalar_args}
    prepared = _prepare(spec, logits, targets, named, values, ignore_index, backend)
    if scan and not backend_counts_invalid_targets(prepared[0]):
        scan_targets()
    if differentiable:
        # a small input computes its gradient in the forward pass in either mode: one pass instead of two, and
        # the few kilobytes held until backward cost less than a second call (gradient_mode.SMALL_INPUT_ELEMENTS)
        small = not store and logits.numel() <= gradient_mode.SMALL_INPUT_ELEMENTS
        return _apply_eager(logits, targets, _EagerCall(spec, prepared, reduce_sum, store=store, small=small))
    _, forward, kwargs = prepared
    loss, _ = forward(logits, targets, **kwargs, reduce_sum=reduce_sum, compute_grad=False)
    return loss
