"""``focalkit demo --task detection``: dense detection in miniature (RetinaNet's Table 1 and Figure 4).

The task (generated on the fly, no download)
--------------------------------------------
A 36 x 36 grey image holds 1-2 *objects*, filled rectangles of one of 9 anchor shapes (h, w) in
{(3,3), (3,7), (7,3), (5,5), (5,11), (11,5), (7,7), (7,15), (15,7)}, and 3-5 *distractors*, rectangle outlines of the
same shapes (hard negatives), on Gaussian noise (std 0.15); intensities vary in [0.6, 1.0]. The detector scores 9
anchors at every pixel: 36 * 36 * 9 = 11,664 anchors per image. An anchor is foreground when its shape equals an
object's shape and its centre lies within one pixel (Chebyshev) of the object's centre: 9 anchors per object, about
13.5 per image (1-2 objects), i.e. about 1 in 860 anchors. Every other anchor is background, including anchors of a
neighbouring shape on an object (hard negatives) and the vast, easy, empty background.

The model (:class:`~focalkit_app.demo.models.TinyDetector`) is a RetinaNet classification subnet in miniature: 5 conv
layers, 12 channels, dilations 1-2-4 (receptive field 19 px), one sigmoid logit per anchor. Training, the same for
every row: Adam, lr 3e-3, batches of 4 fresh images, 200 steps, the loss summed over all anchors and divided by the
number of foreground anchors in the batch (RetinaNet section 4.1). Runs execute in 2 worker processes of one torch
thread each. The rows are therefore compared at a fixed, small training budget, not at convergence.
Disclosure: pilot runs on seed 0 (CE with and without prior, alpha-CE 0.75, FL gamma 2) set the optimiser, lr, width
and noise level: with the paper's SGD at lr 0.01 the focal-loss run was far from converged in the few hundred steps a
2-core budget allows, and at width 8 all four pilot rows stayed at or below 21 AP.

Evaluation: average precision
(``sklearn.metrics.average_precision_score``) over every anchor of 32 held-out images, i.e. a dense, NMS-free AP.

Compared (each over the same seeds; a seed fixes the images, the initialisation and the batch order):
CE without prior initialisation (last bias 0), CE with the prior bias b = -log((1 - pi)/pi), pi = 0.01, alpha-balanced
CE over the alpha grid of the paper's Table 1a, focal loss over the gamma grid of Table 1b (with the paper's alpha for
each gamma), and FL* (Appendix A) with (gamma, beta) = (2, 1) and (4, 0). All but the first use the prior bias.

References:
  T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollár. Focal Loss for Dense Object Detection. ICCV 2017
  (arXiv:1708.02002).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .models import TinyDetector
from ..cli.checks import check_out_dir
from .outdir import make_out_dir
from .progress import progress_bar
from .stats import mean_std, paired_comparison

__all__ = ["SHAPES", "DetectionConfig", "DEFAULT_DETECTION", "QUICK_DETECTION", "make_batch", "LossConfig",
           "default_grid", "train_detector", "run_detection_demo", "normalised_loss_cdf"]

SHAPES: tuple[tuple[int, int], ...] = ((3, 3), (3, 7), (7, 3), (5, 5), (5, 11), (11, 5), (7, 7), (7, 15), (15, 7))


def _place(rng, size, occupied, h, w, pad):
    for _ in range(50):
        cy = int(rng.integers(h // 2 + 1, size - h // 2 - 1))
        cx = int(rng.integers(w // 2 + 1, size - w // 2 - 1))
        y0, y1, x0, x1 = cy - h // 2 - pad, cy + h // 2 + 1 + pad, cx - w // 2 - pad, cx + w // 2 + 1 + pad
        if not occupied[max(y0, 0):y1, max(x0, 0):x1].any():
            occupied[max(y0, 0):y1, max(x0, 0):x1] = True
            return cy, cx
    return None


def make_batch(rng: np.random.Generator, batch: int, size: int = 36):
    """Images (B, 1, size, size) float32 and anchor labels (B, 9, size, size) float32 in {0, 1}."""
    images = rng.normal(0.0, 0.15, (batch, 1, size, size)).astype(np.float32)
    labels = np.zeros((batch, len(SHAPES), size, size), dtype=np.float32)
    for b in range(batch):
        occupied = np.zeros((size, size), dtype=bool)
        for kind in ["object"] * int(rng.integers(1, 3)) + ["distractor"] * int(rng.integers(3, 6)):
            k = int(rng.integers(len(SHAPES)))
            h, w = SHAPES[k]
            where = _place(rng, size, occupied, h, w, pad=1)
            if where is None:
                continue
            cy, cx = where
            y0, x0 = cy - h // 2, cx - w // 2
            value = rng.uniform(0.6, 1.0)
            if kind == "object":
                images[b, 0, y0:y0 + h, x0:x0 + w] += value
                labels[b, k, cy - 1:cy + 2, cx - 1:cx + 2] = 1.0
            else:
                images[b, 0, y0:y0 + h, x0] += value
                images[b, 0, y0:y0 + h, x0 + w - 1] += value
                images[b, 0, y0, x0:x0 + w] += value
                images[b, 0, y0 + h - 1, x0:x0 + w] += value
    return images, labels


@dataclass(frozen=True)
class LossConfig:
    """One row of the comparison. kind: "ce" | "fl" | "fl_star"; alpha None = no alpha weighting."""

    label: str
    kind: str
    gamma: float = 0.0
    alpha: float | None = None
    beta: float = 0.0
    prior: bool = True
    group: str = ""


def default_grid(quick: bool = False) -> tuple[LossConfig, ...]:
    """Rows of the paper's Table 1a / 1b plus the CE baselines and FL*."""
    rows = [LossConfig("CE, no prior init", "ce", prior=False, group="baseline"),
            LossConfig("CE, prior init pi=.01", "ce", group="baseline")]
    alphas = (0.25, 0.75, 0.999) if quick else (0.10, 0.25, 0.50, 0.75, 0.90, 0.99, 0.999)
    rows += [LossConfig(f"alpha-CE a={a:g}", "ce", alpha=a, group="Table 1a (gamma 0)") for a in alphas]
    gammas = ((0.5, 0.5), (2.0, 0.25)) if quick else ((0.1, 0.75), (0.2, 0.75), (0.5, 0.5), (1.0, 0.25),
                                                       (2.0, 0.25), (5.0, 0.25))
    rows += [LossConfig(f"FL g={g:g} a={a:g}", "fl", gamma=g, alpha=a, group="Table 1b") for g, a in gammas]
    stars = ((2.0, 1.0),) if quick else ((2.0, 1.0), (4.0, 0.0))
    rows += [LossConfig(f"FL* g={g:g} b={b:g}", "fl_star", gamma=g, beta=b, alpha=0.25, group="Appendix A")
             for g, b in stars]
    return tuple(rows)


