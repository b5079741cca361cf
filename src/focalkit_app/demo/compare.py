"""``focalkit compare --data FILE --target COLUMN``: the loss family on the user's data, stratified k-fold.

Per outer fold: features are standardised with the training part's mean and std; 20 % of the training part
(stratified) is held out as the inner validation split (AdaFocal's bins, the validation curves, ``--tune``'s
objective); the model trains on the remaining 80 % and is scored once on the outer test fold. Folds play the role of
seeds in the report (paired comparisons).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .datasets import DataSplit
from .experiment import run_losses
from .losses import DEFAULT_LOSSES
from ..cli.checks import check_out_dir
from .outdir import make_out_dir
from .plots import plot_per_class_recall, plot_reliability, plot_training_curves
from .progress import progress_bar
from .report import Setting, terminal_table, write_markdown
from .stats import mean_std, paired_comparison
from .tabular import Table, load_table, validate_table
from .threads import torch_threads
from .training import TrainConfig

__all__ = ["CompareConfig", "make_folds", "run_compare_table", "run_compare_file"]


@dataclass(frozen=True)
class CompareConfig:
    folds: int = 5
    epochs: int = 60
    tune: bool = False
    trials: int = 20
    seed: int = 0
    losses: tuple[str, ...] = DEFAULT_LOSSES


def make_folds(table: Table, folds: int, seed: int) -> list[tuple[int, DataSplit]]:
    """Stratified outer folds, each with a stratified 80/20 inner train/validation split of its training part (the
    validation part holds at least one sample per class)."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = []
    for k, (train_idx, test_idx) in enumerate(skf.split(table.x, table.y)):
        n_val = max(int(round(0.2 * len(train_idx))), len(table.class_names))
        fit_idx, val_idx = train_test_split(train_idx, test_size=n_val, stratify=table.y[train_idx],
                                            random_state=seed + k)
        z = _standardiser(table, train_idx)
        out.append((seed + k, DataSplit(z(fit_idx), table.y[fit_idx], z(val_idx), table.y[val_idx], z(test_idx),
                                        table.y[test_idx], len(table.class_names), table.class_names)))
    return out


def _standardiser(table: Table, idx: np.ndarray):
    """z(rows) = (x - mean) / std with the statistics of ``table.x[idx]``, computed in float64 (a float32 sum of
    values near float32's limit would overflow), returned as float32, the training dtype.

    Raises:
      focalkit.InvalidArgumentError: a standardised value overflows float32 (a column almost constant on the
        training part and huge elsewhere), naming the column.
    """
    x = table.x.astype(np.float64)
    mu = x[idx].mean(0)
    sd = x[idx].std(0)
    sd = np.where(sd > 0, sd, 1.0)

    def z(rows):
        with np.errstate(over="ignore"):
            out = ((x[rows] - mu) / sd).astype(np.float32)
        ok = np.isfinite(out).all(0)
        if not ok.all():
            import focalkit

            bad = [n for n, good in zip(table.feature_names, ok) if not good]
            raise focalkit.InvalidArgumentError(
                "--data: expected feature columns whose standardised values fit in float32 (the training dtype), "
                f"got overflow in columns: {', '.join(bad[:20])}")
        return out

    return z


def _tuning_section(result, baseline_bacc: np.ndarray, recommended: dict, trials: int) -> tuple[str, list[str]]:
    c = paired_comparison(result.tuned_bacc, baseline_bacc, True)
    tm, ts = mean_std(result.tuned_bacc)
    bm, bs = mean_std(baseline_bacc)
    rec = (f"alpha = {recommended['alpha']:.3f}, gamma = {recommended['gamma']:.3f}, "
           f"beta = {recommended['beta']:.6f}")
    terminal = [
        f"Tuned class-balanced sigmoid focal loss ({trials} Optuna trials per search, nested by fold):",
        f"  balanced accuracy {tm:.3f}+-{ts:.3f} vs cross-entropy {bm:.3f}+-{bs:.3f}: gain {c.mean_diff:+.3f} "
        f"(95 % CI +-{c.ci_half_width:.3f}) -> {c.verdict}",
        f"  recommended configuration (search on all data): {rec}",
    ]
    lines = ["## Tuning (`--tune`)", "",
             f"Searched: class-balanced sigmoid focal loss, alpha in [0.05, 0.95], gamma in [0, 5], 1 - beta "
             f"log-uniform in [1e-4, 1]; Optuna TPE, {trials} trials per search, objective = balanced accuracy on "
             "the inner validation split. Nested: each outer fold is searched on its own inner split and scored on "
             "its test fold, so the gain below is that of the search procedure, measured on data it never saw.", "",
             "| fold | alpha | gamma | beta | tuned balanced acc. | CE balanced acc. |", "|---|---|---|---|---|---|"]
    for k, (p, t, b) in enumerate(zip(result.best_params, result.tuned_bacc, baseline_bacc)):
        lines.append(f"| {k} | {p['alpha']:.3f} | {p['gamma']:.3f} | {p['beta']:.6f} | {t:.3f} | {b:.3f} |")
    lines += ["", f"Measured gain over cross-entropy in balanced accuracy: **{c.mean_diff:+.3f}** (95 % CI "
              f"+-{c.ci_half_width:.3f} over {len(baseline_bacc)} folds, pooled fold std {c.pooled_std:.3f}): "
              f"**{c.verdict}**.", "",
              f"Recommended configuration (one more search on all data): **{rec}**. Its expected gain is the "
              "nested estimate above; if the verdict is 'within noise', cross-entropy is as good a choice."]
    return "\n".join(terminal), ["\n".join(lines)]


