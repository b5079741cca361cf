"""Training loop for the demo's classifiers (mini-batch Adam, fixed epochs, no early stopping, no test peeking)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .losses import LOSSES, make_loss, probabilities
from .models import MLP

__all__ = ["TrainConfig", "TrainResult", "train_classifier"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every loss (chosen once, the same for all)."""

    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    hidden: int = 128


@dataclass
class TrainResult:
    probs: np.ndarray          # (N_eval, C) class probabilities on the evaluation set
    train_loss: np.ndarray     # (epochs,) mean training loss per epoch
    val_bacc: np.ndarray       # (epochs,) balanced accuracy on the validation set after each epoch
    diverged: bool


def _bacc(y: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    rec = [np.mean(pred[y == c] == c) for c in range(num_classes) if np.any(y == c)]
    return float(np.mean(rec))


def train_classifier(loss_name: str, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                     y_val: np.ndarray, x_eval: np.ndarray, num_classes: int, seed: int,
                     config: TrainConfig = TrainConfig(), loss_params: dict | None = None) -> TrainResult:
    """Train an :class:`MLP` with loss ``loss_name`` and return evaluation probabilities and curves.

    The validation set is used only by the adaptive hooks (AdaFocal's bins) and for the validation curve, never to
    select a model. Seeds fix the initialisation and the batch order; the same seed gives every loss the same data.
    """
    spec = LOSSES[loss_name]
    counts = np.bincount(y_train, minlength=num_classes)
    torch.manual_seed(seed)
    params = dict(loss_params or {})
    if loss_name == "adafocal":
        params.setdefault("num_bins", min(15, len(y_val)))
    loss_fn, init_bias = make_loss(loss_name, counts, **params)
    model = MLP(x_train.shape[1], num_classes, hidden=config.hidden, init_bias=init_bias)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    xt, yt = torch.as_tensor(x_train), torch.as_tensor(y_train)
    xv, yv = torch.as_tensor(x_val), torch.as_tensor(y_val)
    gen = torch.Generator().manual_seed(seed)
    losses, vals = [], []
    diverged = False
    n = xt.shape[0]
    for _ in range(config.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total, batches = 0.0, 0
        for i in range(0, n, config.batch_size):
            idx = perm[i:i + config.batch_size]
            logits = model(xt[idx])
            loss = loss_fn(logits, yt[idx])
            if not torch.isfinite(loss):
                diverged = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_fn.after_batch(logits.detach(), yt[idx])
            total += float(loss.detach())
            batches += 1
        if diverged:
            break
        model.eval()
        with torch.no_grad():
            val_logits = model(xv)
        loss_fn.after_epoch(val_logits, yv)
        losses.append(total / max(batches, 1))
        vals.append(_bacc(y_val, val_logits.argmax(1).numpy(), num_classes))
    model.eval()
    with torch.no_grad():
        probs = probabilities(model(torch.as_tensor(x_eval)), spec.head)
    if diverged or not np.all(np.isfinite(probs)):
        diverged = True
        probs = np.full((len(x_eval), num_classes), 1.0 / num_classes)
    return TrainResult(probs, np.asarray(losses), np.asarray(vals), diverged)
