r"""Focal losses from logits with their closed-form gradient attached, written with ``keras.ops`` (all back-ends).

Keras has no portable custom gradient, so a back-end's autodiff differentiates whatever composition computes the
loss and keeps its intermediates for the backward pass. Here the loss L and its derivative g = dL/dx are computed
in closed form from ``stop_gradient(x)`` (no autodiff graph), and joined to the logits by one multiply:

.. math::

    \tilde L = \mathrm{sg}(L) + (x - \mathrm{sg}(x))\, \mathrm{sg}(g)
    \qquad (\text{per-row losses: } \textstyle\sum_c (x_c - \mathrm{sg}(x_c))\, \mathrm{sg}(g_c)).

For finite x, x - sg(x) is exactly 0, so the value of :math:`\tilde L` is exactly L; its derivative with respect to
x is exactly g (every back-end differentiates one subtraction and one multiply and keeps g only, one logits-sized
tensor). Two consequences, which the ``gradient="autodiff"`` option of the public functions avoids:

- the labels get no gradient (``d L~ / d y_true = 0``): L and g are constants to the autodiff;
- the second derivative is 0 (g is a constant): Hessians, Hessian-vector products and gradient penalties on the
  logits are wrong with the attached form.

The closed forms are those of the PyTorch core (``focalkit.backends.pytorch.sigmoid.forward`` and
``softmax.forward`` / ``forward_soft``); with u = 1 - p_t they contain no u^(gamma - 1) factor, so g is finite
for every gamma >= 0 at every finite logit.

Reference:
    T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
    arXiv:1708.02002.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import keras
from keras import ops

__all__ = [
    "GRADIENT_MODES",
    "attach_gradient",
    "attach_row_gradient",
    "sigmoid_loss_and_grad",
    "soft_softmax_loss_and_grad",
    "soft_softmax_loss_with_gradient",
    "sparse_softmax_loss_and_grad",
]

GRADIENT_MODES = ("closed_form", "autodiff")
_SMALLEST_NORMAL = 1.1754943508222875e-38  # float32's smallest normal number


@functools.cache
def _tensorflow_xla_available() -> bool:
    """Whether TensorFlow compiles a ``jit_compile=True`` function here (probed once, eagerly)."""
    import tensorflow as tf

    try:
        with tf.init_scope():  # run eagerly even when called while an outer tf.function is being traced
            tf.function(lambda v: v + 1.0, jit_compile=True, autograph=False)(tf.constant(1.0))
    except Exception:  # noqa: BLE001 - a TensorFlow build without XLA's CPU/GPU JIT
        return False
    return True


def _fused_on_tensorflow(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a closed form built from ``keras.ops``, no autodiff inside) as one XLA computation on the TensorFlow
    back-end, unchanged on the others.

    TensorFlow runs each of the closed form's ~40 element-wise operations as its own pass over the logits (no fusion
    without XLA), JAX fuses them under ``jit``, PyTorch has focalkit's own kernels; compiled with
    ``tf.function(jit_compile=True)`` the whole closed form is one fused loop (``benchmarks/bench_keras.py`` times it
    against Keras's built-in losses). XLA compiles once per input shape and dtype (and per value of the Python
    arguments, gamma and a numeric alpha); without XLA in the TensorFlow build the function runs unfused.
    """
    compiled: list[Callable[..., Any]] = []

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if keras.backend.backend() != "tensorflow" or not _tensorflow_xla_available():
            return fn(*args, **kwargs)
        if not compiled:
            import tensorflow as tf

            compiled.append(tf.function(fn, jit_compile=True, autograph=False, reduce_retracing=True))
        return compiled[0](*args, **kwargs)

    return call


