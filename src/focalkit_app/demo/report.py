"""Terminal table and Markdown report; every conclusion is computed from the measured numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .experiment import LossRuns
from .losses import LOSSES
from .metrics import METRICS
from .stats import RULE, mean_std, paired_comparison

__all__ = ["Setting", "terminal_table", "conclusions", "write_markdown"]


@dataclass
class Setting:
    """One block of results: e.g. digits at imbalance factor 100, or one data file."""

    title: str
    runs: dict[str, LossRuns]
    class_names: tuple[str, ...]
    train_counts: np.ndarray
    figures: list[Path] = field(default_factory=list)
    baseline: str = "ce"


def _label(name: str) -> str:
    return LOSSES[name].label if name in LOSSES else name


def _cell(runs: LossRuns, metric: str, baseline: LossRuns | None) -> str:
    m, s = mean_std(runs.values(metric))
    mark = ""
    if baseline is not None and baseline is not runs and len(runs.metrics) > 1:
        mark = " " + paired_comparison(runs.values(metric), baseline.values(metric), METRICS[metric][1]).symbol
    return f"{m:.3f}+-{s:.3f}{mark}"


def terminal_table(setting: Setting) -> str:
    """Plain-text table: mean+-std over seeds per loss and metric; '+', '-', '=' = better / worse / within noise
    than the baseline under the paired rule of :mod:`focalkit_app.demo.stats`."""
    base = setting.runs.get(setting.baseline)
    header = ["loss"] + [METRICS[m][0] + (" (lower better)" if not METRICS[m][1] else "") for m in METRICS]
    rows = []
    for name, runs in setting.runs.items():
        div = sum(runs.diverged)
        rows.append([_label(name) + (f" [{div} diverged]" if div else "")]
                    + [_cell(runs, m, base) for m in METRICS])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [setting.title, line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def conclusions(setting: Setting) -> list[str]:
    """Sentences stating, per metric, the best loss and its margin over the baseline relative to the seed spread,
    and how each focal-family loss compares with the baseline."""
    base = setting.runs.get(setting.baseline)
    lines = []
    n = len(next(iter(setting.runs.values())).metrics)
    if base is None or n < 2:
        return ["Fewer than two seeds (or no baseline): no comparison is made."]
    for metric, (label, higher) in METRICS.items():
        means = {k: mean_std(r.values(metric))[0] for k, r in setting.runs.items()}
        best = max(means, key=means.get) if higher else min(means, key=means.get)
        bm, bs = mean_std(setting.runs[best].values(metric))
        if best == setting.baseline:
            lines.append(f"**{label}**: {_label(best)} has the best mean ({bm:.3f} +- {bs:.3f}); no other loss "
                         "beats it on average.")
        else:
            c = paired_comparison(setting.runs[best].values(metric), base.values(metric), higher)
            lines.append(f"**{label}**: best mean {_label(best)} ({bm:.3f} +- {bs:.3f}), "
                         f"{c.mean_diff:+.3f} vs {_label(setting.baseline)} (95 % CI +-{c.ci_half_width:.3f}, "
                         f"pooled seed std {c.pooled_std:.3f}): **{c.verdict}**.")
        groups: dict[str, list[str]] = {"better": [], "worse": [], "within noise": []}
        for k, r in setting.runs.items():
            if k == setting.baseline:
                continue
            c = paired_comparison(r.values(metric), base.values(metric), higher)
            groups[c.verdict].append(f"{_label(k)} ({c.mean_diff:+.3f})")
        lines.append("  - better than the baseline: " + (", ".join(groups["better"]) or "none")
                     + "; worse: " + (", ".join(groups["worse"]) or "none")
                     + "; within noise: " + (", ".join(groups["within noise"]) or "none") + ".")
    return lines


def _markdown_table(setting: Setting) -> list[str]:
    base = setting.runs.get(setting.baseline)
    head = "| loss | " + " | ".join(METRICS[m][0] + ("" if METRICS[m][1] else " (lower better)")
                                      for m in METRICS) + " |"
    out = [head, "|" + "---|" * (len(METRICS) + 1)]
    for name, runs in setting.runs.items():
        div = sum(runs.diverged)
        out.append(f"| {_label(name)}{f' ({div} diverged)' if div else ''} | "
                   + " | ".join(_cell(runs, m, base).replace("+-", " ± ") for m in METRICS) + " |")
    return out


def write_markdown(out_dir: Path, title: str, method: list[str], settings: list[Setting],
                   extra_sections: list[str] | None = None, footer: list[str] | None = None) -> Path:
    """Write ``report.md`` into ``out_dir`` (which must exist) and return its path."""
    lines = [f"# {title}", ""]
    lines += ["## Method", ""] + method + [""]
    lines += ["## How winners are decided", "", RULE,
              "In the tables, `+` / `-` / `=` after a value mean better / worse / within noise compared with "
              "cross-entropy under this rule.", ""]
    for s in settings:
        lines += [f"## {s.title}", "", "Training counts per class: "
                  + ", ".join(f"{n}: {int(k)}" for n, k in zip(s.class_names, s.train_counts)), ""]
        lines += _markdown_table(s) + ["", "### What the numbers say", ""]
        lines += [f"- {c}" if not c.startswith("  ") else c for c in conclusions(s)] + [""]
        for fig in s.figures:
            lines += [f"![{fig.stem}]({fig.name})", ""]
    for sec in extra_sections or []:
        lines += [sec, ""]
    lines += footer or []
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
