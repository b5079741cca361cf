"""Softmax focal loss for JAX with integer labels: per-example, log-space, with a closed-form ``custom_jvp``."""

from __future__ import annotations

import functools
import numbers
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from focalkit.errors import argument_error, type_error
from focalkit.jax._checks import as_array, check_alpha, check_class_indices, check_gamma, float_logits, mark_invalid
from focalkit.jax._stable import TINY as _TINY
from focalkit.jax._stable import sigmoid as _sigmoid

__all__ = ["softmax_focal_loss"]


def _terms(x: jnp.ndarray, t: jnp.ndarray, gamma: float, with_grad: bool) -> tuple[Any, ...]:
    """Loss -u^g log p_t per row (class axis last) and, if asked, its gradient in x (stable closed forms).

    Everything comes from d = log S' - x_t, S' = sum_{j != t} exp(x_j) accumulated directly relative to its own
    maximum: u = S'/S = sigmoid(d), p_t = sigmoid(-d), log p_t = -softplus(d). So neither u nor log p_t
    cancels or underflows when the target dominates.
    """
    num_classes = x.shape[-1]
    onehot = jnp.arange(num_classes) == t[..., None]
    x_t = jnp.sum(jnp.where(onehot, x, 0.0), axis=-1)
    x_other = jnp.where(onehot, -jnp.inf, x)
    m_o = jax.lax.stop_gradient(jnp.max(x_other, axis=-1, keepdims=True))
    e_o = jnp.exp(x_other - m_o)  # 0 at the target
    s_o = jnp.sum(e_o, axis=-1)  # >= 1
    d = (m_o[..., 0] - x_t) + jnp.log(s_o)
    nlog_pt = jax.nn.softplus(d)  # -log p_t
    if gamma == 0.0:
        u_g = jnp.ones_like(d)
    else:
        u = _sigmoid(d)
        big = u > _TINY
        u_g = jnp.where(big, jnp.where(big, u, 1.0) ** gamma, jnp.exp(gamma * jax.nn.log_sigmoid(d)))
    loss = u_g * nlog_pt
    if not with_grad:
        return (loss,)
    u, p_t = _sigmoid(d), _sigmoid(-d)
    a = u_g * (u + gamma * p_t * nlog_pt)  # >= 0
    q = e_o / s_o[..., None]  # exp(x_j) / S' for j != t, 0 at t
    grad = jnp.where(onehot, -a[..., None], a[..., None] * q)
    return loss, grad


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _focal(x: jnp.ndarray, t: jnp.ndarray, gamma: float) -> jnp.ndarray:
    return _terms(x, t, gamma, with_grad=False)[0]


def _focal_jvp(gamma: float, primals: tuple, tangents: tuple) -> tuple[jnp.ndarray, jnp.ndarray]:
    x, t = primals
    x_dot = tangents[0]
    loss, grad = _terms(x, t, gamma, with_grad=True)
    if isinstance(x_dot, SymbolicZero):
        return loss, jnp.zeros_like(loss)
    return loss, jnp.sum(grad * x_dot, axis=-1)


_focal.defjvp(_focal_jvp, symbolic_zeros=True)


