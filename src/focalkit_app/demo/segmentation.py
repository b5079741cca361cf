"""``focalkit demo --task segmentation``: CE, focal loss, Dice + focal and focal Tversky on a rare small class.

Task: :func:`focalkit_app.demo.segmentation_data.make_shapes`, 32 x 32 synthetic images with large squares (class 1,
common) and, in 3 images of 10, one small disc (class 2, rare, 9 to 21 pixels), generated on the fly (no download).
Model: :class:`TinySegmenter`, a fully convolutional net of four 3 x 3 convolutions (width 16, dilations 1-2-4) and a
1 x 1 classifier, receptive field 17 pixels. Training, the same for every loss: Adam, fresh batches of 8 images per
step, a fixed number of steps, no early stopping; the test images (a separate stream of the same generator) are
scored once, after training, on the arg-max class map.

Losses (the libraries' defaults, fixed before any run, nothing tuned), all on the 3-channel softmax:

=================  ================================================================================================
name               definition
=================  ================================================================================================
``ce``             cross-entropy, mean over pixels (``torch.nn.functional.cross_entropy``)
``focal``          softmax focal loss, gamma = 2, no alpha, mean over pixels (``focalkit.softmax_focal_loss``)
``dice_focal``     Dice + focal, ``focalkit.dice_focal_loss`` defaults (MONAI's conventions: softmax, background
                   included, gamma = 2, lambda_dice = lambda_focal = 1, per-image Dice)
``focal_tversky``  focal Tversky, ``focalkit.focal_tversky_loss`` defaults (alpha = 0.7 on false negatives,
                   beta = 0.3 on false positives, gamma = 0.75, background included, per image)
=================  ================================================================================================

Metrics (:mod:`focalkit_app.demo.segmentation_metrics`, pooled over the test images): Dice of the rare class, boundary
recall of the rare class (the fraction of its true boundary pixels within 1 pixel, Chebyshev, of a predicted
boundary of that class) and, for context, Dice of the common class. Each seed fixes the training images, the test
images, the initialisation and the batch order, and every loss sees the same ones, so the comparison with CE is
paired (:func:`focalkit_app.demo.stats.paired_comparison`).

References:
  T.-Y. Lin et al. Focal Loss for Dense Object Detection. ICCV 2017 (arXiv:1708.02002). F. Milletari et al. V-Net.
  3DV 2016 (Dice loss). N. Abraham, N. M. Khan. A Novel Focal Tversky Loss Function with Improved Attention U-Net for
  Lesion Segmentation. ISBI 2019 (arXiv:1810.07842).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cli.checks import check_out_dir
from .outdir import make_out_dir
from .progress import progress_bar
from .segmentation_data import CLASS_NAMES, COMMON, RARE, make_shapes
from .segmentation_metrics import boundary_recall, dice_score
from .paired_table import conclusions, paired_table, table_cells, terminal_lines
from .plots import pyplot, save_figure
from .stats import RULE
from .threads import torch_threads

__all__ = ["SEGMENTATION_LOSSES", "SEGMENTATION_METRICS", "TinySegmenter", "SegmentationConfig",
           "DEFAULT_SEGMENTATION", "QUICK_SEGMENTATION", "segmentation_loss", "segmentation_metrics",
           "train_segmenter", "run_segmentation_demo"]

#: loss name -> display label (the baseline first)
SEGMENTATION_LOSSES = {
    "ce": "cross-entropy",
    "focal": "softmax focal g=2",
    "dice_focal": "Dice + focal",
    "focal_tversky": "focal Tversky",
}

#: metric key -> label (all higher is better)
SEGMENTATION_METRICS = {
    "rare_dice": "Dice, disc (rare)",
    "rare_boundary_recall": "boundary recall, disc (rare)",
    "common_dice": "Dice, square (common)",
}

TOLERANCE = 1  # pixels, of the boundary recall


class TinySegmenter(nn.Module):
    """conv3x3(1 -> W) -> ReLU -> [conv3x3(W -> W, dilation d) -> ReLU] for d in (1, 2, 4) -> conv1x1(W -> C).

    Shapes: (B, 1, H, W) images -> (B, C, H, W) class logits (padding keeps H and W).

    Example:
      >>> TinySegmenter(3)(torch.zeros(2, 1, 32, 32)).shape
      torch.Size([2, 3, 32, 32])
    """

    def __init__(self, num_classes: int, width: int = 16, dilations: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
        for d in dilations:
            layers += [nn.Conv2d(width, width, 3, padding=d, dilation=d), nn.ReLU()]
        layers.append(nn.Conv2d(width, num_classes, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class SegmentationConfig:
    """Settings of one run of the segmentation task (the same for every loss)."""

    seeds: int = 5
    losses: tuple[str, ...] = tuple(SEGMENTATION_LOSSES)
    steps: int = 500
    batch: int = 8
    lr: float = 3e-3
    width: int = 16
    test_images: int = 96
    size: int = 32

    def with_seeds(self, seeds: int) -> "SegmentationConfig":
        return replace(self, seeds=seeds)


DEFAULT_SEGMENTATION = SegmentationConfig()
QUICK_SEGMENTATION = SegmentationConfig(seeds=3, steps=120, test_images=64)


def segmentation_loss(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss ``name`` of :data:`SEGMENTATION_LOSSES` on (B, C, H, W) logits and (B, H, W) int64 class maps.

    Example:
      >>> x = torch.zeros(1, 3, 2, 2); y = torch.zeros(1, 2, 2, dtype=torch.int64)
      >>> round(float(segmentation_loss("ce", x, y)), 4)   # log 3
      1.0986
    """
    import focalkit

    if name == "ce":
        return F.cross_entropy(logits, target)
    if name == "focal":
        return focalkit.softmax_focal_loss(logits, target, gamma=2.0, reduction="mean")
    if name == "dice_focal":
        return focalkit.dice_focal_loss(logits, target)
    if name == "focal_tversky":
        return focalkit.focal_tversky_loss(logits, target)
    raise focalkit.InvalidArgumentError(f"loss: expected one of {list(SEGMENTATION_LOSSES)}, got {name!r}")


