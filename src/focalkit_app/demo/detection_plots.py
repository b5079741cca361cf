"""PNG figures of ``focalkit demo --task detection`` (matplotlib, Agg back-end, imported lazily).

- :func:`plot_ap_vs_budget`: small multiples, one panel per (optimiser, row group), AP against training steps on a
  log axis, the mean over seeds as a line and the seeds' min-max as a band; CE with the prior initialisation is drawn
  in every panel as a grey dashed reference. At most five lines share a panel, each with its own colour and style.
- :func:`plot_ranking_stability`: per optimiser, the mean rank of every row (1 = best) at every budget, the seeds'
  rank range written in the cell and the mean Kendall tau between seeds under each budget.
- :func:`plot_example`: one generated image, its foreground anchors coloured by class, its ignored anchors.
- :func:`plot_loss_cdf`: the paper's Figure 4 on a model trained with FL gamma 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .detection_losses import LossConfig
from .detection_ranking import ranking_stability
from .detection_task import CLASS_NAMES, IGNORE, make_batch
from .plots import pyplot, save_figure

__all__ = ["plot_ap_vs_budget", "plot_ranking_stability", "plot_example", "plot_loss_cdf", "normalised_loss_cdf"]

_STYLES = [("tab:blue", "-", "o"), ("tab:orange", "--", "s"), ("tab:green", "-.", "^"), ("tab:red", ":", "D"),
           ("tab:purple", "-", "v")]


def _groups(rows: tuple[LossConfig, ...]) -> list[tuple[str, list[int]]]:
    out: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        out.setdefault(r.group, []).append(i)
    return list(out.items())


def plot_ap_vs_budget(ap: np.ndarray, rows: tuple[LossConfig, ...], optimizers: tuple[str, ...],
                      budgets: tuple[int, ...], baseline: int, path: Path) -> Path:
    """ap: (R rows, O optimisers, S seeds, K budgets)."""
    plt = pyplot()
    groups = _groups(rows)
    fig, axes = plt.subplots(len(optimizers), len(groups), figsize=(3.3 * len(groups), 3.0 * len(optimizers)),
                             squeeze=False, sharex=True, sharey=True)
    x = np.asarray(budgets)
    for o, opt in enumerate(optimizers):
        for g, (name, idx) in enumerate(groups):
            ax = axes[o, g]
            if baseline not in idx:
                ax.plot(x, 100 * np.nanmean(ap[baseline, o], 0), color="0.5", ls="--", lw=1,
                        label=f"{rows[baseline].label} (ref.)")
            for k, i in enumerate(idx):
                colour, style, marker = _STYLES[k % len(_STYLES)]
                runs = 100 * ap[i, o]
                with np.errstate(all="ignore"):
                    mean = np.nanmean(runs, 0) if np.any(np.isfinite(runs)) else np.full(len(x), np.nan)
                ax.plot(x, mean, color=colour, ls=style, marker=marker, ms=3, lw=1.3, label=rows[i].label)
                if runs.shape[0] > 1 and np.any(np.isfinite(runs)):
                    ax.fill_between(x, np.nanmin(runs, 0), np.nanmax(runs, 0), color=colour, alpha=0.15, lw=0)
            ax.set_xscale("log", base=2)
            ax.set_xticks(x, [str(b) for b in budgets], fontsize=7)
            ax.grid(alpha=0.3)
            if o == 0:
                ax.set_title(name, fontsize=9)
            if g == 0:
                ax.set_ylabel(f"{opt.upper()}: test mAP %")
            if o == len(optimizers) - 1:
                ax.set_xlabel("training steps")
            ax.legend(fontsize=6, loc="lower right")
    return save_figure(fig, path, "mAP against training budget (line: mean over seeds; band: min-max over seeds)")


def plot_ranking_stability(ap: np.ndarray, rows: tuple[LossConfig, ...], optimizers: tuple[str, ...],
                           budgets: tuple[int, ...], path: Path) -> Path:
    """ap: (R, O, S, K). One heat map per optimiser: mean rank per row and budget, seed range in the cells."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(optimizers), figsize=(1.3 * len(budgets) * len(optimizers) + 3,
                                                          0.33 * len(rows) + 1.6), squeeze=False)
    for o, opt in enumerate(optimizers):
        ax = axes[0, o]
        stats = [ranking_stability(ap[:, o, :, k]) for k in range(len(budgets))]
        mean = np.stack([s.mean_rank for s in stats], 1)
        ax.imshow(mean, cmap="viridis_r", aspect="auto", vmin=1, vmax=len(rows))
        for k, s in enumerate(stats):
            for i in range(len(rows)):
                lo, hi = s.ranks[i].min(), s.ranks[i].max()
                ax.text(k, i, f"{mean[i, k]:.1f}\n({lo:g}-{hi:g})", ha="center", va="center", fontsize=5.5,
                        color="w" if mean[i, k] > len(rows) / 2 else "k")
        ax.set_xticks(range(len(budgets)),
                      [f"{b}\ntau {s.tau:.2f}" + ("" if s.same_best else "\nbest varies") for b, s in
                       zip(budgets, stats)], fontsize=6.5)
        ax.set_yticks(range(len(rows)), [r.label for r in rows] if o == 0 else [], fontsize=7)
        ax.set_title(f"{opt.upper()}: mean rank over seeds (seed range)", fontsize=8)
        ax.set_xlabel("training steps; mean Kendall tau between seeds", fontsize=7)
    return save_figure(fig, path)


