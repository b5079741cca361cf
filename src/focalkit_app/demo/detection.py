"""``focalkit demo --task detection``: dense detection in miniature, RetinaNet's Table 1 along the training budget.

Every row (a loss and its initialisation, :mod:`~focalkit_app.demo.detection_losses`) is trained on the generated
task of :mod:`~focalkit_app.demo.detection_task` with each optimiser and seed
(:mod:`~focalkit_app.demo.detection_training`), and evaluated at log-spaced checkpoint budgets up to convergence
(:mod:`~focalkit_app.demo.detection_budget`). The report (:mod:`~focalkit_app.demo.detection_report`) gives mAP
against budget per row and optimiser with the paired verdicts of :mod:`~focalkit_app.demo.stats`, the plateau of each
row, the ranking's stability per budget (:mod:`~focalkit_app.demo.detection_ranking`) and the figures of
:mod:`~focalkit_app.demo.detection_plots`. Runs execute in worker processes of one torch thread each.

Reference:
  T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollar. Focal Loss for Dense Object Detection. ICCV 2017
  (arXiv:1708.02002), Table 1 and Figure 4.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..cli.checks import check_out_dir
from .detection_budget import PLATEAU_TOL, doubling_budgets, plateau_sentence
from .detection_losses import LossConfig, default_grid, quick_grid
from .detection_ranking import STABLE_TAU
from .detection_task import ANCHOR_SHAPES, CLASS_NAMES, IGNORE, class_frequencies
from .detection_training import OPTIMIZERS, RunResult, TrainConfig, build_detector, detector_logits, test_set, train_run
from .outdir import make_out_dir
from .progress import progress_bar

__all__ = ["DetectionConfig", "DEFAULT_DETECTION", "QUICK_DETECTION", "run_detection_demo"]


@dataclass(frozen=True)
class DetectionConfig:
    """The whole comparison: rows x optimisers x seeds, each run evaluated at ``train.budgets``."""

    seeds: int = 4
    optimizers: tuple[str, ...] = OPTIMIZERS
    grid: tuple[LossConfig, ...] = default_grid()
    train: TrainConfig = TrainConfig()
    workers: int = 2

    def with_seeds(self, seeds: int) -> "DetectionConfig":
        return replace(self, seeds=seeds)

    def with_max_budget(self, max_budget: int, *, name: str = "max_budget") -> "DetectionConfig":
        """The same comparison with the checkpoint budgets doubled from the first one up to ``max_budget``, which must
        be the first budget times 2^k, k >= 1 (so that the plateau rule's last doubling is one).

        Example:
          >>> DEFAULT_DETECTION.with_max_budget(4096).train.budgets
          (64, 128, 256, 512, 1024, 2048, 4096)
        """
        import focalkit

        if isinstance(max_budget, bool) or not isinstance(max_budget, int):
            raise focalkit.InvalidTypeError(f"{name}: expected an int, got {type(max_budget).__name__}")
        first = min(self.train.budgets)
        ratio = max_budget // first
        if max_budget != first * ratio or ratio < 2 or ratio & (ratio - 1):  # not first x 2^k, k >= 1
            raise focalkit.InvalidArgumentError(
                f"{name}: expected the first budget {first} times a power of two ({first * 2}, {first * 4}, "
                f"{first * 8}, ...), got {max_budget!r}")
        return replace(self, train=replace(self.train, budgets=doubling_budgets(first, ratio.bit_length())))

    def with_optimizers(self, optimizers, *, name: str = "optimizers") -> "DetectionConfig":
        """The same comparison with only these optimisers (each of ``OPTIMIZERS`` at most once, in the given order)."""
        import focalkit

        names = tuple(optimizers)
        if not names or any(o not in OPTIMIZERS for o in names) or len(set(names)) < len(names):
            raise focalkit.InvalidArgumentError(
                f"{name}: expected one or both of 'sgd', 'adam', each once, got {list(names)}")
        return replace(self, optimizers=names)

    @property
    def baseline(self) -> int:
        """Index of CE with the prior initialisation (plain CE, no alpha, gamma 0)."""
        return next(i for i, r in enumerate(self.grid) if r.kind == "ce" and r.prior and r.alpha is None)


DEFAULT_DETECTION = DetectionConfig()
QUICK_DETECTION = DetectionConfig(seeds=2, grid=quick_grid(), workers=1,
                                  train=TrainConfig(budgets=(32, 64, 128), test_images=40))


def _figure_run(cfg: DetectionConfig) -> tuple[int, int] | None:
    """(row, optimiser) whose seed-0 model draws Figure 4: FL gamma 2 (the paper's), Adam when run."""
    rows = [i for i, r in enumerate(cfg.grid) if r.kind == "fl" and r.gamma == 2.0]
    if not rows:
        return None
    o = cfg.optimizers.index("adam") if "adam" in cfg.optimizers else 0
    return rows[0], o


def _train_task(task):
    """Worker entry (top level so that a spawned process can import it): one (row, optimiser, seed) run."""
    i, o, s, row, optimizer, train, keep = task
    torch.set_num_threads(1)
    return i, o, s, train_run(row, optimizer, s, train, keep_state=keep)


def run_detection_demo(cfg: DetectionConfig, out: Path | None, *, progress: bool = True, command: str = "",
                       echo=print, threads: int | None = None) -> dict:
    """Run every row x optimiser x seed, print the tables and findings, write report.md and the figures into
    ``out``. Returns a dict with ``ap`` (R, O, S, K), ``per_class`` (R, O, S, K, C), ``lines`` and ``elapsed``."""
    check_out_dir(out, option="out")  # creatable and writable, checked before any work (nothing left behind)
    from .threads import torch_threads

    with torch_threads(threads):
        return _run(cfg, out, progress, command, echo)


def _execute(cfg: DetectionConfig, tasks, bar, echo) -> list:
    results = []
    if cfg.workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool:
                for f in as_completed([pool.submit(_train_task, t) for t in tasks]):
                    results.append(f.result())
                    bar.update(1)
        except BrokenProcessPool:
            # e.g. called from a script without an `if __name__ == "__main__":` guard: run serially instead
            echo("worker processes failed to start; running serially (guard your script's entry point with "
                 "`if __name__ == \"__main__\":` to use worker processes)")
            results = []
    done = {r[:3] for r in results}
    for t in tasks:
        if t[:3] not in done:
            results.append(_train_task(t))
            bar.update(1)
    return results


def _run(cfg: DetectionConfig, out: Path | None, progress: bool, command: str, echo) -> dict:
    from . import detection_report as rep

    start = time.perf_counter()
    budgets = tuple(sorted(cfg.train.budgets))
    figure = _figure_run(cfg)
    tasks = [(i, o, s, row, opt, cfg.train, (i, o) == figure and s == 0)
             for s in range(cfg.seeds) for o, opt in enumerate(cfg.optimizers) for i, row in enumerate(cfg.grid)]
    bar = progress_bar(len(tasks), "focalkit demo --task detection", progress)
    try:
        results = _execute(cfg, tasks, bar, echo)
    finally:
        bar.close()
    shape = (len(cfg.grid), len(cfg.optimizers), cfg.seeds, len(budgets))
    ap = np.full(shape, np.nan)
    per_class = np.full(shape + (len(CLASS_NAMES),), np.nan)
    figure_state = None
    for i, o, s, run in results:
        run: RunResult
        ap[i, o, s], per_class[i, o, s] = run.ap, run.per_class
        if run.state is not None:
            figure_state = run.state
    elapsed = time.perf_counter() - start

    base = cfg.baseline
    tables = {opt: rep.budget_table(ap[:, o], cfg.grid, budgets, base) for o, opt in enumerate(cfg.optimizers)}
    difficulty = rep.difficulty(ap, per_class, cfg.grid, cfg.optimizers, budgets, CLASS_NAMES)
    findings = rep.findings(ap, cfg.grid, cfg.optimizers, budgets, base) if cfg.seeds > 1 else \
        ["One seed: no paired comparison is made."]
    dependence = rep.optimiser_dependence(ap, cfg.grid, cfg.optimizers)
    halves = _ci_half_widths(ap, base)
    for opt, table in tables.items():
        echo(f"{opt.upper()}: test mAP % (mean +- std over {cfg.seeds} seeds; + / - / = better / worse / within "
             "noise than CE prior init, paired)")
        for line in rep.text_table(table):
            echo(line)
        echo("")
    for line in difficulty + dependence:
        echo(line)
    n_runs = len(tasks)
    echo(f"Wall time: {elapsed:.1f} s ({len(cfg.grid)} rows x {len(cfg.optimizers)} optimisers x {cfg.seeds} seeds "
         f"= {n_runs} runs of {budgets[-1]} steps, {cfg.workers} worker process(es)).")
    result = {"ap": ap, "per_class": per_class, "tables": tables, "difficulty": difficulty, "findings": findings,
              "dependence": dependence, "elapsed": elapsed, "budgets": budgets}
    if out is not None:
        make_out_dir(out)
        figs = _figures(cfg, ap, budgets, figure, figure_state, out)
        path = _write_report(cfg, result, figs, halves, command, out)
        echo(f"Report: {path}")
    return result


def _ci_half_widths(ap: np.ndarray, base: int) -> list[float]:
    """95 % CI half-widths (AP points) of every finite row's paired difference with the baseline, largest budget."""
    from .stats import paired_comparison

    out = []
    if ap.shape[2] < 2:
        return out
    for i in range(ap.shape[0]):
        for o in range(ap.shape[1]):
            a, b = ap[i, o, :, -1], ap[base, o, :, -1]
            if i != base and np.all(np.isfinite(a)) and np.all(np.isfinite(b)):
                out.append(100 * paired_comparison(a, b).ci_half_width)
    return out


def _figures(cfg: DetectionConfig, ap, budgets, figure, state, out: Path) -> list[Path]:
    from .detection_plots import plot_ap_vs_budget, plot_example, plot_loss_cdf, plot_ranking_stability

    figs = [plot_ap_vs_budget(ap, cfg.grid, cfg.optimizers, budgets, cfg.baseline, out / "ap_vs_budget.png")]
    if cfg.seeds > 1:
        figs.append(plot_ranking_stability(ap, cfg.grid, cfg.optimizers, budgets, out / "ranking_stability.png"))
    figs.append(plot_example(cfg.train.size, out / "detection_example.png"))
    if state is not None:
        model = build_detector(cfg.train, True)
        model.load_state_dict(state)
        test = test_set(cfg.train)
        with torch.no_grad():
            logits = detector_logits(model, test.images)
        labels = torch.from_numpy(test.labels)
        onehot = torch.nn.functional.one_hot(labels.clamp(0, len(CLASS_NAMES)), len(CLASS_NAMES) + 1)
        dense = onehot[..., :len(CLASS_NAMES)].movedim(-1, 1).float()
        kept = (labels != IGNORE).unsqueeze(1).expand_as(dense)
        row, o = figure
        figs.append(plot_loss_cdf(logits[kept], dense[kept], out / "figure4_loss_cdf.png",
                                  f"Cumulative normalised loss on the test anchors, model trained with "
                                  f"{cfg.grid[row].label} ({cfg.optimizers[o].upper()}, {budgets[-1]} steps), "
                                  "cf. Lin et al. Figure 4"))
    return figs


def method_lines(cfg: DetectionConfig) -> list[str]:
    """The method paragraphs of the report, from the modules' docstrings and the configuration."""
    from . import detection_model, detection_task, detection_training
    from .stats import RULE

    def paragraphs(doc: str) -> list[str]:
        """reST docstring body -> Markdown paragraphs: underlined titles in bold, "- " items kept as a list."""
        import re

        body = re.sub(r":(?:class|mod|func):`~?([\w.]+)`", lambda m: "`" + m.group(1).split(".")[-1] + "`",
                      doc.split("Reference")[0]).replace("``", "`")
        out = []
        for p in body.split("\n\n")[1:]:
            lines = [ln.strip() for ln in p.split("\n") if ln.strip()]
            if len(lines) >= 2 and set(lines[1]) == {"-"}:
                out.append(f"**{lines[0]}**")
                lines = lines[2:]
            items: list[str] = []
            for ln in lines:
                if ln.startswith("- ") or not items:
                    items.append(ln)
                else:
                    items[-1] += " " + ln
            out.append("\n".join(items) if items and items[0].startswith("- ") else " ".join(items))
        return [line for p in out if p for line in (p, "")]

    t = cfg.train
    freqs = ", ".join(f"{n} {f:.3f}" for n, f in zip(CLASS_NAMES, class_frequencies()))
    lines = ["### Task", ""] + paragraphs(detection_task.__doc__ or "")
    lines += ["### Model", ""] + paragraphs(detection_model.__doc__ or "")
    lines += ["### Training and evaluation", ""] + paragraphs(detection_training.__doc__ or "")
    lines += [f"Settings: {t.size} x {t.size} images, {len(ANCHOR_SHAPES) * t.size * t.size:,} anchors and "
              f"{len(CLASS_NAMES) * len(ANCHOR_SHAPES) * t.size * t.size:,} sigmoids per image, class frequencies "
              f"{freqs}; model width {t.width}; a training set of {t.train_images} images per seed, batches of "
              f"{t.batch} images (about {max(t.budgets) * t.batch / t.train_images:.0f} epochs at the largest budget); "
              f"warm-up {t.warmup} steps; learning rates SGD {t.lr_sgd:g}, Adam {t.lr_adam:g}; evaluated weights "
              f"averaged with decay {t.ema_decay:g}; checkpoint budgets {', '.join(map(str, t.budgets))} "
              f"steps; {t.test_images} held-out images (the same for every run); {cfg.seeds} seeds "
              f"(0..{cfg.seeds - 1}), each fixing the training set, the order of its images and the initialisation, "
              "shared by every row and optimiser. mAP is the mean over the classes of the dense, NMS-free AP of every "
              "non-ignored anchor.",
              "", "### Rules", "", f"- Verdicts: {RULE}", f"- Plateau: {plateau_sentence(PLATEAU_TOL)}",
              f"- Ranking stability: per budget, the mean Kendall tau between the rows' rankings of every pair of "
              f"seeds; stable when tau >= {STABLE_TAU} and the best row is the same in every seed."]
    return lines


def _write_report(cfg: DetectionConfig, result: dict, figs: list[Path], halves: list[float], command: str,
                  out: Path) -> Path:
    from . import detection_report as rep

    rows = cfg.grid
    lines = ["# focalkit demo --task detection: dense detection in miniature, along the training budget", "",
             "## Method", ""] + method_lines(cfg)
    lines += ["", "Rows: " + "; ".join(f"{r.label} ({r.group})" for r in rows) + ". All rows but 'CE, no prior "
              "init' start the last bias at the prior pi = 0.01."]
    if halves:
        lines += ["", f"Seeds: {cfg.seeds}. The 95 % CI half-widths of the paired differences with the baseline at "
                  f"the largest budget range over {min(halves):.1f}-{max(halves):.1f} AP points (median "
                  f"{np.median(halves):.1f}): differences larger than that separate."]
    lines += ["", "## Difficulty", ""] + [f"- {s}" for s in result["difficulty"]]
    for opt, table in result["tables"].items():
        lines += ["", f"## {opt.upper()}: test mAP % by training budget", "",
                  f"Mean ± std over {cfg.seeds} seeds; `+` / `-` / `=`: better / worse / within noise than CE with "
                  "the prior initialisation at that budget (paired rule above).", ""]
        lines += rep.markdown_table(table)
    lines += ["", "## What the numbers say, per optimiser and budget", ""] + [f"- {s}" for s in result["findings"]]
    if result["dependence"]:
        lines += ["", "## Does the ranking depend on the optimiser?", ""] + [f"- {s}" for s in result["dependence"]]
    lines += ["", "For scale only (not reproduced here; RetinaNet R50 on COCO): the paper's Table 1a gives alpha "
              ".10 0.0 | .25 10.8 | .50 30.2 | .75 31.1 | .90 30.8 | .99 28.7 | .999 25.1 AP and Table 1b gamma/alpha "
              "0/.75 31.1 | .1/.75 31.4 | .2/.75 31.9 | .5/.5 32.9 | 1/.25 33.7 | 2/.25 34.0 | 5/.25 32.2.", ""]
    lines += [f"![{f.stem}]({f.name})" for f in figs]
    lines += ["", "## Run", "", f"- command: `{command}`" if command else "- command: (called from Python)",
              f"- wall time {result['elapsed']:.1f} s with {cfg.workers} worker process(es) of one torch thread, "
              f"torch {torch.__version__}, Python {platform.python_version()}"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
