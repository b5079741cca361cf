"""How stable the ranking of the rows is across seeds, at one budget.

For R rows and S seeds, each seed ranks the rows by AP (rank 1 = best; a diverged run, AP NaN, ranks last). The
stability of the ranking is the mean Kendall tau between the rankings of every pair of seeds,

.. math::

    \\bar\\tau = \\binom{S}{2}^{-1} \\sum_{s < s'} \\tau(\\mathrm{AP}_{\\cdot, s}, \\mathrm{AP}_{\\cdot, s'}),

together with whether every seed picks the same best row. The report calls a ranking *stable* when tau >= 0.7 and
the best row is the same in every seed.

Reference: M. G. Kendall, A New Measure of Rank Correlation, Biometrika 30 (1938).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["STABLE_TAU", "Ranking", "ranking_stability"]

STABLE_TAU = 0.7


@dataclass(frozen=True)
class Ranking:
    """ranks: (R, S) rank of each row in each seed (1 = best); tau: mean pairwise Kendall tau (NaN for one seed);
    same_best: every seed has the same best row."""

    ranks: np.ndarray
    tau: float
    same_best: bool

    @property
    def stable(self) -> bool:
        return bool(self.tau >= STABLE_TAU and self.same_best)

    @property
    def mean_rank(self) -> np.ndarray:
        return self.ranks.mean(1)


def ranking_stability(ap) -> Ranking:
    """Ranks and stability of an (R rows, S seeds) AP array.

    Example:
      >>> r = ranking_stability([[0.9, 0.8], [0.5, 0.6], [0.1, 0.2]])
      >>> r.ranks.tolist(), r.tau, r.same_best
      ([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], 1.0, True)
    """
    from scipy.stats import kendalltau, rankdata

    a = np.asarray(ap, dtype=np.float64)
    filled = np.where(np.isfinite(a), a, -np.inf)
    ranks = np.stack([rankdata(-filled[:, s], method="average") for s in range(a.shape[1])], 1)
    taus = [kendalltau(filled[:, i], filled[:, j]).statistic
            for i in range(a.shape[1]) for j in range(i + 1, a.shape[1])]
    taus = [t for t in taus if np.isfinite(t)]
    best = {int(np.argmax(filled[:, s])) for s in range(a.shape[1])}
    return Ranking(ranks, float(np.mean(taus)) if taus else float("nan"), len(best) == 1)
