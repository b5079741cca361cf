"""``focalkit demo --task multilabel``: BCE, focal loss and Asymmetric Loss on long-tailed multi-label digit mosaics.

Task: :func:`focalkit_app.demo.multilabel_data.digit_mosaics` (2 x 2 mosaics of scikit-learn's bundled digits, the
labels are the digits present, a long tail of label frequencies in training, a balanced test set; no download).
Model: the demo's MLP 256-128-10 (:class:`focalkit_app.demo.models.MLP`, default initialisation for every loss),
Adam, fixed epochs, no early stopping; the test set is scored once, after training.

Losses, each summed over the N x 10 logits of a batch and divided by N (the batch size), with the papers' default
hyper-parameters fixed before any run (nothing tuned):

==============  ===================================================================================================
name            definition
==============  ===================================================================================================
``bce``         binary cross-entropy, ``focalkit.sigmoid_focal_loss(alpha=None, gamma=0)`` (exact BCE)
``focal``       sigmoid focal loss, gamma = 2, no alpha (``focalkit.sigmoid_focal_loss``): the focal baseline of
                the ASL paper, i.e. ASL with gamma_pos = gamma_neg = 2 and no clip
``focal_a25``   sigmoid focal loss, alpha = 0.25, gamma = 2 (the dense-detection defaults of Lin et al.)
``asl``         Asymmetric Loss, ``focalkit.asymmetric_loss`` with its defaults gamma_pos = 0, gamma_neg = 4,
                clip = 0.05 (Ridnik et al.)
==============  ===================================================================================================

Metrics on the test mosaics (``sklearn.metrics.average_precision_score`` on the sigmoid scores):

.. math::

    \\mathrm{mAP} = \\frac{1}{L} \\sum_{l=1}^{L} \\mathrm{AP}_l,\\qquad
    \\mathrm{mAP}_\\mathrm{rare} = \\frac{1}{|R|} \\sum_{l \\in R} \\mathrm{AP}_l,

with R the ceil(L / 3) = 4 labels with the fewest training positives. Each seed fixes the data, the initialisation
and the batch order, and every loss sees the same ones, so the comparison with BCE is paired
(:func:`focalkit_app.demo.stats.paired_comparison`).

References:
  T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollár. Focal Loss for Dense Object Detection. ICCV 2017
  (arXiv:1708.02002). T. Ridnik, E. Ben-Baruch, N. Zamir, A. Noy, I. Friedman, M. Protter, L. Zelnik-Manor.
  Asymmetric Loss For Multi-Label Classification. ICCV 2021 (arXiv:2009.14119).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..cli.checks import check_out_dir
from .models import MLP
from .multilabel_data import MultiLabelSplit, digit_mosaics
from .outdir import make_out_dir
from .progress import progress_bar
from .paired_table import conclusions, paired_table, table_cells, terminal_lines
from .plots import pyplot, save_figure
from .stats import RULE
from .threads import torch_threads
from .training import TrainConfig

__all__ = ["MULTILABEL_LOSSES", "MULTILABEL_METRICS", "MultiLabelConfig", "DEFAULT_MULTILABEL", "QUICK_MULTILABEL",
           "multilabel_loss", "multilabel_metrics", "train_multilabel", "run_multilabel_demo"]

#: loss name -> display label (the baseline first)
MULTILABEL_LOSSES = {
    "bce": "BCE",
    "focal": "focal g=2",
    "focal_a25": "focal a=.25 g=2",
    "asl": "ASL g+=0 g-=4 clip=.05",
}

#: metric key -> label (both higher is better)
MULTILABEL_METRICS = {"map": "mAP", "rare_map": "mAP of the 4 rarest labels"}


@dataclass(frozen=True)
class MultiLabelConfig:
    """Settings of one run of the multi-label task (the same for every loss)."""

    imbalance: float = 100.0
    seeds: int = 5
    losses: tuple[str, ...] = tuple(MULTILABEL_LOSSES)
    train: TrainConfig = TrainConfig(epochs=60)
    n_train: int = 2000
    n_test: int = 600

    def with_seeds(self, seeds: int) -> "MultiLabelConfig":
        return replace(self, seeds=seeds)


DEFAULT_MULTILABEL = MultiLabelConfig()
QUICK_MULTILABEL = MultiLabelConfig(seeds=3, train=TrainConfig(epochs=25), n_train=1000, n_test=400)


def multilabel_loss(name: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The loss ``name`` of :data:`MULTILABEL_LOSSES` on (N, L) logits and (N, L) multi-hot float targets, summed
    over all elements and divided by N.

    Example:
      >>> x = torch.tensor([[2.0, -1.0]]); y = torch.tensor([[1.0, 0.0]])
      >>> round(float(multilabel_loss("bce", x, y)), 4)
      0.4402
    """
    import focalkit

    n = max(logits.shape[0], 1)
    if name == "bce":
        total = focalkit.sigmoid_focal_loss(logits, targets, alpha=None, gamma=0.0, reduction="sum")
    elif name == "focal":
        total = focalkit.sigmoid_focal_loss(logits, targets, alpha=None, gamma=2.0, reduction="sum")
    elif name == "focal_a25":
        total = focalkit.sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0, reduction="sum")
    elif name == "asl":
        total = focalkit.asymmetric_loss(logits, targets, reduction="sum")
    else:
        raise focalkit.InvalidArgumentError(f"loss: expected one of {list(MULTILABEL_LOSSES)}, got {name!r}")
    return total / n


