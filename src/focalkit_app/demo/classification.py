"""``focalkit demo`` (default task): the loss family on long-tailed digits, several seeds, several imbalance factors."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .datasets import digits_long_tail
from .experiment import LossRuns, run_losses
from .losses import DEFAULT_LOSSES, LOSSES
from ..cli.checks import check_out_dir
from .outdir import make_out_dir
from .plots import plot_per_class_recall, plot_reliability, plot_training_curves
from .progress import progress_bar
from .report import Setting, terminal_table, write_markdown
from .threads import torch_threads
from .training import TrainConfig

__all__ = ["DigitsDemoConfig", "run_digits_demo", "QUICK", "DEFAULT"]


@dataclass(frozen=True)
class DigitsDemoConfig:
    imbalances: tuple[float, ...] = (10.0, 50.0, 100.0)
    seeds: int = 5
    losses: tuple[str, ...] = DEFAULT_LOSSES
    train: TrainConfig = TrainConfig(epochs=50)
    workers: int = 2


DEFAULT = DigitsDemoConfig()
QUICK = DigitsDemoConfig(imbalances=(100.0,), seeds=3, train=TrainConfig(epochs=30), workers=1)


def _slice_runs(runs: LossRuns, block: slice) -> LossRuns:
    return LossRuns(runs.name, runs.metrics[block], runs.recall[block], runs.reliability[block],
                    runs.train_loss[block], runs.val_bacc[block], runs.diverged[block])


def _method(cfg: DigitsDemoConfig) -> list[str]:
    t = cfg.train
    return [
        "Data: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes; no download). Per seed and "
        "class, 50 images form a balanced test set and 15 a balanced validation set; the training set is drawn from "
        "the rest with n_c = round(100 (1/IF)^(c/9)) (class 0 head, class 9 tail). Tail classes = the 4 rarest.",
        f"Model: MLP 64-{t.hidden}-10 (ReLU), Adam lr {t.lr}, weight decay {t.weight_decay}, batch {t.batch_size}, "
        f"{t.epochs} epochs, no early stopping; the test set is used once, after training. The validation set is used "
        "only by AdaFocal's gamma updates and for the validation curves. Runs execute in "
        f"{cfg.workers} worker process(es) of one torch thread each.",
        "Losses (papers' default hyper-parameters, fixed before running, not tuned): "
        + "; ".join(f"{LOSSES[k].label} (`{k}`)" for k in cfg.losses)
        + ". See `focalkit_app.demo.losses` for the exact definitions.",
        f"Seeds 0..{cfg.seeds - 1}: the seed fixes the data split, the initialisation and the batch order; every loss "
        "sees the same data for a given seed, so comparisons are paired.",
        "Metrics on the balanced test set: balanced accuracy, tail-class recall, macro-F1, macro average precision "
        "(scikit-learn), expected calibration error (15 equal-width bins of top-label confidence). Sigmoid-head "
        "probabilities are renormalised to sum to 1 before the metrics.",
    ]


def run_digits_demo(cfg: DigitsDemoConfig, out: Path | None, *, progress: bool = True, command: str = "",
                    echo=print, threads: int | None = None) -> list[Setting]:
    """Run the demo, print one table per imbalance factor, and write the report folder when ``out`` is given.

    ``threads``: torch intra-op threads during training; None -> 1 (measured faster than 2 for these (64, 10)-sized
    batches, and robust to a busy machine); the previous setting is restored afterwards.
    """
    check_out_dir(out, option="out")  # creatable and writable, checked before any work (nothing left behind)
    with torch_threads(threads):
        return _run(cfg, out, progress, command, echo)


def _run(cfg: DigitsDemoConfig, out: Path | None, progress: bool, command: str, echo) -> list[Setting]:
    start = time.perf_counter()
    bar = progress_bar(len(cfg.imbalances) * cfg.seeds * len(cfg.losses), "focalkit demo", progress)
    settings = []
    try:
        # all imbalance factors in one batch of runs, so that the worker processes start once
        tagged = [(imb, s, digits_long_tail(imb, s)) for imb in cfg.imbalances for s in range(cfg.seeds)]
        all_runs = run_losses([(s, split) for _, s, split in tagged], cfg.losses, cfg.train, bar,
                              workers=cfg.workers)
        for j, imb in enumerate(cfg.imbalances):
            block = slice(j * cfg.seeds, (j + 1) * cfg.seeds)
            runs = {name: _slice_runs(r, block) for name, r in all_runs.items()}
            split = tagged[j * cfg.seeds][2]
            settings.append(Setting(f"Long-tailed digits, imbalance factor {imb:g} ({cfg.seeds} seeds)", runs,
                                    split.class_names, split.train_counts))
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    for s in settings:
        echo(terminal_table(s))
        echo("")
    echo("'+' / '-' / '=': better / worse / within noise vs cross-entropy (paired 95 % CI over seeds).")
    echo(f"Wall time: {elapsed:.1f} s ({len(cfg.imbalances) * cfg.seeds * len(cfg.losses)} runs, {cfg.workers} worker "
         f"process(es), {torch.get_num_threads() if cfg.workers == 1 else 1} torch thread(s) each).")
    if out is not None:
        make_out_dir(out)
        for s, imb in zip(settings, cfg.imbalances):
            tag = f"if{imb:g}"
            s.figures = [
                plot_per_class_recall(s.runs, s.class_names, s.train_counts, out / f"recall_{tag}.png",
                                      f"Per-class test recall, IF {imb:g}"),
                plot_reliability(s.runs, out / f"reliability_{tag}.png", f"Reliability diagrams, IF {imb:g}"),
                plot_training_curves(s.runs, out / f"curves_{tag}.png", f"Training curves, IF {imb:g}"),
            ]
        footer = ["## Run", "", f"- command: `{command}`" if command else "- command: (called from Python)",
                  f"- wall time of the training runs: {elapsed:.1f} s, torch {torch.__version__}, "
                  f"{cfg.workers} worker process(es), Python {platform.python_version()}, {platform.machine()}"]
        path = write_markdown(out, "focalkit demo: focal loss on long-tailed digits", _method(cfg), settings,
                              footer=footer)
        echo(f"Report: {path}")
    return settings