def softmax_focal_loss(
    logits: Any,
    labels: Any,
    *,
    alpha: float | Any | None = None,
    gamma: float = 2.0,
    axis: int = -1,
    where: Any | None = None,
    ignore_index: int | None = -100,
) -> jnp.ndarray:
    r"""Softmax (multi-class) focal loss per example with integer labels (Lin et al. 2017, eq. 5 over a softmax).

    .. math::
        p = \mathrm{softmax}(x),\quad u = 1 - p_t = S'/S,\quad
        \mathrm{FL} = -\alpha_t\, u^\gamma \log p_t,

    computed from :math:`d = \log S' - x_t`, :math:`S' = \sum_{k \ne t} e^{x_k}` accumulated directly (not as
    :math:`S - e^{x_t}`): :math:`u = \sigma(d)`, :math:`p_t = \sigma(-d)`,
    :math:`-\log p_t = \mathrm{softplus}(d)`. The gradient is the closed form
    :math:`A = \alpha_t u^\gamma (u - \gamma p_t \log p_t)`,
    :math:`\partial/\partial x_t = -A`, :math:`\partial/\partial x_j = A\, e^{x_j}/\sum_{k\ne t} e^{x_k}`, supplied
    through :func:`jax.custom_jvp`; ``grad``, ``jacfwd``, ``hessian``, ``jit`` and ``vmap`` work and stay finite for
    any finite logits and ``gamma >= 0``. ``gamma = 0`` and ``alpha = None`` give
    ``optax.softmax_cross_entropy_with_integer_labels``. Semantics equal ``focalkit.softmax_focal_loss`` with
    ``reduction="none"`` (there the class axis is 1; here it is ``axis``, by default the last, as in optax).

    Args:
        logits: floating array ``(..., C, ...)`` with the ``C >= 2`` classes along ``axis``.
        labels: integer array of the logits' shape without ``axis``: class indices in ``[0, C)``, or
            ``ignore_index`` (loss 0 and gradient 0). Other values raise :class:`~focalkit.InvalidArgumentError`
            where they can be read (NumPy / Python inputs, concrete CPU arrays); where they cannot (under ``jit``,
            ``vmap``, or on an accelerator) their rows give NaN losses.
        alpha: None (no weighting), a number in ``[0, 1]`` multiplying every term, or per-class values in
            ``[0, 1]`` of shape ``(C,)`` indexed by the target class (a traced array's values are not checked: rows
            whose class has an alpha outside ``[0, 1]`` give NaN).
        gamma: focusing parameter, a static Python number ``>= 0``.
        axis: the class axis.
        where: optional boolean mask of the labels' shape; False entries give loss 0 and gradient 0 (and their
            labels are not checked).
        ignore_index: label value of entries to ignore (loss 0, gradient 0), as in the PyTorch core (default
            -100); None for none.

    Returns:
        Per-example losses of the labels' shape, in the logits' dtype (float32 for float16/bfloat16 logits).

    Example:
        >>> import jax.numpy as jnp
        >>> from focalkit.jax import softmax_focal_loss
        >>> softmax_focal_loss(jnp.array([[2.0, 0.0, -1.0]]), jnp.array([0]), gamma=2.0).shape
        (1,)

    References:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """
    g = check_gamma(gamma)
    a, a_invalid = check_alpha(alpha, family="softmax")
    if ignore_index is not None and (not isinstance(ignore_index, numbers.Integral) or isinstance(ignore_index, bool)):
        raise type_error("ignore_index", "an integer or None", repr(ignore_index))
    ignore = None if ignore_index is None else int(ignore_index)
    x = float_logits("logits", logits)
    t = as_array("labels", labels, "an integer array of class indices")
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise type_error("labels", "an integer array of class indices", t.dtype)
    if x.ndim < 1:
        raise argument_error("logits", "an array with a class axis", "a 0-d array")
    x = jnp.moveaxis(x, axis, -1)
    num_classes = x.shape[-1]
    if num_classes < 2:
        raise argument_error("logits", "at least 2 classes along axis", num_classes)
    if t.shape != x.shape[:-1]:
        raise argument_error("labels", f"shape {tuple(x.shape[:-1])} (logits without axis {axis})", tuple(t.shape))
    if a is not None and not isinstance(a, float) and a.shape != (num_classes,):
        raise argument_error("alpha", f"a number or an array of shape ({num_classes},)", tuple(a.shape))
    mask = None
    if where is not None:
        mask = as_array("where", where, "a boolean array")
        if mask.shape != t.shape:
            raise argument_error("where", f"shape {tuple(t.shape)}", tuple(mask.shape))
        mask = mask.astype(bool)
    t_invalid = check_class_indices("labels", labels, t, num_classes, ignore,
                                    None if where is None else (where, mask))
    valid = (t >= 0) & (t < num_classes)
    if ignore is not None and 0 <= ignore < num_classes:
        valid = valid & (t != ignore)
    if mask is not None:
        valid = valid & mask
    t_safe = jnp.where(valid, t, 0)
    loss = _focal(x, t_safe, g)
    if a is not None:
        if isinstance(a, float):
            loss = a * loss
        else:
            if a_invalid is not None:  # traced per-class alpha outside [0, 1]: NaN in the rows of those classes
                bad_alpha = a_invalid[t_safe] & valid
                t_invalid = bad_alpha if t_invalid is None else t_invalid | bad_alpha
                a = jnp.where(a_invalid, 0.0, a)
            loss = a.astype(loss.dtype)[t_safe] * loss
    return mark_invalid(jnp.where(valid, loss, 0.0), t_invalid)