def multilabel_metrics(y_true: np.ndarray, scores: np.ndarray, rare: np.ndarray) -> dict:
    """mAP, mAP of the ``rare`` labels and the per-label AP of (N, L) scores against (N, L) multi-hot labels.

    Labels without a positive in ``y_true`` are left out of the means (their AP is undefined; NaN per label).

    Example:
      >>> y = np.array([[1, 0], [0, 1], [1, 1]]); s = np.array([[0.9, 0.5], [0.2, 0.8], [0.7, 0.3]])
      >>> multilabel_metrics(y, s, np.array([1]))["rare_map"]
      0.8333333333333333
    """
    from sklearn.metrics import average_precision_score

    y_true = np.asarray(y_true)
    present = y_true.sum(0) > 0
    ap = np.full(y_true.shape[1], np.nan)
    ap[present] = average_precision_score(y_true[:, present], scores[:, present], average=None)
    rare_ap = ap[np.asarray(rare)]
    return {"map": float(np.nanmean(ap)), "rare_map": float(np.nanmean(rare_ap)), "per_label_ap": ap.tolist()}


def train_multilabel(name: str, split: MultiLabelSplit, seed: int, config: TrainConfig) -> tuple[np.ndarray, bool]:
    """Train the MLP with loss ``name``; return the test scores sigmoid(logits) (N_test, L) and whether the loss
    became non-finite (then the scores are NaN)."""
    torch.manual_seed(seed)
    model = MLP(split.x_train.shape[1], split.num_labels, hidden=config.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    xt, yt = torch.as_tensor(split.x_train), torch.as_tensor(split.y_train)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(config.epochs):
        perm = torch.randperm(xt.shape[0], generator=gen)
        for i in range(0, xt.shape[0], config.batch_size):
            idx = perm[i:i + config.batch_size]
            loss = multilabel_loss(name, model(xt[idx]), yt[idx])
            if not torch.isfinite(loss):
                return np.full(split.y_test.shape, np.nan), True
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        scores = torch.sigmoid(model(torch.as_tensor(split.x_test)).double()).numpy()
    return scores, False


def run_multilabel_demo(cfg: MultiLabelConfig, out: Path | None, *, progress: bool = True, command: str = "",
                        echo=print, threads: int | None = None) -> dict:
    """Train every loss on every seed, print the table and, when ``out`` is given, write ``report.md``,
    ``results.json`` (every per-seed number) and ``multilabel_per_label_ap.png`` into it.

    ``threads``: torch intra-op threads (None -> 1, see :func:`focalkit_app.demo.threads.torch_threads`).

    Returns:
      the dict written to ``results.json``.
    """
    import focalkit

    if "bce" not in cfg.losses or cfg.seeds < 2:
        raise focalkit.InvalidArgumentError(
            f"cfg: expected the baseline 'bce' among the losses and at least 2 seeds, got {cfg.losses}, {cfg.seeds}")
    check_out_dir(out, option="out")  # creatable and writable, checked before any work (nothing left behind)
    with torch_threads(threads):
        return _run(cfg, out, progress, command, echo)


def _run(cfg: MultiLabelConfig, out: Path | None, progress: bool, command: str, echo) -> dict:
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = progress_bar(cfg.seeds * len(cfg.losses), "focalkit demo --task multilabel", progress)
    runs: dict[str, list[dict]] = {name: [] for name in cfg.losses}
    counts, rare = [], []
    try:
        for seed in range(cfg.seeds):
            split = digit_mosaics(cfg.imbalance, seed, n_train=cfg.n_train, n_test=cfg.n_test)
            counts.append(split.train_counts.tolist())
            rare.append(split.rare_labels.tolist())
            for name in cfg.losses:
                scores, diverged = train_multilabel(name, split, seed, cfg.train)
                metrics = ({"map": float("nan"), "rare_map": float("nan"), "per_label_ap": [float("nan")] * 10}
                           if diverged else multilabel_metrics(split.y_test, scores, split.rare_labels))
                runs[name].append({**metrics, "diverged": diverged})
                bar.update(1)
    finally:
        bar.close()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    result = {"task": "multilabel", "command": command, "config": asdict(cfg), "seeds": list(range(cfg.seeds)),
              "train_label_counts": counts, "rare_labels": rare, "runs": runs,
              "wall_time_s": elapsed, "cpu_time_s": cpu, "torch": torch.__version__,
              "torch_threads": torch.get_num_threads()}
    table = paired_table(runs, cfg.losses, MULTILABEL_LOSSES, MULTILABEL_METRICS, "bce")
    for line in terminal_lines(_header(), table, MULTILABEL_METRICS):
        echo(line)
    echo(f"'+' / '-' / '=': better / worse / within noise vs BCE (paired 95 % CI over {cfg.seeds} seeds).")
    echo(f"Wall time: {elapsed:.1f} s ({cfg.seeds * len(cfg.losses)} runs, one process, "
         f"{torch.get_num_threads()} torch thread(s)); CPU time {cpu:.1f} s.")
    if out is not None:
        make_out_dir(out)
        (out / "results.json").write_text(json.dumps(result, indent=1, allow_nan=True), encoding="utf-8")
        fig = _plot_per_label_ap(runs, np.mean(counts, 0), out / "multilabel_per_label_ap.png")
        path = out / "report.md"
        path.write_text("\n".join(_markdown(cfg, table, runs, np.mean(counts, 0), rare, fig, command, elapsed))
                        + "\n", encoding="utf-8")
        echo(f"Report: {path}")
    return result


def _header() -> list[str]:
    head = ["loss"]
    for label in MULTILABEL_METRICS.values():
        head += [f"{label} (mean ± std)", f"{label}: vs BCE (paired 95 % CI)"]
    return head


def _markdown(cfg: MultiLabelConfig, table: list[dict], runs: dict[str, list[dict]], mean_counts: np.ndarray,
              rare: list[list[int]], fig: Path, command: str, elapsed: float) -> list[str]:
    t = cfg.train
    rare_sets = {tuple(r) for r in rare}
    rare_text = (", ".join(map(str, rare[0])) if len(rare_sets) == 1
                 else "per seed: " + "; ".join(", ".join(map(str, r)) for r in rare))
    lines = ["# focalkit demo --task multilabel: BCE, focal loss and ASL on long-tailed multi-label digits", "",
             "## Method", "",
             f"- Data: 2 x 2 mosaics of scikit-learn's bundled 8 x 8 digits (no download); the labels are the digits "
             f"present. {cfg.n_train} training mosaics with a long tail of label frequencies (imbalance factor "
             f"{cfg.imbalance:g} among the digits of filled tiles, 3 of 4 tiles filled on average), {cfg.n_test} "
             "test mosaics with uniformly drawn digits; training and test tiles come from disjoint halves of the "
             "digit images.",
             f"- Model: MLP 256-{t.hidden}-10, default initialisation, Adam lr {t.lr}, weight decay "
             f"{t.weight_decay}, batch {t.batch_size}, {t.epochs} epochs, no early stopping.",
             "- Losses (summed over the batch's logits, divided by the batch size; defaults fixed before running): "
             "BCE; sigmoid focal loss gamma 2 without alpha; sigmoid focal loss alpha 0.25, gamma 2; "
             "Asymmetric Loss gamma_pos 0, gamma_neg 4, clip 0.05 (`focalkit.asymmetric_loss` defaults).",
             f"- Metrics: mAP = mean over the 10 labels of `sklearn.metrics.average_precision_score` on the sigmoid "
             f"scores; rare-label mAP = the same over the 4 labels with the fewest training positives ({rare_text}).",
             f"- Seeds 0..{cfg.seeds - 1}: a seed fixes the mosaics, the initialisation and the batch order; every "
             "loss sees the same ones, so comparisons with BCE are paired.", "",
             "## How winners are decided", "", RULE, "",
             "## Results", "",
             "| " + " | ".join(_header()) + " |", "|" + "---|" * len(_header())]
    lines += ["| " + " | ".join([r["label"] + (f" ({r['diverged']} diverged)" if r["diverged"] else "")]
                                + table_cells(r, MULTILABEL_METRICS)) + " |" for r in table]
    lines += ["", "Per-label AP (mean over seeds) with the mean number of training positives:", "",
              "| loss | " + " | ".join(f"{c} (n={k:.0f})" for c, k in enumerate(mean_counts)) + " |",
              "|" + "---|" * (len(mean_counts) + 1)]
    for name in cfg.losses:
        ap = np.nanmean([r["per_label_ap"] for r in runs[name]], 0)
        lines.append(f"| {MULTILABEL_LOSSES[name]} | " + " | ".join(f"{v:.3f}" for v in ap) + " |")
    lines += ["", "## What the numbers say", ""]
    lines += [f"- {s}" for s in conclusions(table, MULTILABEL_METRICS, "BCE")]
    lines += ["", f"![per-label AP]({fig.name})", "", "## Run", "",
              f"- command: `{command}`" if command else "- command: (called from Python)",
              f"- wall time {elapsed:.1f} s, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
              f"Python {platform.python_version()}; every per-seed number is in `results.json`"]
    return lines


def _plot_per_label_ap(runs: dict[str, list[dict]], mean_counts: np.ndarray, path: Path) -> Path:
    """Grouped bars: test AP per label (mean over seeds, error bar = std), labels ordered by training frequency."""
    plt = pyplot()

    names = list(runs)
    num = len(mean_counts)
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(10, 4))
    for i, name in enumerate(names):
        ap = np.array([r["per_label_ap"] for r in runs[name]], dtype=np.float64)
        ax.bar(np.arange(num) + (i - (len(names) - 1) / 2) * width, np.nanmean(ap, 0), width,
               yerr=np.nanstd(ap, 0), label=MULTILABEL_LOSSES[name], capsize=1)
    ax.set_xticks(np.arange(num), [f"{c}\n(n={k:.0f})" for c, k in enumerate(mean_counts)], fontsize=8)
    ax.set_xlabel("label (digit) and mean number of training positives")
    ax.set_ylabel("test average precision")
    ax.set_ylim(0, 1.05)
    ax.set_title("Per-label test AP, long-tailed multi-label digit mosaics (mean ± std over seeds)", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    return save_figure(fig, path)