def run_compare_table(table: Table, cfg: CompareConfig, out: Path | None, *, name: str = "data", progress=True,
                      command: str = "", echo=print) -> Setting:
    """Run the comparison on an already loaded :class:`Table` (validated here)."""
    validate_table(table, cfg.folds)
    if "ce" not in cfg.losses:
        import focalkit

        raise focalkit.InvalidArgumentError(f"losses: expected the baseline 'ce' among them, got {cfg.losses}")
    check_out_dir(out, option="out")  # creatable and writable, checked before any work (nothing left behind)
    start = time.perf_counter()
    train_cfg = TrainConfig(epochs=cfg.epochs)
    splits = make_folds(table, cfg.folds, cfg.seed)
    full = _full_split(table, cfg.seed) if cfg.tune else None  # before training: it may raise on bad data
    total = len(splits) * len(cfg.losses) + (len(splits) + 1 if cfg.tune else 0)
    bar = progress_bar(total, "focalkit compare", progress)
    extra: list[str] = []
    tune_text = ""
    try:
        runs = run_losses(splits, cfg.losses, train_cfg, bar)
        if cfg.tune:
            from .tuning import nested_tuning, search

            result = nested_tuning(splits, train_cfg, cfg.trials, bar)
            recommended = search(full, train_cfg, cfg.trials, cfg.seed)
            bar.update(1)
            tune_text, extra = _tuning_section(result, runs["ce"].values("balanced_accuracy"), recommended,
                                               cfg.trials)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    counts = np.bincount(table.y, minlength=len(table.class_names))
    setting = Setting(f"{name}: {len(table.y)} rows, {table.x.shape[1]} features, {len(table.class_names)} classes, "
                      f"{cfg.folds} stratified folds", runs, table.class_names, counts)
    echo(terminal_table(setting))
    echo("'+' / '-' / '=': better / worse / within noise vs cross-entropy (paired 95 % CI over folds).")
    if tune_text:
        echo(tune_text)
    echo(f"Wall time: {elapsed:.1f} s.")
    if out is not None:
        make_out_dir(out)
        setting.figures = [
            plot_per_class_recall(runs, table.class_names, counts, out / "recall.png", "Per-class test recall"),
            plot_reliability(runs, out / "reliability.png", "Reliability diagrams"),
            plot_training_curves(runs, out / "curves.png", "Training curves"),
        ]
        method = [
            f"Data: `{name}`, {len(table.y)} rows, {table.x.shape[1]} numeric features, classes "
            + ", ".join(f"{c} ({int(n)})" for c, n in zip(table.class_names, counts)) + ".",
            f"Protocol: stratified {cfg.folds}-fold cross-validation (seed {cfg.seed}); per fold, features "
            "standardised with the training part's statistics, 20 % of the training part held out as validation "
            "(AdaFocal's bins, validation curves, tuning objective), the model trained on the other 80 % and scored "
            "once on the test fold. Tail classes: the ceil(C/3) rarest in the training part.",
            f"Model: MLP D-128-C, Adam lr 3e-3, weight decay 1e-4, batch 64, {cfg.epochs} epochs. Losses with the "
            "papers' default hyper-parameters (see `focalkit_app.demo.losses`).",
        ]
        footer = ["## Run", "", f"- command: `{command}`" if command else "- command: (called from Python)",
                  f"- wall time: {elapsed:.1f} s, torch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"Python {platform.python_version()}"]
        path = write_markdown(out, f"focalkit compare: {name}", method, [setting], extra, footer)
        echo(f"Report: {path}")
    return setting


def _full_split(table: Table, seed: int) -> DataSplit:
    """All data as one 80/20 train/validation split (for the final recommendation search)."""
    from sklearn.model_selection import train_test_split

    n_val = max(int(round(0.2 * len(table.y))), len(table.class_names))
    fit_idx, val_idx = train_test_split(np.arange(len(table.y)), test_size=n_val, stratify=table.y,
                                        random_state=seed)
    xs = _standardiser(table, fit_idx)(np.arange(len(table.y)))
    return DataSplit(xs[fit_idx], table.y[fit_idx], xs[val_idx], table.y[val_idx], xs[val_idx], table.y[val_idx],
                     len(table.class_names), table.class_names)


def run_compare_file(data: str | Path, target: str | None, cfg: CompareConfig, out: Path | None, *,
                     progress: bool = True, command: str = "", echo=print, threads: int | None = None) -> Setting:
    """Load ``data`` (CSV / Parquet / .npz), validate it, and run :func:`run_compare_table` with ``threads`` torch
    threads (None -> 1, see :func:`focalkit_app.demo.threads.torch_threads`)."""
    table = load_table(data, target)
    validate_table(table, cfg.folds)
    with torch_threads(threads):
        return run_compare_table(table, cfg, out, name=Path(data).name, progress=progress, command=command,
                                 echo=echo)