def attach_gradient(loss: Any, x: Any, grad: Any) -> Any:
    """sg(loss) + (x - sg(x)) sg(grad), element-wise: the value of ``loss``, the derivative ``grad`` w.r.t. ``x``.

    Args:
        loss, grad: tensors of ``x``'s shape computed without gradient (from ``stop_gradient(x)``).
        x: the logits the gradient flows to.

    Returns:
        A tensor of ``x``'s shape equal to ``loss`` whose derivative w.r.t. ``x`` is ``grad`` (and 0 w.r.t. anything
        else; its second derivative is 0).

    Example:
        >>> import numpy as np
        >>> x = np.array([1.0, -2.0], np.float32)
        >>> attached = attach_gradient(np.square(x), x, 2 * x)  # value x^2, gradient 2x
    """
    return ops.stop_gradient(loss) + (x - ops.stop_gradient(x)) * ops.stop_gradient(grad)


def attach_row_gradient(loss: Any, x: Any, grad: Any) -> Any:
    """sg(loss) + sum_c (x_c - sg(x_c)) sg(grad_c) over the last axis: per-row losses (``x``'s shape without its last
    axis) whose derivative w.r.t. the row's logits ``x`` (classes last) is ``grad`` (``x``'s shape)."""
    return ops.stop_gradient(loss) + ops.sum((x - ops.stop_gradient(x)) * ops.stop_gradient(grad), axis=-1)


@_fused_on_tensorflow
def sigmoid_loss_and_grad(x: Any, y: Any, gamma: float, alpha: Any | None) -> tuple[Any, Any]:
    r"""Per-element sigmoid focal loss and its derivative in closed form (no autodiff graph: ``x`` is detached).

    .. math::

        u = p (1 - y) + (1 - p) y,\quad \mathrm{CE} = y\,\mathrm{softplus}(-x) + (1 - y)\,\mathrm{softplus}(x),
        \quad a_t = \alpha y + (1 - \alpha)(1 - y),

        L = a_t u^\gamma \mathrm{CE},\qquad
        \frac{\partial L}{\partial x} = a_t u^\gamma \big[(1 - y) p - y (1 - p) + \gamma (1 - 2y)\, r\, \mathrm{CE}\big],
        \quad r = p (1 - p) / u\ (0 \text{ where } u = 0).

    p and 1 - p come from e = exp(-|x|) without subtraction; the cross-entropy is a sum of two non-negative
    terms: max(x, 0) - x y is the product x (1 - y) (x >= 0) or -x y (x < 0), so nothing cancels at y = 1, x = 17
    in float32.

    Args:
        x: float logits of any shape.
        y: float targets in [0, 1] broadcastable to ``x``.
        gamma: focusing parameter >= 0.
        alpha: None (a_t = 1), a number, or a tensor broadcastable to ``x`` (per-class values along the last axis).

    Returns:
        ``(loss, grad)``, both of the broadcast shape of ``x`` and ``y``, with no gradient.

    Example:
        >>> import numpy as np
        >>> loss, grad = sigmoid_loss_and_grad(np.array([2.0, -1.0], np.float32), np.array([1.0, 0.0], np.float32),
        ...                                    2.0, 0.25)
    """
    x, y = ops.stop_gradient(x), ops.stop_gradient(y)
    e = ops.exp(-ops.abs(x))
    log1p_e = ops.log1p(e)
    inv = 1.0 / (1.0 + e)
    e_inv = e * inv
    nonneg = x >= 0
    p = ops.where(nonneg, inv, e_inv)
    q = ops.where(nonneg, e_inv, inv)  # 1 - p without cancellation
    not_y = 1.0 - y
    # CE = max(x, 0) - x y + log1p(e) with max(x, 0) - x y as the product x (1 - y) or -x y: no cancellation
    ce = ops.where(nonneg, x * not_y, -x * y) + log1p_e
    p_neg, q_pos = p * not_y, q * y
    slope = p_neg - q_pos  # d CE / dx = p - y without p - 1 cancelling
    if gamma == 0.0:
        weight, bracket = None, slope
    else:
        u = p_neg + q_pos
        weight = _power(u, gamma)  # 0^gamma = 0 (gamma > 0): no u^(gamma - 1) anywhere
        # r = p (1 - p) / u <= 1; where u = 0 also p (1 - p) = 0, and where u is subnormal r multiplies CE ~ u
        r = p * q / ops.maximum(u, _SMALLEST_NORMAL)
        bracket = slope + (gamma * (not_y - y)) * r * ce
    if alpha is not None:
        a_t = (1.0 - alpha) + (2.0 * alpha - 1.0) * y  # alpha y + (1 - alpha)(1 - y)
        weight = a_t if weight is None else weight * a_t
    if weight is None:
        return ce, bracket
    return weight * ce, weight * bracket


