"""A per-loss table of metrics with the paired comparison against a baseline loss, shared by the multi-label and
segmentation demos: the rows, their cells, the terminal rendering and the sentences stating the verdicts.

Each row holds, per metric, (mean, std, Comparison | None) over the seeds; the comparison is
:func:`focalkit_app.demo.stats.paired_comparison` (higher is better) against the baseline's per-seed values, None
for the baseline itself.

Example:
    >>> runs = {"a": [{"m": 0.5, "diverged": False}, {"m": 0.6, "diverged": False}],
    ...         "b": [{"m": 0.7, "diverged": False}, {"m": 0.9, "diverged": False}]}
    >>> rows = paired_table(runs, ("a", "b"), {"a": "A", "b": "B"}, {"m": "metric"}, "a")
    >>> table_cells(rows[1], {"m": "metric"})[0]
    '0.800 ± 0.141'
"""

from __future__ import annotations

from collections.abc import Mapping

from .stats import mean_std, paired_comparison

__all__ = ["conclusions", "paired_table", "table_cells", "terminal_lines"]


def paired_table(runs: Mapping[str, list[dict]], losses: tuple[str, ...], labels: Mapping[str, str],
                 metrics: Mapping[str, str], baseline: str) -> list[dict]:
    """Per loss and metric: mean, std and the paired comparison with ``baseline`` (None for the baseline)."""
    rows = []
    for name in losses:
        row = {"name": name, "label": labels[name], "diverged": sum(r["diverged"] for r in runs[name])}
        for metric in metrics:
            values = [r[metric] for r in runs[name]]
            base = [r[metric] for r in runs[baseline]]
            row[metric] = (*mean_std(values), None if name == baseline else paired_comparison(values, base, True))
        rows.append(row)
    return rows


def table_cells(row: dict, metrics: Mapping[str, str]) -> list[str]:
    """Two cells per metric: mean ± std, and the paired difference ± 95 % half-width (verdict) or "baseline"."""
    cells = []
    for metric in metrics:
        m, s, c = row[metric]
        cells.append(f"{m:.3f} ± {s:.3f}")
        cells.append("baseline" if c is None else f"{c.mean_diff:+.3f} ± {c.ci_half_width:.3f} ({c.verdict})")
    return cells


def terminal_lines(header: list[str], table: list[dict], metrics: Mapping[str, str]) -> list[str]:
    """The table as aligned plain-text lines, the header underlined."""
    rows = [header] + [[r["label"] + (f" [{r['diverged']} diverged]" if r["diverged"] else "")]
                       + table_cells(r, metrics) for r in table]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return [lines[0], "-" * len(lines[0])] + lines[1:]


def conclusions(table: list[dict], metrics: Mapping[str, str], baseline_label: str) -> list[str]:
    """One sentence per metric: the best mean, and which losses are better / worse / within noise vs the baseline."""
    out = []
    for metric, label in metrics.items():
        best = max(table, key=lambda r: r[metric][0])
        groups: dict[str, list[str]] = {"better": [], "worse": [], "within noise": []}
        for r in table:
            if r[metric][2] is not None:
                groups[r[metric][2].verdict].append(f"{r['label']} ({r[metric][2].mean_diff:+.3f})")
        out.append(f"**{label}**: best mean {best['label']} ({best[metric][0]:.3f}); vs {baseline_label} better: "
                   + (", ".join(groups["better"]) or "none") + "; worse: " + (", ".join(groups["worse"]) or "none")
                   + "; within noise: " + (", ".join(groups["within noise"]) or "none") + ".")
    return out