@dataclass(frozen=True)
class DetectionConfig:
    seeds: int = 3
    steps: int = 200
    batch: int = 4
    lr: float = 3e-3
    optimizer: str = "adam"
    width: int = 12
    workers: int = 2
    test_images: int = 32
    size: int = 36
    grid: tuple[LossConfig, ...] = default_grid()

    def with_seeds(self, seeds: int) -> "DetectionConfig":
        return replace(self, seeds=seeds)


DEFAULT_DETECTION = DetectionConfig()
QUICK_DETECTION = DetectionConfig(seeds=2, steps=60, test_images=16, grid=default_grid(quick=True))


def _train_task(task):
    """Worker entry (top level so that a spawned process can import it): one (row, seed) training run."""
    i, s, loss_cfg, cfg, keep_model = task
    torch.set_num_threads(1)
    run = train_detector(loss_cfg, cfg, s)
    state = {k: v.clone() for k, v in run.model.state_dict().items()} if keep_model else None
    return i, s, run.ap, run.loss_curve, state


def detection_loss(logits: torch.Tensor, labels: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """Sum over all anchors of the chosen loss, divided by max(1, number of foreground anchors)."""
    import focalkit

    alpha = -1.0 if cfg.alpha is None else cfg.alpha
    if cfg.kind == "fl_star":
        total = focalkit.sigmoid_focal_loss_star(logits, labels, gamma=cfg.gamma, beta=cfg.beta, alpha=alpha,
                                                 reduction="sum")
    else:
        total = focalkit.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=cfg.gamma, reduction="sum")
    return total / labels.sum().clamp_min(1.0)


@dataclass
class DetectionRun:
    ap: float
    diverged: bool
    loss_curve: np.ndarray
    model: TinyDetector


def _test_set(cfg: DetectionConfig, seed: int):
    rng = np.random.default_rng(10_000 + seed)
    return make_batch(rng, cfg.test_images, cfg.size)


