"""Tables and sentences of ``focalkit demo --task detection``: every statement is computed from the measured APs.

The measurements are an array ``ap`` of shape (R rows, O optimisers, S seeds, K budgets). Each row is compared with
CE with the prior initialisation (the baseline), paired by seed, with the rule of :mod:`focalkit_app.demo.stats`
(better / worse when the 95 % confidence interval of the mean per-seed difference excludes 0). Per optimiser and
budget the report also compares the best focal-loss row (gamma > 0) with the best alpha-balanced CE row and with CE,
and the detection family (QFL, VFL) and FL* with that best focal-loss row, and states the ranking's stability.
"""

from __future__ import annotations

import numpy as np

from .detection_budget import budget_state, state_label
from .detection_losses import LossConfig
from .detection_ranking import ranking_stability
from .stats import mean_std, paired_comparison

__all__ = ["row_cell", "budget_table", "difficulty", "findings", "optimiser_dependence", "markdown_table",
           "text_table"]


def _finite(v) -> bool:
    return bool(np.all(np.isfinite(v)))


def _compare(a, b):
    """Paired comparison of two per-seed AP vectors, or None when a run diverged or there is one seed."""
    if len(a) < 2 or not _finite(a) or not _finite(b):
        return None
    return paired_comparison(a, b, True)


def row_cell(values, baseline_values=None) -> str:
    """'mean +- std' in AP points, with the paired verdict symbol vs the baseline (+ better, - worse, = noise)."""
    v = np.asarray(values, dtype=np.float64)
    if not _finite(v):
        bad = int(np.sum(~np.isfinite(v)))
        return f"diverged {bad}/{len(v)}"
    m, s = mean_std(v)
    mark = ""
    if baseline_values is not None:
        c = _compare(v, np.asarray(baseline_values))
        mark = f" {c.symbol}" if c is not None else ""
    return f"{100 * m:.1f} +- {100 * s:.1f}{mark}"


def _means(ap_ok: np.ndarray) -> np.ndarray:
    """(R, S) -> (R,) means, -inf where a seed diverged."""
    with np.errstate(all="ignore"):
        return np.where(np.all(np.isfinite(ap_ok), 1), np.mean(ap_ok, 1), -np.inf)


def budget_table(ap_o: np.ndarray, rows: tuple[LossConfig, ...], budgets: tuple[int, ...],
                 baseline: int) -> list[list[str]]:
    """One optimiser's table: header, then per row [group, label, cell per budget, plateau budget]."""
    header = ["group", "loss"] + [f"{b} steps" for b in budgets] + ["plateau at"]
    out = [header]
    for i, r in enumerate(rows):
        cells = [row_cell(ap_o[i, :, k], None if i == baseline else ap_o[baseline, :, k])
                 for k in range(len(budgets))]
        with np.errstate(all="ignore"):
            state = state_label(np.mean(ap_o[i], 0), budgets)
        out.append([r.group, r.label + (" (baseline)" if i == baseline else "")] + cells + [state])
    return out


def markdown_table(table: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(c.replace("+-", "±") for c in r) + " |" for r in table[1:]]
    return lines


def text_table(table: list[list[str]]) -> list[str]:
    widths = [max(len(r[k]) for r in table) for k in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(table[0], widths))]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in table[1:]]
    return lines


def _best(ap_k: np.ndarray, idx: list[int]) -> int | None:
    if not idx:
        return None
    m = _means(ap_k)
    best = max(idx, key=lambda i: m[i])
    return best if np.isfinite(m[best]) else None


def _vs(ap_k, rows, i, j) -> str:
    c = _compare(ap_k[i], ap_k[j])
    if c is None:
        return f"{rows[i].label} vs {rows[j].label}: not compared (a run diverged or one seed)"
    return (f"{rows[i].label} vs {rows[j].label}: {100 * c.mean_diff:+.1f} AP points (95 % CI "
            f"+-{100 * c.ci_half_width:.1f}), {c.verdict}")


def difficulty(ap: np.ndarray, per_class: np.ndarray, rows: tuple[LossConfig, ...], optimizers: tuple[str, ...],
               budgets: tuple[int, ...], class_names: tuple[str, ...]) -> list[str]:
    """How far the task is from saturation: the best (row, optimiser) at the largest budget, its per-class AP, and
    whether its last doubling of the budget changed its AP (paired over seeds).

    per_class: (R, O, S, K, C)."""
    best, best_m = None, -np.inf
    for o in range(len(optimizers)):
        m = _means(ap[:, o, :, -1])
        i = int(np.argmax(m))
        if m[i] > best_m:
            best, best_m = (i, o), m[i]
    if best is None:
        return ["Every run diverged: the task's difficulty cannot be read from this run."]
    i, o = best
    m, s = mean_std(ap[i, o, :, -1])
    pc = np.nanmean(per_class[i, o, :, -1], 0)
    out = [f"Best row at the largest budget ({budgets[-1]} steps): {rows[i].label} with {optimizers[o].upper()}, "
           f"mAP {100 * m:.1f} +- {100 * s:.1f} (per class: "
           + ", ".join(f"{n} {100 * v:.1f}" for n, v in zip(class_names, pc)) + ")."]
    if len(budgets) > 1:
        c = _compare(ap[i, o, :, -1], ap[i, o, :, -2])
        if c is not None:
            out.append(f"Doubling its budget from {budgets[-2]} to {budgets[-1]} steps changed its mAP by "
                       f"{100 * c.mean_diff:+.1f} points (95 % CI +-{100 * c.ci_half_width:.1f}): {c.verdict}"
                       + (" -- a larger budget no longer changes it." if c.verdict == "within noise" else
                          " -- it is still moving at the largest budget."))
    out += _convergence_lines(ap, rows, optimizers, budgets)
    return out