def _power(u: Any, gamma: float) -> Any:
    """u**gamma for u >= 0 (gamma > 0), by multiplication for gamma 1 and 2."""
    if gamma == 1.0:
        return u
    if gamma == 2.0:
        return u * u
    return ops.power(u, gamma)


def _softmax_parts(x: Any) -> tuple[Any, Any, Any, Any, Any]:
    """For class-last logits: (z = x - max, e = exp(z), rest = S - 1, S, log S) with S = sum_c e_c.

    ``rest`` is accumulated directly (the entries below the maximum plus the number of tied maxima less one), so
    that log S = log1p(rest) and 1 - p of the largest class, rest / S, keep full accuracy when that class dominates.
    """
    z = x - ops.max(x, axis=-1, keepdims=True)
    e = ops.exp(z)
    top = z == 0.0
    ties = ops.sum(ops.cast(top, x.dtype), axis=-1, keepdims=True) - 1.0
    rest = ops.sum(ops.where(top, ops.zeros_like(e), e), axis=-1, keepdims=True) + ties
    return z, e, rest, 1.0 + rest, ops.log1p(rest)


@_fused_on_tensorflow
def sparse_softmax_loss_and_grad(x: Any, labels: Any, onehot: Any, gamma: float, weight: Any | None
                                 ) -> tuple[Any, Any]:
    r"""Per-row softmax focal loss with integer targets and its gradient in closed form (``x`` detached).

    With t the target, m = max_k x_k, S' = sum_{k != t} e^{x_k - m} (accumulated directly) and
    S = S' + e^{x_t - m}: :math:`\ell = \log p_t = x_t - m - \log S` (log S = log1p(S') where t is a largest class,
    so that it keeps full accuracy when p_t -> 1), u = 1 - p_t = S'/S, and

    .. math::

        L = -w_t u^\gamma \ell,\qquad A = w_t u^\gamma (u - \gamma p_t \ell) \ge 0,\qquad
        \partial L / \partial x_t = -A,\quad \partial L / \partial x_j = A\, e^{x_j - m} / S'\ (j \ne t).

    Args:
        x: float logits, classes last, shape ``(..., C)``.
        labels: int32 targets in [0, C), shape ``(...)``.
        onehot: boolean one-hot of ``labels``, ``x``'s shape.
        gamma: focusing parameter >= 0.
        weight: None or per-row weights w_t of shape ``(...)`` (alpha indexed by the target, 0 on ignored rows).

    Returns:
        ``(loss of shape (...), grad of shape (..., C))``, with no gradient.
    """
    x = ops.stop_gradient(x)
    z = x - ops.max(x, axis=-1, keepdims=True)
    e = ops.exp(z)
    s_others = ops.sum(ops.where(onehot, ops.zeros_like(e), e), axis=-1, keepdims=True)  # S'
    z_t = ops.take_along_axis(z, ops.expand_dims(labels, -1), axis=-1)
    e_t = ops.exp(z_t)
    s = s_others + e_t
    log_s = ops.where(z_t == 0.0, ops.log1p(s_others), ops.log(s))
    log_p = z_t - log_s
    p_t = e_t / s
    u = s_others / s
    row_weight = _power(u, gamma) if gamma != 0.0 else ops.ones_like(u)
    if weight is not None:
        row_weight = row_weight * ops.expand_dims(weight, -1)
    loss = -row_weight * log_p
    a = row_weight * (u - gamma * p_t * log_p)
    grad = ops.where(onehot, -a, e * (a / ops.where(s_others > 0, s_others, ops.ones_like(s_others))))
    return ops.squeeze(loss, axis=-1), grad


