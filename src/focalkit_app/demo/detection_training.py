"""One training run of the miniature detector, evaluated at every checkpoint budget.

A run trains one detector (:class:`~focalkit_app.demo.detection_model.GNDetector` with C * A output channels, read
as (B, C, A, S, S)) with one loss and one optimiser for ``max(budgets)`` steps, and evaluates the mAP of
:mod:`focalkit_app.demo.detection_metrics` on the held-out images after exactly ``b`` steps for every ``b`` in
``budgets``: the checkpoints of one run, not separate runs per budget. The learning rate rises linearly from lr / 3
to lr over the first ``warmup`` steps (Detectron's linear warm-up) and stays constant afterwards, so that a later
checkpoint differs from an earlier one only by more training, not by a decayed step size.

Data: like a real dataset, the training set is finite: ``train_images`` generated images per seed, visited in
epochs (a fresh random order each epoch, batches of ``batch`` images), so that a run converges when the model has
learned what that set teaches, and longer training then no longer changes the test AP (or starts to overfit).

Evaluation: the weights evaluated at a checkpoint are an exponential moving average of the trained weights (as
modern one-stage detectors evaluate, e.g. YOLOv5's ``ModelEMA``), with TensorFlow's ``ExponentialMovingAverage``
warm-up of the decay, d_t = min(``ema_decay``, (1 + t) / (10 + t)) after t updates, so that early checkpoints are
not dominated by the initial weights; the average removes most of the step-to-step noise of a constant learning rate.
With ``ema_decay`` 0.99 the warm-up term stays below the cap until t = 890, so within 1,024 steps the average spans
roughly the last (10 + t) / 9 updates.

Optimisers: ``"sgd"`` has the paper's momentum 0.9 and weight decay 1e-4; ``"adam"`` is Adam without weight decay.
Both learning rates are larger than the paper's 0.01 (set for a 50-layer network at batch 16), so that this
six-layer subnet comes closer to what its finite training set teaches within the budget; they are the same for every
row. The training set is drawn from ``numpy.random.default_rng(seed)``, the order of its images from
``numpy.random.default_rng((seed, 1))`` and the initialisation from ``torch.manual_seed(seed)``: every row sees the
same images in the same order and starts from the same weights (except the last bias, which the prior initialisation
sets), so rows are paired by seed.
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

__all__ = ["OPTIMIZERS", "TrainConfig", "RunResult", "build_detector", "detector_logits", "make_optimizer", "warmup_factor",
           "ema_decay_at", "averaged_model", "epoch_batches", "train_run", "training_set", "test_set"]


OPTIMIZERS = ("sgd", "adam")  # the names make_optimizer takes


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs besides the row, the optimiser and the seed."""

    budgets: tuple[int, ...] = (64, 128, 256, 512, 1024)
    batch: int = 16
    train_images: int = 384
    size: int = 24
    width: int = 12
    lr_sgd: float = 0.1
    lr_adam: float = 1e-2
    warmup: int = 50
    ema_decay: float = 0.99
    test_images: int = 64
    test_seed: int = 12_345

    def learning_rate(self, optimizer: str) -> float:
        return self.lr_sgd if optimizer == "sgd" else self.lr_adam


@functools.lru_cache(maxsize=8)
def _generated_images(seed: int, images: int, size: int) -> DetectionBatch:
    """``images`` images drawn from ``numpy.random.default_rng(seed)``, generated once per process."""
    return make_batch(np.random.default_rng(seed), images, size)


def training_set(cfg: TrainConfig, seed: int) -> DetectionBatch:
    """The seed's finite training set (cached per process, shared by every row and optimiser; do not modify)."""
    return _generated_images(seed, cfg.train_images, cfg.size)


def test_set(cfg: TrainConfig) -> DetectionBatch:
    """The held-out images: the same for every row, seed and optimiser (cached; do not modify)."""
    return _generated_images(cfg.test_seed, cfg.test_images, cfg.size)


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


def ema_decay_at(updates: int, decay: float) -> float:
    """Decay of the weights' moving average after ``updates`` updates: min(decay, (1 + t) / (10 + t)).

    Example:
      >>> ema_decay_at(0, 0.99), ema_decay_at(990, 0.99)
      (0.1, 0.99)
    """
    return min(decay, (1.0 + updates) / (10.0 + updates))


def averaged_model(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """torch's AveragedModel holding the exponential moving average of ``model``'s weights (and GroupNorm has no
    buffers to average); ``decay`` 0 keeps the latest weights."""

    def ema(averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        d = ema_decay_at(int(updates), decay)
        return averaged * d + current * (1.0 - d)

    return torch.optim.swa_utils.AveragedModel(model, avg_fn=ema, use_buffers=True)


def epoch_batches(rng: np.random.Generator, images: int, batch: int):
    """Endless batches of image indices: each epoch a fresh permutation of ``range(images)`` cut into batches of
    ``batch`` (the last, shorter one is dropped when ``images`` is not a multiple of ``batch``).

    Example:
      >>> it = epoch_batches(np.random.default_rng(0), 4, 2)
      >>> sorted(np.concatenate([next(it), next(it)]).tolist())
      [0, 1, 2, 3]
    """
    per_epoch = max(images // batch, 1)
    while True:
        order = rng.permutation(images)
        for k in range(per_epoch):
            yield order[k * batch:(k + 1) * batch]


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    import focalkit

    raise focalkit.InvalidArgumentError(f"optimizer: expected 'sgd' or 'adam', got {name!r}")


@dataclass
class RunResult:
    """ap: (len(budgets),) mAP of the averaged weights after each budget (NaN from the first non-finite loss on);
    per_class: (len(budgets), C); loss: training loss every step (shorter when diverged); state: the final averaged
    weights when asked for."""

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
    """Train one detector and evaluate its averaged weights at every budget of ``cfg.budgets`` (sorted ascending)."""
    budgets = sorted(cfg.budgets)
    test = test_set(cfg) if test is None else test
    data = training_set(cfg, seed)
    rng = np.random.default_rng((seed, 1))  # the batch order: a stream of its own, apart from the training images
    torch.manual_seed(seed)
    model = build_detector(cfg, row.prior)
    average = averaged_model(model, cfg.ema_decay)
    lr = cfg.learning_rate(optimizer)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    batches = epoch_batches(rng, cfg.train_images, cfg.batch)
    ap = np.full(len(budgets), np.nan)
    per_class = np.full((len(budgets), len(CLASS_NAMES)), np.nan)
    losses: list[float] = []
    diverged = False
    nxt = 0
    for step in range(budgets[-1]):
        for group in opt.param_groups:
            group["lr"] = lr * warmup_factor(step, cfg.warmup)
        idx = next(batches)
        loss = detection_loss(detector_logits(model, data.images[idx]), torch.from_numpy(data.labels[idx]),
                              torch.from_numpy(data.quality[idx]), row)
        if not torch.isfinite(loss):
            diverged = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        average.update_parameters(model)
        losses.append(float(loss.detach()))
        while nxt < len(budgets) and step + 1 == budgets[nxt]:
            ap[nxt], per_class[nxt] = _evaluate(average.module, test)
            nxt += 1
    diverged = diverged or bool(np.any(np.isnan(ap)))
    state = {k: v.clone() for k, v in average.module.state_dict().items()} if keep_state else None
    return RunResult(ap, per_class, np.asarray(losses), diverged, state)
