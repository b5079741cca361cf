"""One training run of the miniature detector, evaluated at every checkpoint budget.

A run trains one detector (:class:`~focalkit_app.demo.detection_model.GNDetector` with C * A output channels, read
as (B, C, A, S, S)) with one loss and one optimiser for ``max(budgets)`` steps, and evaluates the mAP of
:mod:`focalkit_app.demo.detection_metrics` on the held-out images after exactly ``b`` steps for every ``b`` in
``budgets``: the checkpoints of one run, not separate runs per budget. The learning rate rises linearly from lr / 3
to lr over the first ``warmup`` steps (Detectron's linear warm-up) and stays constant afterwards, so that a later
checkpoint differs from an earlier one only by more training, not by a decayed step size.

Optimisers: ``"sgd"`` is the paper's (momentum 0.9, weight decay 1e-4); ``"adam"`` is Adam without weight decay.
The training images of a run are drawn from ``numpy.random.default_rng(seed)`` and the initialisation from
``torch.manual_seed(seed)``: every row sees the same images in the same order and starts from the same weights
(except the last bias, which the prior initialisation sets), so rows are paired by seed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from .detection_losses import LossConfig, detection_loss
from .detection_metrics import mean_average_precision
from .detection_task import ANCHOR_SHAPES, CLASS_NAMES, DetectionBatch, make_batch
from .detection_model import GNDetector

__all__ = ["TrainConfig", "RunResult", "build_detector", "detector_logits", "make_optimizer", "warmup_factor",
           "train_run", "test_set"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs besides the row, the optimiser and the seed."""

    budgets: tuple[int, ...] = (100, 200, 400, 800, 1600)
    batch: int = 4
    size: int = 24
    width: int = 12
    lr_sgd: float = 0.05
    lr_adam: float = 5e-3
    warmup: int = 50
    test_images: int = 64
    test_seed: int = 12_345

    def learning_rate(self, optimizer: str) -> float:
        return self.lr_sgd if optimizer == "sgd" else self.lr_adam


@functools.lru_cache(maxsize=4)
def _cached_test_set(seed: int, images: int, size: int) -> DetectionBatch:
    return make_batch(np.random.default_rng(seed), images, size)


def test_set(cfg: TrainConfig) -> DetectionBatch:
    """The held-out images: the same for every row, seed and optimiser (cached; do not modify)."""
    return _cached_test_set(cfg.test_seed, cfg.test_images, cfg.size)


def build_detector(cfg: TrainConfig, prior: bool) -> GNDetector:
    import focalkit

    bias = focalkit.prior_bias(0.01) if prior else 0.0
    return GNDetector(len(CLASS_NAMES) * len(ANCHOR_SHAPES), width=cfg.width, init_bias=bias)


def detector_logits(model: GNDetector, images: np.ndarray) -> torch.Tensor:
    """(B, 1, S, S) images -> (B, C, A, S, S) logits."""
    x = model(torch.from_numpy(images))
    b, _, h, w = x.shape
    return x.view(b, len(CLASS_NAMES), len(ANCHOR_SHAPES), h, w)


def warmup_factor(step: int, warmup: int) -> float:
    """Multiplier of the learning rate at ``step`` (0-based): 1/3 -> 1 linearly over ``warmup`` steps, then 1."""
    if step >= warmup:
        return 1.0
    return 1.0 / 3.0 + (2.0 / 3.0) * step / warmup


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    import focalkit

    raise focalkit.InvalidArgumentError(f"optimizer: expected 'sgd' or 'adam', got {name!r}")


@dataclass
class RunResult:
    """ap: (len(budgets),) mAP after each budget (NaN from the first non-finite loss on); per_class: (len(budgets),
    C); loss: training loss every step (shorter when diverged); state: the final weights when asked for."""

    ap: np.ndarray
    per_class: np.ndarray
    loss: np.ndarray
    diverged: bool
    state: dict | None = None


def _evaluate(model: GNDetector, test: DetectionBatch) -> tuple[float, np.ndarray]:
    model.eval()
    with torch.no_grad():
        logits = detector_logits(model, test.images).numpy()
    model.train()
    if not np.all(np.isfinite(logits)):
        return float("nan"), np.full(len(CLASS_NAMES), np.nan)
    return mean_average_precision(logits, test.labels)


def train_run(row: LossConfig, optimizer: str, seed: int, cfg: TrainConfig, test: DetectionBatch | None = None,
              keep_state: bool = False) -> RunResult:
    """Train one detector and evaluate it at every budget of ``cfg.budgets`` (sorted ascending)."""
    budgets = sorted(cfg.budgets)
    test = test_set(cfg) if test is None else test
    torch.manual_seed(seed)
    model = build_detector(cfg, row.prior)
    lr = cfg.learning_rate(optimizer)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    rng = np.random.default_rng(seed)
    ap = np.full(len(budgets), np.nan)
    per_class = np.full((len(budgets), len(CLASS_NAMES)), np.nan)
    losses: list[float] = []
    diverged = False
    nxt = 0
    for step in range(budgets[-1]):
        for group in opt.param_groups:
            group["lr"] = lr * warmup_factor(step, cfg.warmup)
        batch = make_batch(rng, cfg.batch, cfg.size)
        loss = detection_loss(detector_logits(model, batch.images), torch.from_numpy(batch.labels),
                              torch.from_numpy(batch.quality), row)
        if not torch.isfinite(loss):
            diverged = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        while nxt < len(budgets) and step + 1 == budgets[nxt]:
            ap[nxt], per_class[nxt] = _evaluate(model, test)
            nxt += 1
    diverged = diverged or bool(np.any(np.isnan(ap)))
    state = {k: v.clone() for k, v in model.state_dict().items()} if keep_state else None
    return RunResult(ap, per_class, np.asarray(losses), diverged, state)