def _convergence_lines(ap: np.ndarray, rows: tuple[LossConfig, ...], optimizers: tuple[str, ...],
                       budgets: tuple[int, ...]) -> list[str]:
    """Per optimiser: how many rows meet the plateau rule, the best of them at convergence, and the last doubling's
    change of the rows that do not."""
    out = []
    if len(budgets) < 2:
        return out
    for o, opt in enumerate(optimizers):
        means = np.array([np.mean(ap[i, o], 0) for i in range(len(rows))])  # (R, K)
        states = [budget_state(means[i]) for i in range(len(rows))]
        converged = [i for i in range(len(rows)) if states[i][0] == "plateau"]
        text = f"{opt.upper()}: {len(converged)} of {len(rows)} rows meet the plateau rule by {budgets[-1]} steps"
        if converged:
            top = max(converged, key=lambda i: means[i, -1])
            text += (f"; the best of them at convergence is {rows[top].label}, mAP {100 * means[top, -1]:.1f} "
                     f"(plateau from {budgets[states[top][1]]} steps)")
        for state, one, many in (("past peak", "is past its peak", "are past their peak"),
                                 ("rising", "is still rising", "are still rising")):
            these = [i for i in range(len(rows)) if states[i][0] == state]
            if these:
                gains = [100 * (means[i, -1] - means[i, -2]) for i in these]
                words = one if len(these) == 1 else many
                if state == "past peak":
                    words += " (peak at " + ", ".join(sorted({str(budgets[states[i][1]]) for i in these},
                                                             key=int)) + " steps)"
                change = f"it by {gains[0]:+.1f}" if len(these) == 1 else \
                    f"them by {min(gains):+.1f} to {max(gains):+.1f}"
                text += (f"; {len(these)} {words}: the last doubling ({budgets[-2]} to {budgets[-1]} steps) "
                         f"changed {change} AP points")
        out.append(text + ".")
    return out


def findings(ap: np.ndarray, rows: tuple[LossConfig, ...], optimizers: tuple[str, ...], budgets: tuple[int, ...],
             baseline: int) -> list[str]:
    """One sentence per (optimiser, budget): the best row, the best focal loss vs the best alpha-CE and vs CE, the
    detection family and FL* vs that focal loss, the rows the best focal loss does not beat, and the ranking's
    stability."""
    fl = [i for i, r in enumerate(rows) if r.kind == "fl" and r.gamma > 0]
    ace = [i for i, r in enumerate(rows) if r.kind == "ce" and r.alpha is not None]
    others = [i for i, r in enumerate(rows) if r.kind in ("qfl", "vfl", "fl_star")]
    out = []
    for o, opt in enumerate(optimizers):
        for k, b in enumerate(budgets):
            a = ap[:, o, :, k]
            m = _means(a)
            top = int(np.argmax(m))
            parts = [f"**{opt.upper()}, {b} steps**: best mean {rows[top].label} ({100 * m[top]:.1f})"]
            f = _best(a, fl)
            if f is not None:
                e = _best(a, ace)
                if e is not None:
                    parts.append("best focal loss " + _vs(a, rows, f, e))
                parts.append(_vs(a, rows, f, baseline))
                parts += [_vs(a, rows, j, f) for j in others]
                unbeaten = []
                for j in range(len(rows)):
                    if j == f:
                        continue
                    c = _compare(a[f], a[j])
                    if c is not None and c.verdict != "better":
                        unbeaten.append(f"{rows[j].label} ({'better than it' if c.verdict == 'worse' else 'tied'})")
                parts.append(f"rows {rows[f].label} does not beat: " + (", ".join(unbeaten) or "none"))
            if a.shape[1] > 1:
                r = ranking_stability(a)
                parts.append(f"ranking across seeds: Kendall tau {r.tau:.2f}, best row "
                             f"{'the same' if r.same_best else 'not the same'} in every seed -> "
                             f"{'stable' if r.stable else 'not stable'}")
            out.append("; ".join(parts) + ".")
    return out


def optimiser_dependence(ap: np.ndarray, rows: tuple[LossConfig, ...], optimizers: tuple[str, ...]) -> list[str]:
    """Whether the ranking at the largest budget depends on the optimiser: Kendall tau between the rows' mean APs
    under each pair of optimisers, and each optimiser's best row."""
    if len(optimizers) < 2:
        return []
    from scipy.stats import kendalltau

    means = [_means(ap[:, o, :, -1]) for o in range(len(optimizers))]
    out = []
    for o in range(len(optimizers)):
        for q in range(o + 1, len(optimizers)):
            tau = kendalltau(np.nan_to_num(means[o], neginf=-1), np.nan_to_num(means[q], neginf=-1)).statistic
            out.append(f"At the largest budget the rows' order under {optimizers[o].upper()} and "
                       f"{optimizers[q].upper()} agrees with Kendall tau {tau:.2f}; best row "
                       f"{rows[int(np.argmax(means[o]))].label} ({optimizers[o].upper()}) vs "
                       f"{rows[int(np.argmax(means[q]))].label} ({optimizers[q].upper()}).")
    return out