def train_detector(loss_cfg: LossConfig, cfg: DetectionConfig, seed: int, test=None) -> DetectionRun:
    """Train one detector and return its dense AP on the seed's test images."""
    import focalkit
    from sklearn.metrics import average_precision_score

    torch.manual_seed(seed)
    if test is None:
        test = _test_set(cfg, seed)
    bias = focalkit.prior_bias(0.01) if loss_cfg.prior else 0.0
    model = TinyDetector(len(SHAPES), width=cfg.width, init_bias=bias)
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=1e-4)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(seed)
    curve, diverged = [], False
    for _ in range(cfg.steps):
        x, y = make_batch(rng, cfg.batch, cfg.size)
        loss = detection_loss(model(torch.from_numpy(x)), torch.from_numpy(y), loss_cfg)
        if not torch.isfinite(loss):
            diverged = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(float(loss.detach()))
    x_test, y_test = test
    with torch.no_grad():
        scores = model(torch.from_numpy(x_test)).numpy().ravel()
    if diverged or not np.all(np.isfinite(scores)):
        return DetectionRun(float("nan"), True, np.asarray(curve), model)
    return DetectionRun(float(average_precision_score(y_test.ravel(), scores)), False, np.asarray(curve), model)


def normalised_loss_cdf(logits: torch.Tensor, labels: torch.Tensor, gamma: float):
    """Figure 4 of the paper: per-anchor focal loss (no alpha) with ``gamma`` on a trained model's logits, split into
    positives and negatives, each sorted ascending and normalised to sum to 1.

    Returns:
      ((fraction_pos, cumulative_pos), (fraction_neg, cumulative_neg)) numpy arrays.
    """
    import focalkit

    with torch.no_grad():
        loss = focalkit.sigmoid_focal_loss(logits, labels, alpha=-1.0, gamma=gamma,
                                           reduction="none").double().ravel()
    y = labels.ravel() > 0.5
    out = []
    for part in (loss[y], loss[~y]):
        v = np.sort(part.numpy())
        c = np.cumsum(v)
        c = c / c[-1] if c[-1] > 0 else c
        out.append((np.arange(1, len(v) + 1) / len(v), c))
    return tuple(out)


