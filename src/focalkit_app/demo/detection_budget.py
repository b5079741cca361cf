"""The training budget as an axis: log-spaced checkpoint budgets and the plateau rule that says when a row has
converged.

Plateau rule (stated in the report and tested): let b_1 < ... < b_K be the budgets (each twice the one before) and
m_k a row's mean AP over seeds after b_k steps. The row has *converged* when its mean AP at every budget from some
b_k < b_K on lies within ``tol`` (1 AP point) of its mean AP at the largest budget,

.. math::

    \\exists\\, k < K:\\ |m_j - m_K| < \\mathrm{tol} \\quad \\forall j \\ge k,

and the smallest such b_k is its *plateau budget*. In words: at least the last doubling of the budget (b_{K-1} to
b_K) changed its mean AP by less than ``tol``. "AP at convergence" is m_K, the mean AP at the largest budget. A row
whose last doubling still moved its mean AP by ``tol`` or more is reported as *not converged*, and so is a row with a
non-finite AP (a diverged seed).
"""

from __future__ import annotations

import numpy as np

__all__ = ["PLATEAU_TOL", "doubling_budgets", "plateau_index", "plateau_sentence"]

PLATEAU_TOL = 0.01  # 1 AP point


def doubling_budgets(first: int, count: int) -> tuple[int, ...]:
    """``count`` budgets first, 2 first, 4 first, ... (log-spaced, base 2).

    Example:
      >>> doubling_budgets(100, 4)
      (100, 200, 400, 800)
    """
    if first < 1 or count < 1:
        import focalkit

        raise focalkit.InvalidArgumentError(f"first, count: expected integers >= 1, got {first}, {count}")
    return tuple(first * 2 ** k for k in range(count))


def plateau_index(mean_ap, tol: float = PLATEAU_TOL) -> int | None:
    """Index k of the plateau budget of a mean-AP curve (one value per budget, ascending budgets), or None when the
    row has not converged (the last doubling moved it by ``tol`` or more, a value is not finite, or there is only one
    budget).

    Example:
      >>> plateau_index([0.20, 0.50, 0.695, 0.70])
      2
      >>> plateau_index([0.20, 0.50, 0.60, 0.70]) is None
      True
    """
    m = np.asarray(mean_ap, dtype=np.float64)
    if m.ndim != 1 or len(m) < 2 or not np.all(np.isfinite(m)):
        return None
    close = np.abs(m - m[-1]) < tol
    if not close[-2]:
        return None
    k = len(m) - 1
    while k > 0 and close[k - 1]:
        k -= 1
    return k


def plateau_sentence(tol: float = PLATEAU_TOL) -> str:
    return (f"A row has converged when its mean AP at every budget from some budget b_k on, up to the largest, lies "
            f"within {100 * tol:g} AP point of its mean AP at the largest budget, with b_k below the largest budget "
            "(so at least the last doubling of the budget moved it by less than that); the smallest such b_k is its "
            "plateau budget, and 'at convergence' means at the largest budget. Rows that do not meet this (or "
            "diverged in a seed) are marked 'not converged'.")