def segmentation_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The metrics of :data:`SEGMENTATION_METRICS` for (B, H, W) predicted and true class maps."""
    return {"rare_dice": dice_score(pred, truth, RARE),
            "rare_boundary_recall": boundary_recall(pred, truth, RARE, TOLERANCE),
            "common_dice": dice_score(pred, truth, COMMON)}


def _test_set(cfg: SegmentationConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return make_shapes(np.random.default_rng((seed, 1)), cfg.test_images, cfg.size)


def train_segmenter(name: str, cfg: SegmentationConfig, seed: int,
                    test: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Train a :class:`TinySegmenter` with loss ``name``; return the arg-max class maps of the test images
    (B, H, W), the training-loss curve and whether the loss became non-finite (then the predictions are all
    background)."""
    torch.manual_seed(seed)
    model = TinySegmenter(len(CLASS_NAMES), width=cfg.width)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng((seed, 0))
    curve = []
    for _ in range(cfg.steps):
        x, y = make_shapes(rng, cfg.batch, cfg.size)
        loss = segmentation_loss(name, model(torch.from_numpy(x)), torch.from_numpy(y))
        if not torch.isfinite(loss):
            return np.zeros(test[1].shape, dtype=np.int64), np.asarray(curve), True
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(float(loss.detach()))
    with torch.no_grad():
        pred = model(torch.from_numpy(test[0])).argmax(1).numpy()
    return pred, np.asarray(curve), False


def run_segmentation_demo(cfg: SegmentationConfig, out: Path | None, *, progress: bool = True, command: str = "",
                          echo=print, threads: int | None = None) -> dict:
    """Train every loss on every seed, print the table and, when ``out`` is given, write ``report.md``,
    ``results.json`` (every per-seed number) and ``segmentation_examples.png`` into it.

    ``threads``: torch intra-op threads (None -> 1, see :func:`focalkit_app.demo.threads.torch_threads`).

    Returns:
      the dict written to ``results.json``.
    """
    import focalkit

    if "ce" not in cfg.losses or cfg.seeds < 2:
        raise focalkit.InvalidArgumentError(
            f"cfg: expected the baseline 'ce' among the losses and at least 2 seeds, got {cfg.losses}, {cfg.seeds}")
    check_out_dir(out, option="out")  # creatable and writable, checked before any work (nothing left behind)
    with torch_threads(threads):
        return _run(cfg, out, progress, command, echo)


def _run(cfg: SegmentationConfig, out: Path | None, progress: bool, command: str, echo) -> dict:
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = progress_bar(cfg.seeds * len(cfg.losses), "focalkit demo --task segmentation", progress)
    runs: dict[str, list[dict]] = {name: [] for name in cfg.losses}
    rare_pixels, examples = [], {}
    try:
        for seed in range(cfg.seeds):
            test = _test_set(cfg, seed)
            rare_pixels.append(int(np.sum(test[1] == RARE)))
            for name in cfg.losses:
                pred, curve, diverged = train_segmenter(name, cfg, seed, test)
                runs[name].append({**segmentation_metrics(pred, test[1]), "diverged": diverged,
                                   "final_train_loss": float(curve[-1]) if len(curve) else float("nan")})
                if seed == 0:
                    examples[name] = pred
                bar.update(1)
    finally:
        bar.close()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    result = {"task": "segmentation", "command": command, "config": asdict(cfg), "seeds": list(range(cfg.seeds)),
              "boundary_tolerance_px": TOLERANCE, "test_rare_pixels": rare_pixels, "runs": runs,
              "wall_time_s": elapsed, "cpu_time_s": cpu, "torch": torch.__version__,
              "torch_threads": torch.get_num_threads()}
    table = paired_table(runs, cfg.losses, SEGMENTATION_LOSSES, SEGMENTATION_METRICS, "ce")
    for line in terminal_lines(_header(), table, SEGMENTATION_METRICS):
        echo(line)
    echo(f"'+' / '-' / '=': better / worse / within noise vs CE (paired 95 % CI over {cfg.seeds} seeds).")
    echo(f"Wall time: {elapsed:.1f} s ({cfg.seeds * len(cfg.losses)} runs, one process, "
         f"{torch.get_num_threads()} torch thread(s)); CPU time {cpu:.1f} s.")
    if out is not None:
        make_out_dir(out)
        (out / "results.json").write_text(json.dumps(result, indent=1, allow_nan=True), encoding="utf-8")
        fig = _plot_examples(_test_set(cfg, 0), examples, out / "segmentation_examples.png")
        path = out / "report.md"
        path.write_text("\n".join(_markdown(cfg, table, rare_pixels, fig, command, elapsed)) + "\n",
                        encoding="utf-8")
        echo(f"Report: {path}")
    return result


