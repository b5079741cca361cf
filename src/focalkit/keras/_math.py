"""Stable element-wise focal-loss math written with ``keras.ops`` (runs on TensorFlow, JAX and PyTorch).

Keras has no portable custom gradient, so these forms are chosen so that every back-end's own autodiff stays finite:
each ``where`` selects between branches that are both finite in value *and* derivative (the unselected branch gets
a harmless placeholder input, or ``stop_gradient``), and ``1 - p_t`` is taken from log space where it underflows.
"""

from __future__ import annotations

import math
from typing import Any

from keras import ops

from focalkit.semantics import LOG_SPACE_BELOW as TINY  # u below this: u^gamma in log space

__all__ = [
    "binary_terms_from_probs",
    "categorical_terms_from_logits",
    "categorical_terms_from_probs",
    "excess",
    "log_softmax_parts",
    "power",
    "sigmoid_terms",
    "sparse_terms_from_logits",
]



def _pow_or_log_space(u: Any, log_u: Any, gamma: float) -> Any:
    """u**gamma; from exp(gamma log u) where u <= TINY (finite value and derivative in both branches)."""
    big = u > TINY
    u_safe = ops.where(big, u, ops.ones_like(u))
    return ops.where(big, ops.power(u_safe, gamma), ops.exp(gamma * log_u))


def _pow_probability(u: Any, gamma: float) -> Any:
    """u**gamma for u = 1 - p_t from probabilities; below TINY the (negligible) value carries no gradient."""
    big = u > TINY
    u_safe = ops.where(big, u, ops.ones_like(u))
    return ops.where(big, ops.power(u_safe, gamma), ops.stop_gradient(ops.power(ops.maximum(u, 0.0), gamma)))


def _sigmoid_pair(x: Any) -> tuple[Any, Any]:
    """(sigmoid(x), sigmoid(-x)) from e = exp(-|x|), s = 1 / (1 + e): correctly rounded to ~1 ulp on every back-end
    (TensorFlow's fused sigmoid is a rational approximation that costs gamma-fold accuracy in u^gamma). |x| is
    written with ``where`` so that its derivative at 0 is 1, not sign(0) = 0."""
    nonneg = x >= 0
    abs_x = ops.where(nonneg, x, -x)
    e = ops.exp(-abs_x)
    s = 1.0 / (1.0 + e)
    return ops.where(nonneg, s, e * s), ops.where(nonneg, e * s, s)


def _log_probs_clamped(p: Any, tiny: float) -> tuple[Any, Any]:
    """(log p, log(1 - p)) with p and 1 - p clamped at ``tiny``, as the PyTorch core: the clamp only acts where a
    probability underflowed to 0 or rounded to 1; there the value saturates at log(tiny) and the derivative is
    1 / tiny (the core's closed form), not 0. log(1 - p) is log1p(-p), exact for small p."""
    low = p < tiny
    log_p = ops.log(ops.maximum(p, tiny)) + ops.where(low, (p - ops.stop_gradient(p)) / tiny, ops.zeros_like(p))
    one = p >= 1.0
    p_safe = ops.where(one, ops.zeros_like(p), p)
    log_q = ops.where(one, ops.full_like(p, math.log(tiny)) - (p - ops.stop_gradient(p)) / tiny, ops.log1p(-p_safe))
    return log_p, log_q


def sigmoid_terms(x: Any, y: Any, gamma: float) -> Any:
    """Unweighted focal loss per element from logits: u^g CE, u = p (1 - y) + (1 - p) y (stable closed forms).

    CE = max(x, 0) - x y + log1p(exp(-|x|)) is written per sign with softplus, so that its derivative is also exact
    at x = 0 and no branch ever sees an overflowing argument.
    """
    ce = ops.where(x >= 0, x * (1.0 - y) + ops.softplus(-x), ops.softplus(x) - x * y)
    if gamma == 0.0:
        return ce
    p, q = _sigmoid_pair(x)
    u = p * (1.0 - y) + q * y
    # log u = logaddexp(log(1 - y) + log p, log y + log(1 - p)) for soft labels; log p (y = 0) or log(1 - p) (y = 1)
    # for hard ones. No -inf ever reaches logaddexp: its second derivative is NaN there (PyTorch).
    pos, neg = y > 0, y < 1
    soft = ops.logical_and(pos, neg)
    y_soft = ops.where(soft, y, ops.full_like(y, 0.5))
    log_p, log_q = ops.log_sigmoid(x), ops.log_sigmoid(-x)
    log_u_soft = ops.logaddexp(ops.log1p(-y_soft) + log_p, ops.log(y_soft) + log_q)
    log_u = ops.where(soft, log_u_soft, ops.where(pos, log_q, log_p))
    return _pow_or_log_space(u, log_u, gamma) * ce


def binary_terms_from_probs(p: Any, y: Any, gamma: float, tiny: float) -> Any:
    """Unweighted focal loss per element from probabilities: u^g BCE; p and 1 - p clamped at ``tiny`` in the logs.

    ``tiny`` is the dtype's smallest normal number: the clamp acts only on probabilities that underflowed to 0 or
    rounded to 1 (the loss then saturates at -log(tiny), 87.3 in float32), as the PyTorch core does.
    """
    log_p, log_q = _log_probs_clamped(p, tiny)
    bce = 0.0 - (y * log_p + (1.0 - y) * log_q)
    if gamma == 0.0:
        return bce
    u = p * (1.0 - y) + (1.0 - p) * y
    return _pow_probability(u, gamma) * bce


