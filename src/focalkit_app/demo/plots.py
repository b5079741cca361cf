"""PNG figures of the report (matplotlib, Agg back-end, imported lazily)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .experiment import LossRuns
from .losses import LOSSES

__all__ = ["plot_per_class_recall", "plot_reliability", "plot_training_curves", "pyplot", "save_figure"]


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg back-end (imported on first use, so the demo loads without it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, title: str | None = None, title_size: int = 9) -> Path:
    """Give ``fig`` its title, lay it out, write it to ``path`` at 90 dpi and close it; returns ``path``."""
    if title is not None:
        fig.suptitle(title, fontsize=title_size)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    pyplot().close(fig)
    return path


def _label(name: str) -> str:
    return LOSSES[name].label if name in LOSSES else name


def plot_per_class_recall(runs: dict[str, LossRuns], class_names, counts, path: Path, title: str) -> Path:
    """Grouped bars: mean test recall per class (error bar = std over seeds); x labels carry training counts."""
    plt = pyplot()
    names = list(runs)
    c = len(class_names)
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(8, c * 0.9), 4))
    for i, name in enumerate(names):
        rec = np.vstack(runs[name].recall)
        ax.bar(np.arange(c) + (i - (len(names) - 1) / 2) * width, np.nanmean(rec, 0), width,
               yerr=np.nanstd(rec, 0), label=_label(name), capsize=1)
    ax.set_xticks(np.arange(c), [f"{n}\n(n={k})" for n, k in zip(class_names, counts)], fontsize=8)
    ax.set_ylabel("test recall")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=4, loc="lower left")
    return save_figure(fig, path)


def plot_reliability(runs: dict[str, LossRuns], path: Path, title: str) -> Path:
    """One reliability diagram per loss, test predictions pooled over seeds (15 equal-width bins)."""
    plt = pyplot()
    names = list(runs)
    cols = 4
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        counts = np.sum([r[0] for r in runs[name].reliability], 0)
        conf = np.nansum([r[0] * np.nan_to_num(r[1]) for r in runs[name].reliability], 0)
        acc = np.nansum([r[0] * np.nan_to_num(r[2]) for r in runs[name].reliability], 0)
        mask = counts > 0
        centers = (np.arange(len(counts)) + 0.5) / len(counts)
        ax.bar(centers[mask], acc[mask] / counts[mask], width=1 / len(counts), edgecolor="k", alpha=0.7,
               label="accuracy")
        ax.plot(conf[mask] / counts[mask], acc[mask] / counts[mask], "r.", ms=4, label="(conf, acc)")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ece = np.mean(runs[name].values("ece"))
        ax.set_title(f"{_label(name)}\nECE {ece:.3f}", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    return save_figure(fig, path, title)


def plot_training_curves(runs: dict[str, LossRuns], path: Path, title: str) -> Path:
    """Mean training loss (normalised to its first epoch) and validation balanced accuracy per epoch."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, r in runs.items():
        n = min(len(c) for c in r.train_loss) if r.train_loss else 0
        if n == 0:
            continue
        loss = np.mean([c[:n] / c[0] for c in r.train_loss], 0)
        val = np.mean([c[:n] for c in r.val_bacc], 0)
        a1.plot(np.arange(1, n + 1), loss, label=_label(name))
        a2.plot(np.arange(1, n + 1), val, label=_label(name))
    a1.set_yscale("log")
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss / first epoch")
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation balanced accuracy")
    a2.legend(fontsize=7)
    return save_figure(fig, path, title)