def _header() -> list[str]:
    head = ["loss"]
    for label in SEGMENTATION_METRICS.values():
        head += [label, "vs CE"]
    return head


def _markdown(cfg: SegmentationConfig, table: list[dict], rare_pixels: list[int], fig: Path, command: str,
              elapsed: float) -> list[str]:
    lines = ["# focalkit demo --task segmentation: a rare, small class", "", "## Method", "",
             f"- Data: {cfg.size} x {cfg.size} synthetic images generated on the fly: 1-3 filled squares (class 1, "
             "common, side 6-11 px) and, in 3 images of 10, one small filled disc (class 2, rare, radius 1.5-2.5 "
             "px, 9-21 px), intensities in [0.5, 1] on Gaussian noise (std 0.25). About 14 % of the pixels are "
             f"squares and 0.4 % discs. {cfg.test_images} test images per seed ({min(rare_pixels)}-"
             f"{max(rare_pixels)} disc pixels).",
             f"- Model: fully convolutional, four 3 x 3 convolutions of width {cfg.width} (dilations 1-2-4) and a "
             f"1 x 1 classifier; Adam lr {cfg.lr}, {cfg.steps} steps of {cfg.batch} fresh images, no early "
             "stopping. The rows are compared at this fixed, small budget, not at convergence.",
             "- Losses (defaults fixed before running): cross-entropy; softmax focal loss gamma 2 "
             "(`focalkit.softmax_focal_loss`, no alpha); Dice + focal (`focalkit.dice_focal_loss` defaults: softmax, "
             "background included, gamma 2, weights 1 and 1); focal Tversky (`focalkit.focal_tversky_loss` "
             "defaults: alpha 0.7 on false negatives, beta 0.3 on false positives, gamma 0.75).",
             f"- Metrics on the arg-max class map, pooled over the test images: Dice of the disc class; boundary "
             f"recall of the disc class = fraction of its true boundary pixels (mask pixels with a 4-neighbour "
             f"outside the mask) within {TOLERANCE} pixel (Chebyshev) of a predicted disc boundary pixel; Dice of "
             "the square class for context.",
             f"- Seeds 0..{cfg.seeds - 1}: a seed fixes the training and test images, the initialisation and the "
             "batch order; every loss sees the same ones, so comparisons with CE are paired.", "",
             "## How winners are decided", "", RULE, "",
             "## Results", "",
             "Mean ± std over seeds; 'vs CE' = mean paired difference ± 95 % CI half-width (verdict).", "",
             "| " + " | ".join(_header()) + " |", "|" + "---|" * len(_header())]
    lines += ["| " + " | ".join([r["label"] + (f" ({r['diverged']} diverged)" if r["diverged"] else "")]
                                + table_cells(r, SEGMENTATION_METRICS)) + " |" for r in table]
    lines += ["", "## What the numbers say", ""]
    lines += [f"- {s}" for s in conclusions(table, SEGMENTATION_METRICS, "CE")]
    lines += ["", f"![test predictions]({fig.name})", "", "## Run", "",
              f"- command: `{command}`" if command else "- command: (called from Python)",
              f"- wall time {elapsed:.1f} s, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
              f"Python {platform.python_version()}; every per-seed number is in `results.json`"]
    return lines


def _plot_examples(test: tuple[np.ndarray, np.ndarray], predictions: dict[str, np.ndarray], path: Path) -> Path:
    """Rows: three test images holding a disc; columns: input, truth, each loss' prediction (seed 0)."""
    plt = pyplot()
    from matplotlib.colors import ListedColormap

    images, truth = test
    with_disc = np.flatnonzero((truth == RARE).any((1, 2)))[:3]
    cmap = ListedColormap(["black", "tab:blue", "tab:orange"])
    cols = 2 + len(predictions)
    fig, axes = plt.subplots(len(with_disc), cols, figsize=(1.9 * cols, 1.9 * len(with_disc) + 0.4), squeeze=False)
    for row, i in enumerate(with_disc):
        panels = [(images[i, 0], "input", "gray"), (truth[i], "truth", cmap)]
        panels += [(p[i], SEGMENTATION_LOSSES[name], cmap) for name, p in predictions.items()]
        for ax, (data, title, cm) in zip(axes[row], panels):
            ax.imshow(data, cmap=cm, vmin=0 if cm is cmap else None, vmax=2 if cm is cmap else None,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
    return save_figure(fig, path, "Test images with a disc (seed 0): black background, blue square (common), orange "
                       "disc (rare)", title_size=8)