def _plot_figure4(model: TinyDetector, test, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_test, y_test = test
    with torch.no_grad():
        logits = model(torch.from_numpy(x_test))
    labels = torch.from_numpy(y_test)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for g in (0.0, 0.5, 1.0, 2.0):
        (fp, cp), (fn, cn) = normalised_loss_cdf(logits, labels, g)
        a1.plot(fp, cp, label=f"gamma = {g:g}")
        a2.plot(fn, cn, label=f"gamma = {g:g}")
    for ax, what in ((a1, "foreground"), (a2, "background")):
        ax.set_xlabel(f"fraction of {what} samples")
        ax.set_ylabel("cumulative normalised loss")
        ax.set_title(f"{what} (positive)" if what == "foreground" else f"{what} (negative)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("Cumulative distribution of the normalised loss (model trained with FL gamma 2), cf. Lin et al. "
                 "Figure 4", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _kendall_stability(ap: np.ndarray) -> tuple[float, bool]:
    """Mean Kendall tau between the config rankings of every pair of seeds (NaN = diverged counts as worst), and
    whether all seeds agree on the best config."""
    from scipy.stats import kendalltau

    filled = np.where(np.isfinite(ap), ap, -1.0)
    taus = []
    for i in range(ap.shape[1]):
        for j in range(i + 1, ap.shape[1]):
            taus.append(kendalltau(filled[:, i], filled[:, j]).statistic)
    best = {int(np.argmax(filled[:, s])) for s in range(ap.shape[1])}
    return float(np.mean(taus)) if taus else float("nan"), len(best) == 1


def run_detection_demo(cfg: DetectionConfig, out: Path | None, *, progress: bool = True, command: str = "",
                       echo=print, threads: int | None = None) -> dict:
    """Run the grid over seeds, print the table, write report.md + figure4.png + training curves into ``out``."""
    check_out_dir(out, option="out")  # creatable and writable, checked before any work (nothing left behind)
    from .threads import torch_threads

    with torch_threads(threads):
        return _run(cfg, out, progress, command, echo)


def _run(cfg: DetectionConfig, out: Path | None, progress: bool, command: str, echo) -> dict:
    start = time.perf_counter()
    bar = progress_bar(len(cfg.grid) * cfg.seeds, "focalkit demo --task detection", progress)
    ap = np.full((len(cfg.grid), cfg.seeds), np.nan)
    curves: dict[int, list[np.ndarray]] = {i: [] for i in range(len(cfg.grid))}
    fig_model, fig_test = None, None
    tasks = [(i, s, lc, cfg, s == 0 and lc.kind == "fl" and lc.gamma == 2.0)
             for s in range(cfg.seeds) for i, lc in enumerate(cfg.grid)]
    try:
        results = []
        if cfg.workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed
            from concurrent.futures.process import BrokenProcessPool

            try:
                with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn")) as pool:
                    futures = [pool.submit(_train_task, t) for t in tasks]
                    for f in as_completed(futures):
                        results.append(f.result())
                        bar.update(1)
            except BrokenProcessPool:
                # e.g. called from a script without an `if __name__ == "__main__":` guard: run serially instead
                echo("worker processes failed to start; running serially (guard your script's entry point with "
                     "`if __name__ == \"__main__\":` to use 2 workers)")
                results = []
        done = {(r[0], r[1]) for r in results}
        for t in tasks:
            if (t[0], t[1]) not in done:
                results.append(_train_task(t))
                bar.update(1)
    finally:
        bar.close()
    for i, s, run_ap, curve, state in sorted(results, key=lambda r: (r[1], r[0])):
        ap[i, s] = run_ap
        curves[i].append(curve)
        if state is not None:
            fig_model = TinyDetector(len(SHAPES), width=cfg.width)
            fig_model.load_state_dict(state)
            fig_test = _test_set(cfg, s)
    elapsed = time.perf_counter() - start
    baseline = next(i for i, lc in enumerate(cfg.grid) if lc.kind == "ce" and lc.prior and lc.alpha is None)
    finite = np.all(np.isfinite(ap), axis=1)
    rows = []
    for i, lc in enumerate(cfg.grid):
        div = int(np.sum(~np.isfinite(ap[i])))
        if finite[i]:
            m, sd = mean_std(ap[i])
            cell = f"{100 * m:.1f} +- {100 * sd:.1f}"
            if i != baseline and cfg.seeds > 1 and finite[baseline]:
                c = paired_comparison(ap[i], ap[baseline], True)
                versus = f"{100 * c.mean_diff:+.1f} ({c.verdict})"
            else:
                versus = "baseline" if i == baseline else "-"
        else:
            cell, versus = f"diverged in {div}/{cfg.seeds} seeds", "-"
            if div < cfg.seeds:
                m, sd = mean_std(ap[i][np.isfinite(ap[i])])
                cell += f"; others {100 * m:.1f}"
        rows.append((lc.group, lc.label, cell, versus))
    tau, same_best = _kendall_stability(ap)
    means = np.where(finite, np.nanmean(np.where(np.isfinite(ap), ap, np.nan), 1), -np.inf)
    best = int(np.argmax(means))
    fl_rows = [i for i, lc in enumerate(cfg.grid) if lc.kind == "fl"]
    ace_rows = [i for i, lc in enumerate(cfg.grid) if lc.kind == "ce" and lc.alpha is not None]
    best_fl = max(fl_rows, key=lambda i: means[i]) if fl_rows else None
    best_ace = max(ace_rows, key=lambda i: means[i]) if ace_rows else None

    header = ("group", "loss", "AP % (mean +- std)", "vs CE prior init (paired)")
    widths = [max(len(str(r[k])) for r in rows + [header]) for k in range(4)]
    table = ["  ".join(str(v).ljust(w) for v, w in zip(header, widths)),
             "-" * (sum(widths) + 6)] + ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in rows]
    summary = [f"Best mean AP: {cfg.grid[best].label} ({100 * means[best]:.1f})."]
    if best_fl is not None and best_ace is not None and finite[best_fl] and finite[best_ace] and cfg.seeds > 1:
        c = paired_comparison(ap[best_fl], ap[best_ace], True)
        summary.append(f"Best focal loss ({cfg.grid[best_fl].label}) vs best alpha-balanced CE "
                       f"({cfg.grid[best_ace].label}): {100 * c.mean_diff:+.1f} AP points (95 % CI "
                       f"+-{100 * c.ci_half_width:.1f}): {c.verdict}. Note: picking the best row of each grid on "
                       "the same seeds favours both grids equally but is itself a selection on these numbers.")
    no_prior = next(i for i, lc in enumerate(cfg.grid) if not lc.prior)
    if not finite[no_prior]:
        summary.append("CE without prior initialisation diverged (non-finite loss) in "
                       f"{int(np.sum(~np.isfinite(ap[no_prior])))}/{cfg.seeds} seeds, as the paper reports.")
    else:
        c0 = paired_comparison(ap[no_prior], ap[baseline], True) if cfg.seeds > 1 else None
        summary.append(f"CE without prior initialisation did not diverge here (AP {100 * means[no_prior]:.1f}"
                       + (f", {100 * c0.mean_diff:+.1f} vs prior init: {c0.verdict}" if c0 else "") + ").")
    stable = tau >= 0.7 and same_best
    summary.append(f"Ranking stability across seeds: mean Kendall tau between seeds = {tau:.2f}; the best row is "
                   f"{'the same' if same_best else 'NOT the same'} in every seed -> ranking "
                   f"{'stable' if stable else 'NOT stable: read single rows with care'} (rule: stable when tau >= "
                   "0.7 and one best row).")
    for line in table:
        echo(line)
    echo("")
    for line in summary:
        echo(line)
    echo(f"Wall time: {elapsed:.1f} s ({len(cfg.grid)} losses x {cfg.seeds} seeds, {cfg.steps} steps each, "
         f"{torch.get_num_threads()} torch thread(s)).")
    result = {"ap": ap, "rows": rows, "summary": summary, "tau": tau, "same_best": same_best, "elapsed": elapsed}
    if out is not None:
        make_out_dir(out)
        figs = []
        if fig_model is not None:
            figs.append(_plot_figure4(fig_model, fig_test, out / "figure4_loss_cdf.png"))
        figs.append(_plot_curves(cfg, curves, out / "detection_training_curves.png"))
        figs.append(_plot_example(cfg, out / "detection_example.png"))
        lines = ["# focalkit demo --task detection: dense detection in miniature", "", "## Method", ""]
        body = (__doc__ or "").split("References:")[0].split("\n\n")[1:]
        lines += [" ".join(ln for ln in p.split("\n") if ln.strip() and set(ln.strip()) != {"-"}) for p in body
                  if p.strip()]
        n_anchors = cfg.test_images * cfg.size * cfg.size * len(SHAPES)
        lines += ["", f"Settings: {cfg.steps} {cfg.optimizer} steps of {cfg.batch} images, {cfg.test_images} test "
                  f"images ({n_anchors:,} test anchors) per seed, seeds 0..{cfg.seeds - 1}.",
                  "", "## Results", "", "| group | loss | AP % (mean ± std) | vs CE prior init (paired, AP points) |",
                  "|---|---|---|---|"]
        lines += [f"| {g} | {l} | {c.replace('+-', '±')} | {v} |" for g, l, c, v in rows]
        lines += ["", "Verdicts follow the paired rule of `focalkit_app.demo.stats`: better / worse when the 95 % "
                  "confidence interval of the per-seed AP difference excludes 0 (t with n-1 degrees of freedom; "
                  "with 3 seeds the interval is wide).", "", "## What the numbers say", ""]
        lines += [f"- {s}" for s in summary]
        lines += ["", "Paper (RetinaNet R50, COCO) for comparison, not reproduced here: Table 1a alpha .10 0.0 | .25 "
                  "10.8 | .50 30.2 | .75 31.1 | .90 30.8 | .99 28.7 | .999 25.1 AP; Table 1b gamma 0/.75 31.1 | "
                  ".1/.75 31.4 | .2/.75 31.9 | .5/.5 32.9 | 1/.25 33.7 | 2/.25 34.0 | 5/.25 32.2.", ""]
        lines += [f"![{f.stem}]({f.name})" for f in figs]
        lines += ["", "## Run", "", f"- command: `{command}`" if command else "- command: (called from Python)",
                  f"- wall time {elapsed:.1f} s, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
                  f"Python {platform.python_version()}"]
        (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        echo(f"Report: {out / 'report.md'}")
    return result


def _plot_curves(cfg: DetectionConfig, curves, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, lc in enumerate(cfg.grid):
        cs = [c for c in curves[i] if len(c)]
        if not cs:
            continue
        n = min(len(c) for c in cs)
        ax.plot(np.mean([c[:n] for c in cs], 0), label=lc.label, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss / #foreground")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_example(cfg: DetectionConfig, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = make_batch(np.random.default_rng(123), 1, cfg.size)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(7, 3.5))
    a1.imshow(x[0, 0], cmap="gray")
    a1.set_title("input (objects filled, distractors outlined)", fontsize=8)
    a2.imshow(y[0].max(0), cmap="magma")
    a2.set_title(f"foreground anchors: {int(y.sum())} of {y.size}", fontsize=8)
    for a in (a1, a2):
        a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