@_fused_on_tensorflow
def soft_softmax_loss_and_grad(x: Any, q: Any, gamma: float) -> tuple[Any, Any]:
    r"""Per-row softmax focal loss with soft (weighted) targets and its gradient in closed form (``x`` detached).

    With p = softmax(x), u_c = 1 - p_c (rest / S for the largest class, so no cancellation),
    :math:`\ell_c = \log p_c` and q_c the targets times the class weights:

    .. math::

        L = \sum_c q_c u_c^\gamma (-\ell_c),\qquad
        B_c = q_c u_c^\gamma (1 - \gamma p_c \ell_c / u_c),\qquad
        \partial L / \partial x_j = -B_j + p_j \sum_c B_c

    (:math:`\ell_c / u_c \to -1` where u_c = 0).

    Args:
        x: float logits, classes last, shape ``(..., C)``.
        q: weighted targets broadcastable to ``x``.
        gamma: focusing parameter >= 0.

    Returns:
        ``(loss of shape (...), grad of shape (..., C))``, with no gradient.
    """
    x, q = ops.stop_gradient(x), ops.stop_gradient(q)
    z, e, rest, s, log_s = _softmax_parts(x)
    log_p = z - log_s
    p = e / s
    if gamma == 0.0:
        loss = ops.sum(q * -log_p, axis=-1)
        b = q + ops.zeros_like(p)
    else:
        u = ops.where(z == 0.0, rest / s, 1.0 - p)  # only a largest class can have p > 1/2
        u_gamma = _power(u, gamma)
        weighted = q * u_gamma
        loss = ops.sum(weighted * -log_p, axis=-1)
        positive = u > 0
        log_p_over_u = ops.where(positive, log_p / ops.where(positive, u, ops.ones_like(u)), -ops.ones_like(u))
        b = weighted * (1.0 - gamma * p * log_p_over_u)
    grad = p * ops.sum(b, axis=-1, keepdims=True) - b
    return loss, grad


def soft_softmax_loss_with_gradient(x: Any, y: Any, gamma: float, alpha: float | list[float] | None,
                                    label_smoothing: float) -> Any:
    r"""Per-row soft-target softmax focal loss of class-last logits ``x`` whose derivative w.r.t. ``x`` is the
    closed form of :func:`soft_softmax_loss_and_grad` (none w.r.t. ``y``), with q = (y (1 - s) + s / C) alpha.

    On the PyTorch back-end this is :func:`focalkit.softmax_focal_loss` with class probabilities (its
    ``softmax_focal_soft`` op: the fused C kernel for CPU tensors, the PyTorch closed form elsewhere), which smooths
    and weights the targets itself: the forward pass computes the loss only and keeps just the logits and targets the
    caller holds anyway, and the backward pass recomputes the closed-form gradient in one pass; its second derivative
    is exact (the op's double backward differentiates the loss's log-space composition). On the other back-ends:
    :func:`soft_softmax_loss_and_grad` joined by :func:`attach_row_gradient` (second derivative 0).

    Args:
        x: float logits, classes last, shape ``(..., C)``.
        y: targets of ``x``'s shape (one-hot or soft), in ``x``'s dtype.
        gamma: focusing parameter >= 0.
        alpha: None, a number multiplying every term, or C per-class values.
        label_smoothing: s in [0, 1].

    Returns:
        Losses of shape ``(...)``.
    """
    if keras.backend.backend() == "torch":
        import focalkit  # the PyTorch core, present with this back-end (imported only here)

        num_classes = x.shape[-1]
        rows = focalkit.softmax_focal_loss(
            x.reshape(-1, num_classes), y.detach().expand(x.shape).reshape(-1, num_classes), alpha=alpha,
            gamma=gamma, label_smoothing=label_smoothing, reduction="none",
        )
        return rows.reshape(x.shape[:-1])
    q = y
    if label_smoothing:
        q = q * (1.0 - label_smoothing) + label_smoothing / ops.cast(ops.shape(x)[-1], x.dtype)
    if alpha is not None:
        q = q * ops.convert_to_tensor(alpha, dtype=x.dtype)
    loss, grad = soft_softmax_loss_and_grad(x, q, gamma)
    return attach_row_gradient(loss, x, grad)