def _other_logsumexp_minus_target(x: Any, onehot: Any) -> Any:
    """d = log(sum_{j != t} exp(x_j)) - x_t along the last axis, accumulated directly (not as S - exp(x_t))."""
    x_t = ops.sum(ops.where(onehot, x, ops.zeros_like(x)), axis=-1)
    x_other = ops.where(onehot, ops.full_like(x, -float("inf")), x)
    m_o = ops.stop_gradient(ops.max(x_other, axis=-1, keepdims=True))
    s_o = ops.sum(ops.exp(x_other - m_o), axis=-1)  # >= 1
    return (ops.squeeze(m_o, axis=-1) - x_t) + ops.log(s_o)


def sparse_terms_from_logits(x: Any, onehot: Any, gamma: float) -> Any:
    """-u^g log p_t per row from logits: u = sigmoid(d), -log p_t = softplus(d), d = log S' - x_t."""
    d = _other_logsumexp_minus_target(x, onehot)
    nlog_pt = ops.softplus(d)
    if gamma == 0.0:
        return nlog_pt
    return _pow_or_log_space(ops.sigmoid(d), ops.log_sigmoid(d), gamma) * nlog_pt


def categorical_terms_from_logits(x: Any, gamma: float) -> Any:
    """Per-class terms (1 - p_c)^g (-log p_c) from logits, shape of ``x`` (classes last).

    Only the row's largest class can have p_c > 1/2, so only there is 1 - p_c computed as S'/S (from d, as in the
    sparse form); for every other class 1 - p_c >= 1/2 is computed directly without cancellation.
    """
    num_classes = ops.shape(x)[-1]
    is_max = ops.one_hot(ops.argmax(x, axis=-1), num_classes, dtype="bool")
    d = ops.expand_dims(_other_logsumexp_minus_target(x, is_max), -1)
    m = ops.stop_gradient(ops.max(x, axis=-1, keepdims=True))
    log_s = ops.log(ops.sum(ops.exp(x - m), axis=-1, keepdims=True))
    nlog_p = ops.where(is_max, ops.softplus(d), log_s - (x - m))
    if gamma == 0.0:
        return nlog_p
    p_other = ops.exp(-nlog_p)
    u = ops.where(is_max, ops.sigmoid(d), 1.0 - p_other)
    log_u = ops.where(is_max, ops.log_sigmoid(d), ops.log1p(-ops.where(is_max, ops.zeros_like(p_other), p_other)))
    return _pow_or_log_space(u, log_u, gamma) * nlog_p


def categorical_terms_from_probs(p: Any, gamma: float, tiny: float) -> Any:
    """Per-class terms (1 - p_c)^g (-log p_c) from probabilities; p clamped at ``tiny`` inside the log only."""
    nlog_p = 0.0 - _log_probs_clamped(p, tiny)[0]
    if gamma == 0.0:
        return nlog_p
    return _pow_probability(1.0 - p, gamma) * nlog_p


def power(prob: Any, log_prob: Any, k: float) -> Any:
    """prob**k for a probability (1 for k = 0): pow above TINY, exp(k log prob) below (finite derivative)."""
    return ops.ones_like(prob) if k == 0.0 else _pow_or_log_space(prob, log_prob, k)


# (-1)^k / k! for k = 2 .. 13: s - (1 - e^-s) = s^2 sum_k c_k s^(k - 2), truncation below 1e-9 relative for s < 1
_EXCESS_SERIES = [(-1.0) ** k / math.factorial(k) for k in range(2, 14)]


def excess(s: Any) -> Any:
    """s - (1 - exp(-s)) >= 0 for s >= 0 without cancellation: a Taylor series below s = 1, s + expm1(-s) above
    (see :func:`focalkit.jax._stable.excess`); both branches see finite placeholders."""
    small = s < 1.0
    t = ops.where(small, s, ops.zeros_like(s))
    acc = ops.full_like(t, _EXCESS_SERIES[-1])
    for coefficient in reversed(_EXCESS_SERIES[:-1]):
        acc = acc * t + coefficient
    big = ops.where(small, ops.ones_like(s), s)
    return ops.where(small, t * t * acc, big + ops.expm1(0.0 - big))


def log_softmax_parts(x: Any) -> tuple[Any, Any, Any]:
    """(log p, 1 - p, log(1 - p)) per class of p = softmax(x) over the last axis (at least 2 classes).

    For the row's largest class a, from d = log sum_{j != a} e^{x_j} - x_a accumulated directly: log p_a =
    -softplus(d), 1 - p_a = sigmoid(d), log(1 - p_a) = -softplus(-d); every other class has p_c <= 1/2 and is taken
    directly (see :func:`focalkit.jax._stable.log_softmax_parts`). Unselected branches get finite placeholders.
    """
    num_classes = ops.shape(x)[-1]
    is_max = ops.one_hot(ops.argmax(x, axis=-1), num_classes, dtype="bool")
    d = ops.expand_dims(_other_logsumexp_minus_target(x, is_max), -1)
    m = ops.stop_gradient(ops.max(x, axis=-1, keepdims=True))
    log_s = ops.log(ops.sum(ops.exp(x - m), axis=-1, keepdims=True))
    log_p = ops.where(is_max, 0.0 - ops.softplus(d), (x - m) - log_s)
    p_small = ops.where(is_max, ops.zeros_like(x), ops.exp(ops.where(is_max, ops.zeros_like(x), log_p)))
    one_minus_p = ops.where(is_max, _sigmoid_pair(d)[0], 1.0 - p_small)
    log_one_minus_p = ops.where(is_max, 0.0 - ops.softplus(0.0 - d), ops.log1p(0.0 - p_small))
    return log_p, one_minus_p, log_one_minus_p
