"""The training budget as an axis: log-spaced checkpoint budgets and the plateau rule that says when a row has
converged.

Plateau rule (stated in the report and tested): let b_1 < ... < b_K be the budgets (each twice the one before) and
m_k a row's mean AP over seeds after b_k steps. The row has *converged* when its mean AP at every budget from some
b_k < b_K on lies within ``tol`` (1 AP point) of its mean AP at the largest budget,

.. math::

    \\exists\\, k < K:\\ |m_j - m_K| < \\mathrm{tol} \\quad \\forall j \\ge k,

and the smallest such b_k is its *plateau budget*. In words: at least the last doubling of the budget (b_{K-1} to
b_K) changed its mean AP by less than ``tol``. "AP at convergence" is m_K, the mean AP at the largest budget. A row
whose last doubling still moved its mean AP by ``tol`` or more has not converged; :func:`budget_state` says which way
it moved: *still rising* (m_K - m_{K-1} >= tol) or *past its peak* (m_K - m_{K-1} <= -tol: more training lowered it,
as when a finite training set is overfitted; the peak is the budget of the largest m_k). A row with a non-finite AP
(a diverged seed) has no state.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PLATEAU_TOL", "doubling_budgets", "plateau_index", "budget_state", "state_label", "plateau_sentence"]

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


def budget_state(mean_ap, tol: float = PLATEAU_TOL) -> tuple[str, int | None]:
    """Where a mean-AP curve (one value per budget, ascending budgets) stands at the largest budget:
    ("plateau", plateau index), ("past peak", index of the largest mean AP), ("rising", None), or ("unknown", None)
    for a non-finite value or a single budget.

    Example:
      >>> budget_state([0.20, 0.50, 0.695, 0.70])
      ('plateau', 2)
      >>> budget_state([0.50, 0.76, 0.75, 0.73])
      ('past peak', 1)
      >>> budget_state([0.20, 0.50, 0.60, 0.70])
      ('rising', None)
    """
    m = np.asarray(mean_ap, dtype=np.float64)
    k = plateau_index(m, tol)
    if k is not None:
        return "plateau", k
    if m.ndim != 1 or len(m) < 2 or not np.all(np.isfinite(m)):
        return "unknown", None
    if m[-1] - m[-2] <= -tol:
        return "past peak", int(np.argmax(m))
    return "rising", None


def state_label(mean_ap, budgets, tol: float = PLATEAU_TOL) -> str:
    """The tables' last column: the plateau budget, "past peak (b)", "still rising" or "not converged".

    Example:
      >>> state_label([0.50, 0.76, 0.75, 0.73], (64, 128, 256, 512))
      'past peak (128)'
    """
    state, k = budget_state(mean_ap, tol)
    if state == "plateau":
        return str(budgets[k])
    if state == "past peak":
        return f"past peak ({budgets[k]})"
    return "still rising" if state == "rising" else "not converged"


def plateau_sentence(tol: float = PLATEAU_TOL) -> str:
    return (f"A row has converged when its mean AP at every budget from some budget b_k on, up to the largest, lies "
            f"within {100 * tol:g} AP point of its mean AP at the largest budget, with b_k below the largest budget "
            "(so at least the last doubling of the budget moved it by less than that); the smallest such b_k is its "
            "plateau budget, and 'at convergence' means at the largest budget. A row that does not meet this is "
            f"'still rising' when the last doubling raised its mean AP by {100 * tol:g} point or more, 'past peak (b)' "
            "when it lowered it by that much (b: the budget of its largest mean AP), and 'not converged' when a seed "
            "diverged.")