def plot_example(size: int, path: Path) -> Path:
    plt = pyplot()
    b = make_batch(np.random.default_rng(123), 1, size)
    labels = b.labels[0]
    fg = np.full(labels.shape[1:], np.nan)
    for c in range(len(CLASS_NAMES)):
        fg[np.any(labels == c, 0)] = c
    ignored = np.any(labels == IGNORE, 0)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(7.5, 3.6))
    a1.imshow(b.images[0, 0], cmap="gray")
    for c, y0, x0, h, w in b.objects[0]:
        a1.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, color=f"C{c}", lw=1))
        a1.text(x0 - 0.5, y0 - 0.8, CLASS_NAMES[c], color=f"C{c}", fontsize=6)
    a1.set_title("input; boxes: objects (clutter unboxed)", fontsize=8)
    a2.imshow(ignored, cmap="Greys", vmin=0, vmax=3)
    im = a2.imshow(fg, cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
    del im
    n_fg = int(((labels >= 0) & (labels < len(CLASS_NAMES))).sum())
    a2.set_title(f"anchor centres with a foreground anchor (colour = class; grey = ignored)\n{n_fg} foreground, "
                 f"{int((labels == IGNORE).sum())} ignored of {labels.size} anchors", fontsize=7)
    for a in (a1, a2):
        a.axis("off")
    return save_figure(fig, path)


def normalised_loss_cdf(logits, labels, gamma: float):
    """Figure 4 of the paper: per-element focal loss (no alpha) with ``gamma``, split into positives and negatives,
    each sorted ascending and normalised to sum to 1.

    Args:
      logits, labels: tensors of one shape, labels binary.
    Returns:
      ((fraction_pos, cumulative_pos), (fraction_neg, cumulative_neg)) numpy arrays.
    """
    import focalkit
    import torch

    with torch.no_grad():
        loss = focalkit.sigmoid_focal_loss(logits, labels, alpha=-1.0, gamma=gamma,
                                           reduction="none").double().ravel()
    y = labels.ravel() > 0.5
    out = []
    for part in (loss[y], loss[~y]):
        v = np.sort(part.numpy())
        c = np.cumsum(v)
        c = c / c[-1] if len(c) and c[-1] > 0 else c
        out.append((np.arange(1, len(v) + 1) / max(len(v), 1), c))
    return tuple(out)


def plot_loss_cdf(logits, labels, path: Path, title: str) -> Path:
    """logits, labels: 1-d tensors over the non-ignored (anchor, class) sigmoids of the test images."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for k, g in enumerate((0.0, 0.5, 1.0, 2.0)):
        colour, style, _ = _STYLES[k]
        (fp, cp), (fn, cn) = normalised_loss_cdf(logits, labels, g)
        a1.plot(fp, cp, color=colour, ls=style, label=f"gamma = {g:g}")
        a2.plot(fn, cn, color=colour, ls=style, label=f"gamma = {g:g}")
    for ax, what in ((a1, "foreground"), (a2, "background")):
        ax.set_xlabel(f"fraction of {what} samples")
        ax.set_ylabel("cumulative normalised loss")
        ax.set_title(what, fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return save_figure(fig, path, title)
