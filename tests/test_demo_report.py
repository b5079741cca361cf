"""Report writing: tables, conclusions computed from the numbers, figures."""

from __future__ import annotations

import numpy as np

from focalkit_app.demo.experiment import LossRuns
from focalkit_app.demo.metrics import METRICS
from focalkit_app.demo.plots import plot_per_class_recall, plot_reliability, plot_training_curves
from focalkit_app.demo.report import Setting, conclusions, terminal_table, write_markdown


def _runs(name, bacc, ece, seeds=5, rng=None):
    rng = rng or np.random.default_rng(0)
    r = LossRuns(name)
    for s in range(seeds):
        m = {k: 0.5 for k in METRICS}
        m["balanced_accuracy"] = bacc[s]
        m["ece"] = ece[s]
        r.metrics.append(m)
        r.recall.append(rng.uniform(0, 1, 3))
        r.reliability.append((np.array([0.0, 4.0, 6.0]), np.array([np.nan, 0.5, 0.9]), np.array([np.nan, 0.4, 0.8])))
        r.train_loss.append(np.linspace(1, 0.1, 4))
        r.val_bacc.append(np.linspace(0.3, 0.8, 4))
        r.diverged.append(False)
    return r


def _setting():
    base = np.array([0.70, 0.72, 0.71, 0.69, 0.70])
    runs = {
        "ce": _runs("ce", base, base * 0 + 0.10),
        "focal": _runs("focal", base - 0.04, base * 0 + 0.05),       # worse accuracy, better ECE
        "alpha_ce": _runs("alpha_ce", base + np.array([0.01, -0.01, 0.02, -0.02, 0.0]), base * 0 + 0.10),
    }
    return Setting("toy", runs, ("a", "b", "c"), np.array([10, 5, 1]))


def test_terminal_table_marks_follow_rule():
    text = terminal_table(_setting())
    lines = {ln.split("  ")[0]: ln for ln in text.splitlines()[3:]}
    assert "0.664+-0.011 -" in lines["softmax focal g=2"]           # accuracy worse
    assert "0.050+-0.000 +" in lines["softmax focal g=2"]           # ECE better (lower)
    assert "0.704+-0.022 =" in lines["alpha-balanced CE"]


def test_conclusions_state_winner_and_when_focal_loses():
    lines = conclusions(_setting())
    text = "\n".join(lines)
    assert "**balanced accuracy**: cross-entropy has the best mean" in text
    assert "worse: softmax focal g=2 (-0.040)" in text
    assert "**ECE**: best mean softmax focal g=2 (0.050" in text and "**better**" in text
    assert "within noise: alpha-balanced CE" in text


def test_write_markdown_and_figures(tmp_path):
    s = _setting()
    s.figures = [
        plot_per_class_recall(s.runs, s.class_names, s.train_counts, tmp_path / "recall.png", "recall"),
        plot_reliability(s.runs, tmp_path / "reliability.png", "rel"),
        plot_training_curves(s.runs, tmp_path / "curves.png", "curves"),
    ]
    path = write_markdown(tmp_path, "Toy report", ["method line"], [s], ["## Extra", "x"], ["footer"])
    text = path.read_text()
    assert text.startswith("# Toy report")
    assert "## How winners are decided" in text and "confidence interval" in text
    assert "| softmax focal g=2 | 0.664 ± 0.011 - |" in text
    assert "![recall](recall.png)" in text and "footer" in text and "## Extra" in text
    for f in s.figures:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
