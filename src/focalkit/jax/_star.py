"""FL* (Lin et al. 2017, Appendix A) for JAX."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from focalkit.jax._checks import check_gamma, check_static_number, mark_invalid
from focalkit.jax._sigmoid import prepare
from focalkit.jax._stable import softplus as _softplus

__all__ = ["sigmoid_focal_loss_star"]


def sigmoid_focal_loss_star(
    logits: Any,
    labels: Any,
    *,
    gamma: float = 2.0,
    beta: float = 1.0,
    alpha: float | Any | None = None,
) -> jnp.ndarray:
    r"""FL*, the paper's alternative focal loss (Appendix A), per element.

    .. math::
        x_t = s x,\ s = 2y - 1,\quad p^*_t = \sigma(\gamma x_t + \beta),\quad
        \mathrm{FL}^* = -\alpha_t \log(p^*_t)/\gamma
        = \alpha_t\,\mathrm{softplus}(-(\gamma x_t + \beta))/\gamma.

    Soft labels interpolate: :math:`y\,\alpha\,\mathrm{FL}^*(s{=}1) + (1 - y)(1 - \alpha)\mathrm{FL}^*(s{=}-1)`.
    softplus is evaluated stably and its derivative is a sigmoid whose own derivative is
    :math:`\sigma(z)\sigma(-z)` (not :math:`1 - \sigma(z)`, which rounds to 0 beyond z = 17), so JAX's derivatives
    are the closed forms, e.g.
    :math:`\partial/\partial x = -y\alpha\sigma(-\gamma x - \beta) + (1 - y)(1 - \alpha)\sigma(\gamma x - \beta)`;
    loss, gradient and Hessian are finite for all finite logits, with relative error at most
    :math:`2\cdot 10^{-7} + |z|\,2^{-23}` (the float32 rounding of the margin :math:`z = \gamma x \pm \beta`).
    Labels / alpha outside ``[0, 1]`` raise where readable and give NaN where traced (see
    :func:`~focalkit.jax.sigmoid_focal_loss`).

    Args:
        logits: floating array of any shape.
        labels: binary or soft targets in ``[0, 1]``, broadcastable to the logits' shape.
        gamma: a static Python number ``> 0``.
        beta: a static Python number (shift; the paper uses 1 with gamma 2, 0 with gamma 4).
        alpha: None (no weighting; also a negative number), a number in ``[0, 1]``, or an array broadcastable to
            the logits.

    Returns:
        Per-element losses of the logits' shape (float32 for float16/bfloat16 logits).

    Example:
        >>> import jax.numpy as jnp
        >>> from focalkit.jax import sigmoid_focal_loss_star
        >>> sigmoid_focal_loss_star(jnp.array([2.0, -1.0]), jnp.array([1.0, 0.0])).shape
        (2,)

    References:
        T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002, Appendix A.
    """
    g = check_gamma(gamma, strict=True)
    b = check_static_number("beta", beta)
    x, y, a, invalid = prepare("logits", logits, labels, alpha)
    pos = _softplus(-(g * x + b)) / g
    neg = _softplus(g * x - b) / g
    if a is None:
        return mark_invalid(y * pos + (1 - y) * neg, invalid)
    return mark_invalid(y * a * pos + (1 - y) * (1 - a) * neg, invalid)
