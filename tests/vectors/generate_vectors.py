"""Generate tests/vectors/*.json: shared test vectors for every focalkit front-end.

Expected values come from the float64 specification ``focalkit.reference`` (losses, and gradients by float64
autograd through it). Every stored loss is also re-evaluated in 50-digit arithmetic with mpmath; the script refuses
to write the file if the reference disagrees anywhere by more than 1e-8 relative (100x below the float32 tolerance),
so the vectors stay inside the domain where that check passes (``|logit| <= 16``, ``|gamma x| <= 16`` for FL*); the
tails are covered by the front-ends' own stability tests.

Inputs are float32-exact numbers (a front-end computing in float32 sees exactly the stored inputs), so the only
error a front-end may show is its own arithmetic. Rerun with::

    python tests/vectors/generate_vectors.py                         # all three files
    python tests/vectors/generate_vectors.py --detection-only        # only detection_vectors.json
    python tests/vectors/generate_vectors.py --classification-only   # only classification_vectors.json

The output is deterministic (fixed seed); commit the JSON together with any change to this script.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import mpmath as mp
import numpy as np
import torch

from focalkit import reference

OUT = Path(__file__).with_name("focal_vectors.json")
# The detection losses live in their own file (same format and tolerances) so that front-ends / tests that check
# focal_vectors.json case by case are unaffected; checked by tests/test_frontend_jax_detection.py.
OUT_DETECTION = Path(__file__).with_name("detection_vectors.json")
SEED_DETECTION = 20200608  # arXiv:2006.04388 (GFL)
# The classification family (Asymmetric Loss, Poly-1): checked by tests/test_frontend_jax_classification.py,
# tests/keras_classification_check.py and tests/test_shared_vectors_torch.py.
OUT_CLASSIFICATION = Path(__file__).with_name("classification_vectors.json")
SEED_CLASSIFICATION = 20200930  # arXiv:2009.14119 (ASL)
SEED = 20170807  # arXiv:1708.02002
mp.mp.dps = 50
REFERENCE_CHECK_RTOL = 1e-8

# Tolerances the front-ends are checked with (float32 computation against these float64 values):
# |got - want| <= rtol * |want| + atol.
TOLERANCE = {
    "loss": {
        "rtol": 1e-6,
        "atol": 1e-30,
        "note": "relative 1e-6; the absolute floor 1e-30 only matters below float32's normal range (1.2e-38 .. 1e-30 "
        "values carry reduced precision or underflow)",
    },
    "softmax_loss": {
        "rtol": 1e-6,
        "atol": 1e-12,
        "note": "softmax rows whose loss is below 1e-12 (the target wins by more than ~25 logits) have float32 "
        "relative error about (1 + gamma) * |x_j - x_t| * 6e-8 from rounding the logit difference, which can "
        "exceed 1e-6; such values are 1e-12 of a typical row's loss",
    },
    "grad": {
        "rtol": 1e-5,
        "atol": 1e-7,
        "note": "gradients of soft targets cross zero (p - y); near a zero the float32 cancellation is absolute, "
        "about 1e-7",
    },
}


def f32(a: Any) -> np.ndarray:
    """Round to float32 and back: inputs are exactly representable in float32."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def as_list(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float64).tolist()


# ---------- 50-digit checks of the reference ----------


def mp_alpha_t(alpha: Any, y: Any, c: int) -> Any:
    if alpha is None:
        return mp.mpf(1)
    a = mp.mpf(alpha[c]) if isinstance(alpha, list) else mp.mpf(alpha)
    return a * y + (1 - a) * (1 - y)


def mp_sigmoid_focal(x: float, y: float, alpha: Any, gamma: float, c: int) -> Any:
    x, y = mp.mpf(x), mp.mpf(y)
    p = 1 / (1 + mp.exp(-x))
    u = p * (1 - y) + (1 - p) * y
    ce = mp.log1p(mp.exp(x)) - x * y  # softplus(x) - x y
    return mp_alpha_t(alpha, y, c) * (u**gamma if gamma else 1) * ce


def mp_binary_focal(p: float, y: float, alpha: Any, gamma: float, c: int) -> Any:
    p, y = mp.mpf(p), mp.mpf(y)
    u = p * (1 - y) + (1 - p) * y
    bce = -((y * mp.log(p) if y else 0) + ((1 - y) * mp.log(1 - p) if y != 1 else 0))
    return mp_alpha_t(alpha, y, c) * (u**gamma if gamma else 1) * bce


def mp_star(x: float, y: float, alpha: Any, gamma: float, beta: float, c: int) -> Any:
    x, y = mp.mpf(x), mp.mpf(y)
    a = mp.mpf(1) if alpha is None else mp.mpf(alpha)
    b = mp.mpf(1) if alpha is None else 1 - a
    pos = mp.log1p(mp.exp(-(gamma * x + beta))) / gamma
    neg = mp.log1p(mp.exp(gamma * x - beta)) / gamma
    return y * a * pos + (1 - y) * b * neg


def mp_softmax_row(x: list, q: list, alpha: Any, gamma: float) -> Any:
    xs = [mp.mpf(v) for v in x]
    s = mp.fsum(mp.exp(v) for v in xs)
    total = mp.mpf(0)
    for c, (v, w) in enumerate(zip(xs, q, strict=True)):
        if w == 0:
            continue
        p = mp.exp(v) / s
        a = 1 if alpha is None else (mp.mpf(alpha[c]) if isinstance(alpha, list) else mp.mpf(alpha))
        total += mp.mpf(w) * a * (1 - p) ** gamma * -mp.log(p)
    return total


def check_against_mp(name: str, got: np.ndarray, want: list) -> float:
    worst = 0.0
    for g, w in zip(np.ravel(got), want, strict=True):
        w = float(w)
        err = abs(g - w) / max(abs(w), 1e-300)
        worst = max(worst, err)
    if worst > REFERENCE_CHECK_RTOL:
        sys.exit(f"{name}: float64 reference differs from 50-digit value by {worst:.3g} relative; not writing")
    return worst


# ---------- input generators ----------


def labels_mixed(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Half binary, half soft labels (float32-exact)."""
    binary = rng.integers(0, 2, shape).astype(np.float64)
    soft = f32(rng.uniform(0, 1, shape))
    return np.where(rng.uniform(size=shape) < 0.5, binary, soft)


def logits_mixed(rng: np.random.Generator, shape: tuple, scale: float = 4.0, bound: float = 16.0) -> np.ndarray:
    x = rng.normal(0, scale, shape)
    x = np.clip(x, -bound, bound)
    flat = x.reshape(-1)
    fixed = [0.0, -1.0, 1.0, -8.0, 8.0, -16.0, 16.0, -0.5, 0.5, 4.0]
    flat[: len(fixed)] = np.asarray(fixed) * (bound / 16.0)
    return f32(flat.reshape(shape))


def grad_of(fn: Any, x: np.ndarray) -> np.ndarray:
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fn(t).sum(), t)
    return g.numpy()


# ---------- cases ----------

ALPHAS_SIGMOID: list[Any] = [None, 0.25, [0.1, 0.5, 0.9]]
GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]


def sigmoid_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for gamma in GAMMAS:
        for alpha in ALPHAS_SIGMOID:
            x = logits_mixed(rng, (20, 3))
            y = labels_mixed(rng, (20, 3))
            a = torch.tensor(alpha, dtype=torch.float64) if isinstance(alpha, list) else alpha
            fn = lambda t, y=y, a=a, gamma=gamma: reference.sigmoid_focal_loss(t, torch.tensor(y), a, gamma)  # noqa: E731
            loss = fn(torch.tensor(x)).numpy()
            mp_vals = [mp_sigmoid_focal(x[i, c], y[i, c], alpha, gamma, c) for i in range(20) for c in range(3)]
            check_against_mp("sigmoid_focal_loss", loss, mp_vals)
            cases.append(
                {
                    "fn": "sigmoid_focal_loss",
                    "params": {"alpha": alpha, "gamma": gamma},
                    "logits": as_list(x),
                    "labels": as_list(y),
                    "loss": as_list(loss),
                    "grad": as_list(grad_of(fn, x)),
                }
            )
    return cases


def binary_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for gamma in GAMMAS:
        for alpha in ALPHAS_SIGMOID:
            p = f32(rng.uniform(0, 1, (20, 3)))
            flat = p.reshape(-1)
            flat[:6] = f32([1e-6, 1 - 2**-20, 0.5, 0.25, 1e-3, 0.999])
            y = labels_mixed(rng, (20, 3))
            a = torch.tensor(alpha, dtype=torch.float64) if isinstance(alpha, list) else alpha
            fn = lambda t, y=y, a=a, gamma=gamma: reference.binary_focal_loss(t, torch.tensor(y), a, gamma)  # noqa: E731
            loss = fn(torch.tensor(p)).numpy()
            mp_vals = [mp_binary_focal(p[i, c], y[i, c], alpha, gamma, c) for i in range(20) for c in range(3)]
            check_against_mp("binary_focal_loss", loss, mp_vals)
            cases.append(
                {
                    "fn": "binary_focal_loss",
                    "params": {"alpha": alpha, "gamma": gamma},
                    "probs": as_list(p),
                    "labels": as_list(y),
                    "loss": as_list(loss),
                    "grad": as_list(grad_of(fn, p)),
                }
            )
    return cases


def star_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for gamma, beta in [(2.0, 1.0), (4.0, 0.0), (1.0, 0.5), (0.5, 1.0)]:
        for alpha in [None, 0.25]:
            # gamma * x stays within the reference's exact domain
            x = logits_mixed(rng, (20, 3), scale=4.0 / gamma, bound=16.0 / gamma)
            y = labels_mixed(rng, (20, 3))
            fn = lambda t, y=y, g=gamma, b=beta, a=alpha: reference.sigmoid_focal_loss_star(  # noqa: E731
                t, torch.tensor(y), g, b, a
            )
            loss = fn(torch.tensor(x)).numpy()
            mp_vals = [mp_star(x[i, c], y[i, c], alpha, gamma, beta, c) for i in range(20) for c in range(3)]
            check_against_mp("sigmoid_focal_loss_star", loss, mp_vals)
            cases.append(
                {
                    "fn": "sigmoid_focal_loss_star",
                    "params": {"alpha": alpha, "gamma": gamma, "beta": beta},
                    "logits": as_list(x),
                    "labels": as_list(y),
                    "loss": as_list(loss),
                    "grad": as_list(grad_of(fn, x)),
                }
            )
    return cases


ALPHAS_SOFTMAX: list[Any] = [None, 0.25, [0.1, 0.2, 0.3, 0.25, 0.15]]


def softmax_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    num_classes = 5
    for gamma in GAMMAS:
        for alpha in ALPHAS_SOFTMAX:
            x = logits_mixed(rng, (24, num_classes), scale=3.0, bound=16.0)
            t = rng.integers(0, num_classes, 24)
            a = torch.tensor(alpha, dtype=torch.float64) if isinstance(alpha, list) else alpha
            fn = lambda z, t=t, a=a, gamma=gamma: reference.softmax_focal_loss(z, torch.tensor(t), a, gamma)  # noqa: E731
            loss = fn(torch.tensor(x)).numpy()
            onehot = np.eye(num_classes)[t]
            mp_vals = [mp_softmax_row(list(x[i]), list(onehot[i]), alpha, gamma) for i in range(24)]
            check_against_mp("softmax_focal_loss", loss, mp_vals)
            cases.append(
                {
                    "fn": "softmax_focal_loss",
                    "params": {"alpha": alpha, "gamma": gamma},
                    "logits": as_list(x),
                    "labels": t.tolist(),
                    "loss": as_list(loss),
                    "grad": as_list(grad_of(fn, x)),
                }
            )
    return cases


def softmax_soft_cases(rng: np.random.Generator) -> list[dict]:
    """Probability (soft / one-hot) targets: sum_c q_c alpha_c (1 - p_c)^gamma (-log p_c)."""
    cases = []
    num_classes = 5
    for gamma in [0.0, 0.5, 2.0]:
        for alpha in ALPHAS_SOFTMAX:
            x = logits_mixed(rng, (16, num_classes), scale=3.0, bound=12.0)
            raw = rng.uniform(0, 1, (16, num_classes)) ** 3
            q = f32(raw / raw.sum(axis=1, keepdims=True))
            q[:4] = np.eye(num_classes)[rng.integers(0, num_classes, 4)]
            a = torch.tensor(alpha, dtype=torch.float64) if isinstance(alpha, list) else alpha
            fn = lambda z, q=q, a=a, gamma=gamma: reference.softmax_focal_loss(z, torch.tensor(q), a, gamma)  # noqa: E731
            loss = fn(torch.tensor(x)).numpy()
            mp_vals = [mp_softmax_row(list(x[i]), list(q[i]), alpha, gamma) for i in range(16)]
            check_against_mp("softmax_focal_loss(soft)", loss, mp_vals)
            cases.append(
                {
                    "fn": "softmax_focal_loss_soft",
                    "params": {"alpha": alpha, "gamma": gamma},
                    "logits": as_list(x),
                    "labels": as_list(q),
                    "loss": as_list(loss),
                    "grad": as_list(grad_of(fn, x)),
                }
            )
    return cases


def mp_bce(x: Any, y: Any) -> Any:
    return mp.log1p(mp.exp(x)) - x * y  # softplus(x) - x y


def mp_quality(x: float, y: float, beta: float) -> Any:
    x, y = mp.mpf(x), mp.mpf(y)
    p = 1 / (1 + mp.exp(-x))
    return abs(y - p) ** beta * mp_bce(x, y) if beta else mp_bce(x, y)


def mp_varifocal(x: float, q: float, alpha: float, gamma: float, iou_weighted: bool) -> Any:
    x, q = mp.mpf(x), mp.mpf(q)
    p = 1 / (1 + mp.exp(-x))
    weight = (q if iou_weighted else 1) if q > 0 else alpha * (p**gamma if gamma else 1)
    return weight * mp_bce(x, q)


def mp_gaussian(x: float, y: float, alpha: float, beta: float) -> Any:
    x, y = mp.mpf(x), mp.mpf(y)
    p = 1 / (1 + mp.exp(-x))
    if y == 1:
        return (1 - p) ** alpha * mp.log1p(mp.exp(-x))
    return (1 - y) ** beta * p**alpha * mp.log1p(mp.exp(x))


def heatmap_labels(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Gaussian-heatmap-like targets: exact peaks (1), zeros and values in (0, 1)."""
    y = f32(np.exp(-rng.uniform(0, 6, shape)))
    kind = rng.uniform(size=shape)
    return np.where(kind < 0.2, 1.0, np.where(kind < 0.5, 0.0, y))


def detection_case(fn: str, params: dict, x: np.ndarray, y: np.ndarray, ref: Any, mp_fn: Any) -> dict:
    f = lambda t, y=y: ref(t, torch.tensor(y))  # noqa: E731
    loss = f(torch.tensor(x)).numpy()
    mp_vals = [mp_fn(x.flat[i], y.flat[i]) for i in range(x.size)]
    check_against_mp(fn, loss, mp_vals)
    return {"fn": fn, "params": params, "logits": as_list(x), "labels": as_list(y), "loss": as_list(loss),
            "grad": as_list(grad_of(f, x))}


# Quality Focal Loss crosses zero at p = y: the float32 value of y - p carries an absolute error of about one ulp of
# max(y, p) (the rounding of sigmoid and of the products), which no float32 evaluation avoids; near the minimum it
# dominates the relative error. Each QFL case therefore stores a per-element absolute allowance added to the loss
# tolerance: BCE * ((|y - p| + delta)^beta - |y - p|^beta), delta = 2^-23 max(y, p) (first-order propagation of that
# error; below 1e-7 relative of the loss away from the minimum).
QUALITY_DELTA_ULPS = 2.0**-23


def quality_loss_atol(x: np.ndarray, y: np.ndarray, beta: float) -> np.ndarray:
    p = 1 / (1 + np.exp(-x))
    d = np.abs(y - p)
    bce = np.logaddexp(0, x) - x * y
    delta = QUALITY_DELTA_ULPS * np.maximum(y, p)
    return bce * ((d + delta) ** beta - d**beta)


def detection_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for beta in [0.0, 0.5, 1.0, 2.0, 3.0]:
        x = logits_mixed(rng, (20, 3))
        y = np.where(rng.uniform(size=(20, 3)) < 0.5, 0.0, labels_mixed(rng, (20, 3)))  # negatives are 0
        cases.append(detection_case(
            "quality_focal_loss", {"beta": beta}, x, y,
            lambda t, yy, b=beta: reference.quality_focal_loss(t, yy, b),
            lambda a, b_, beta=beta: mp_quality(a, b_, beta)))
        cases[-1]["loss_atol"] = as_list(quality_loss_atol(x, y, beta))
    for alpha, gamma, iou in [(0.75, 2.0, True), (0.75, 2.0, False), (0.25, 0.0, True), (1.0, 0.5, True),
                              (0.5, 3.0, False)]:
        x = logits_mixed(rng, (20, 3))
        q = np.where(rng.uniform(size=(20, 3)) < 0.5, 0.0, f32(rng.uniform(0.05, 1, (20, 3))))
        cases.append(detection_case(
            "varifocal_loss", {"alpha": alpha, "gamma": gamma, "iou_weighted": iou}, x, q,
            lambda t, yy, a=alpha, g=gamma, i=iou: reference.varifocal_loss(t, yy, a, g, i),
            lambda a_, b_, a=alpha, g=gamma, i=iou: mp_varifocal(a_, b_, a, g, i)))
    for alpha, beta in [(2.0, 4.0), (0.0, 4.0), (0.5, 1.0), (3.0, 0.0)]:
        x = logits_mixed(rng, (20, 3))
        y = heatmap_labels(rng, (20, 3))
        cases.append(detection_case(
            "gaussian_focal_loss", {"alpha": alpha, "beta": beta}, x, y,
            lambda t, yy, a=alpha, b=beta: reference.gaussian_focal_loss(t, yy, a, b),
            lambda a_, b_, a=alpha, b=beta: mp_gaussian(a_, b_, a, b)))
    return cases


def write_detection() -> None:
    cases = detection_cases(np.random.default_rng(SEED_DETECTION))
    for case in cases:
        for key in ("loss", "grad"):
            if not all(math.isfinite(v) for v in np.ravel(case[key])):
                sys.exit(f"non-finite {key} in {case['fn']} {case['params']}")
    doc = {
        "description": "focalkit detection-loss test vectors: float64 values of focalkit.reference at float32-exact"
        " inputs",
        "generator": "tests/vectors/generate_vectors.py",
        "seed": SEED_DETECTION,
        "torch_version": torch.__version__.split("+")[0],
        "reference_checked_against": f"mpmath {mp.__version__} at {mp.mp.dps} digits, rtol {REFERENCE_CHECK_RTOL}",
        "conventions": {
            "quality_focal_loss": "per element; logits (N, C), dense quality targets in [0, 1] (0 = negative); key"
            " 'loss_atol': per-element absolute allowance added to the loss tolerance, BCE ((|y - p| + delta)^beta -"
            " |y - p|^beta) with delta = 2^-23 max(y, p), the float32 error of y - p near the minimum p = y",
            "varifocal_loss": "per element; logits (N, C), target scores q in [0, 1] (q > 0 = positive)",
            "gaussian_focal_loss": "per element from logits; heatmap targets in [0, 1], 1 = peak; not divided by the"
            " number of peaks",
        },
        "tolerance": TOLERANCE,
        "cases": cases,
    }
    OUT_DETECTION.write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n")
    n_values = sum(len(np.ravel(c["loss"])) for c in cases)
    print(f"wrote {OUT_DETECTION} with {len(cases)} cases, {n_values} loss values")


# ---------- classification family: Asymmetric Loss and Poly-1 ----------


def mp_asymmetric(x: float, y: float, gamma_pos: float, gamma_neg: float, clip: float) -> Any:
    x, y = mp.mpf(x), mp.mpf(y)
    p = 1 / (1 + mp.exp(-x))
    positive = (1 - p) ** gamma_pos * mp.log1p(mp.exp(-x)) if y else 0
    p_m = max(p - mp.mpf(clip), 0) if clip else p
    negative = (p_m**gamma_neg if gamma_neg else (1 if p_m > 0 or not clip else 0)) * -mp.log(1 - p_m)
    return y * positive + (1 - y) * negative


def mp_softmax_probs(x: list) -> tuple[list, list]:
    xs = [mp.mpf(v) for v in x]
    top = max(xs)
    total = mp.fsum(mp.exp(v - top) for v in xs)
    log_p = [v - top - mp.log(total) for v in xs]
    return [mp.exp(v) for v in log_p], log_p


def mp_asymmetric_single_label(x: list, t: int, gamma_pos: float, gamma_neg: float, smoothing: float) -> Any:
    if t < 0:
        return mp.mpf(0)
    p, log_p = mp_softmax_probs(x)
    c = len(x)
    u = mp.fsum(p[j] for j in range(c) if j != t)
    total = mp.mpf(0)
    for j in range(c):
        q = (1 - mp.mpf(smoothing)) * (j == t) + mp.mpf(smoothing) / c
        w = (u**gamma_pos if gamma_pos else 1) if j == t else (p[j] ** gamma_neg if gamma_neg else 1)
        total += q * w * -log_p[j]
    return total


def mp_poly1_ce(x: list, q: list, epsilon: float, weight: list | None) -> Any:
    p, log_p = mp_softmax_probs(x)
    total = mp.mpf(0)
    for j in range(len(x)):
        w = 1 if weight is None else mp.mpf(weight[j])
        u = mp.fsum(p[k] for k in range(len(x)) if k != j)  # 1 - p_j
        total += w * mp.mpf(q[j]) * (-log_p[j] + mp.mpf(epsilon) * u)
    return total


def mp_poly1_focal(x: float, y: float, epsilon: float, alpha: Any, gamma: float, c: int) -> Any:
    x, y = mp.mpf(x), mp.mpf(y)
    p = 1 / (1 + mp.exp(-x))
    u = p * (1 - y) + (1 - p) * y
    ce = mp.log1p(mp.exp(x)) - x * y
    return mp_alpha_t(alpha, y, c) * (u**gamma if gamma else 1) * ce + mp.mpf(epsilon) * u ** (gamma + 1)


def _f64_grad(fn: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    loss = fn(t)
    (g,) = torch.autograd.grad(loss.sum(), t)
    return loss.detach().numpy(), g.numpy()


# Near the margin (p just above m) the shifted probability p_m = p - m carries the float32 rounding of p and of m
# (about 2^-23 max(p, m) + |float32(m) - m| absolutely), which no float32 evaluation avoids and which dominates the
# relative error of p_m^gamma_neg where p_m is small. Each ASL case with a margin therefore stores per-element
# allowances 'loss_atol' / 'grad_atol': the change of the float64 loss / gradient when m moves by that amount.
def margin_allowance(x: np.ndarray, y: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    m = params["clip"] or 0.0
    if m == 0:
        return np.zeros_like(x), np.zeros_like(x)
    p = 1 / (1 + np.exp(-x))
    delta = 2.0**-23 * np.maximum(p, m) + abs(float(np.float32(m)) - m)
    base_loss, base_grad = _f64_grad(lambda t: asymmetric_reference(t, y, params, m), x)
    loss_atol, grad_atol = np.zeros_like(x), np.zeros_like(x)
    for sign in (1.0, -1.0):
        # the margin moved by +-delta per element: p - (m +- delta) = (p -+ delta) - m, so shift p through x instead
        shifted = np.clip(p - sign * delta, 1e-300, 1 - 1e-16)
        xs = np.log(shifted) - np.log1p(-shifted)
        loss, grad = _f64_grad(lambda t: asymmetric_reference(t, y, params, m), xs)
        loss_atol = np.maximum(loss_atol, np.abs(loss - base_loss))
        grad_atol = np.maximum(grad_atol, np.abs(grad - base_grad))
    live = p > m / 2  # elsewhere the negative term and its gradient are 0 or far from the margin
    return np.where(live, 2 * loss_atol, 0.0), np.where(live, 2 * grad_atol, 0.0)


def asymmetric_reference(t: Any, y: np.ndarray, params: dict, clip: float) -> Any:
    return reference.asymmetric_loss(t, torch.tensor(y), params["gamma_pos"], params["gamma_neg"], clip,
                                     detach_focal_weight=params["detach_focal_weight"])


# Poly-1 focal loss with a_t + epsilon < 0 (e.g. the paper's detection setting alpha = 0.25, epsilon = -1) crosses
# zero where a_t BCE = -epsilon (1 - p_t): no float32 evaluation has a small relative error there. Those cases store
# 'loss_atol' = 2^-21 (1 - p_t)^gamma (a_t BCE + |epsilon| (1 - p_t)), a few float32 ulps of the terms' magnitudes.
POLY_CANCELLATION_ULPS = 2.0**-21


def poly_focal_allowance(x: np.ndarray, y: np.ndarray, params: dict) -> np.ndarray:
    alpha, gamma, eps = params["alpha"], params["gamma"], params["epsilon"]
    a = np.asarray(alpha if alpha is not None else 1.0, dtype=np.float64)
    a_t = np.ones_like(x) if alpha is None else a * y + (1 - a) * (1 - y)
    p = 1 / (1 + np.exp(-x))
    u = p * (1 - y) + (1 - p) * y
    bce = np.logaddexp(0, x) - x * y
    return POLY_CANCELLATION_ULPS * u**gamma * (a_t * bce + abs(eps) * u)


def class_labels_with_ignored(rng: np.random.Generator, rows: int, num_classes: int) -> np.ndarray:
    t = rng.integers(0, num_classes, rows)
    t[rng.choice(rows, 2, replace=False)] = -100  # ignore_index rows give 0
    return t


def classification_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    for g_pos, g_neg, clip, detach in [(0.0, 4.0, 0.05, False), (0.0, 4.0, 0.05, True), (1.0, 4.0, 0.05, False),
                                       (0.5, 0.5, 0.1, False), (0.0, 2.0, None, False), (2.0, 1.0, 0.2, True),
                                       (0.0, 0.0, 0.0, False), (1.0, 0.0, 0.3, False)]:
        params = {"gamma_pos": g_pos, "gamma_neg": g_neg, "clip": clip, "detach_focal_weight": detach}
        x = logits_mixed(rng, (20, 3))
        y = labels_mixed(rng, (20, 3))
        loss, grad = _f64_grad(lambda t, y=y, params=params: asymmetric_reference(t, y, params, clip), x)
        mp_vals = [mp_asymmetric(x.flat[i], y.flat[i], g_pos, g_neg, clip or 0.0) for i in range(x.size)]
        check_against_mp("asymmetric_loss", loss, mp_vals)
        case = {"fn": "asymmetric_loss", "params": params, "logits": as_list(x), "labels": as_list(y),
                "loss": as_list(loss), "grad": as_list(grad)}
        if clip:
            loss_atol, grad_atol = margin_allowance(x, y, params)
            case["loss_atol"], case["grad_atol"] = as_list(loss_atol), as_list(grad_atol)
        cases.append(case)
    num_classes = 5
    for g_pos, g_neg, smoothing in [(0.0, 4.0, 0.0), (0.0, 4.0, 0.1), (1.0, 4.0, 0.1), (0.5, 0.5, 0.3),
                                    (2.0, 0.0, 0.2), (4.0, 1.0, 0.1)]:
        params = {"gamma_pos": g_pos, "gamma_neg": g_neg, "label_smoothing": smoothing}
        x = logits_mixed(rng, (24, num_classes), scale=3.0, bound=16.0)
        t = class_labels_with_ignored(rng, 24, num_classes)
        fn = lambda z, t=t, a=g_pos, b=g_neg, s=smoothing: reference.asymmetric_loss_single_label(  # noqa: E731
            z, torch.tensor(t), a, b, s)
        loss, grad = _f64_grad(fn, x)
        mp_vals = [mp_asymmetric_single_label(list(x[i]), int(t[i]), g_pos, g_neg, smoothing) for i in range(24)]
        check_against_mp("asymmetric_loss_single_label", loss, mp_vals)
        cases.append({"fn": "asymmetric_loss_single_label", "params": params, "logits": as_list(x),
                      "labels": t.tolist(), "loss": as_list(loss), "grad": as_list(grad)})
    weights = [0.5, 1.0, 2.0, 0.25, 1.5]
    for eps, weight, smoothing in [(1.0, None, 0.0), (2.0, None, 0.1), (-1.0, None, 0.0), (-0.5, weights, 0.1),
                                   (1.0, weights, 0.0), (0.0, None, 0.2)]:
        params = {"epsilon": eps, "weight": weight, "label_smoothing": smoothing}
        x = logits_mixed(rng, (24, num_classes), scale=3.0, bound=16.0)
        t = class_labels_with_ignored(rng, 24, num_classes)
        fn = lambda z, t=t, e=eps, w=weight, s=smoothing: reference.poly1_cross_entropy(  # noqa: E731
            z, torch.tensor(t), e, w, s)
        loss, grad = _f64_grad(fn, x)
        q = np.where(t[:, None] >= 0, np.eye(num_classes)[np.maximum(t, 0)] * (1 - smoothing) + smoothing / num_classes,
                     0.0)
        mp_vals = [mp_poly1_ce(list(x[i]), list(q[i]), eps, weight) for i in range(24)]
        check_against_mp("poly1_cross_entropy", loss, mp_vals)
        cases.append({"fn": "poly1_cross_entropy", "params": params, "logits": as_list(x), "labels": t.tolist(),
                      "loss": as_list(loss), "grad": as_list(grad)})
    for eps, weight, smoothing in [(1.0, None, 0.0), (-1.0, None, 0.1), (2.0, weights, 0.0)]:
        params = {"epsilon": eps, "weight": weight, "label_smoothing": smoothing}
        x = logits_mixed(rng, (16, num_classes), scale=3.0, bound=12.0)
        raw = rng.uniform(0, 1, (16, num_classes)) ** 3
        q = f32(raw / raw.sum(axis=1, keepdims=True))
        q[:4] = np.eye(num_classes)[rng.integers(0, num_classes, 4)]
        fn = lambda z, q=q, e=eps, w=weight, s=smoothing: reference.poly1_cross_entropy(  # noqa: E731
            z, torch.tensor(q), e, w, s)
        loss, grad = _f64_grad(fn, x)
        smoothed = q * (1 - smoothing) + smoothing / num_classes
        mp_vals = [mp_poly1_ce(list(x[i]), list(smoothed[i]), eps, weight) for i in range(16)]
        check_against_mp("poly1_cross_entropy(soft)", loss, mp_vals)
        cases.append({"fn": "poly1_cross_entropy_soft", "params": params, "logits": as_list(x),
                      "labels": as_list(q), "loss": as_list(loss), "grad": as_list(grad)})
    for eps, alpha, gamma in [(1.0, 0.25, 2.0), (2.0, None, 0.0), (-1.0, None, 2.0), (-1.0, 0.25, 2.0),
                              (0.5, [0.1, 0.5, 0.9], 0.5), (1.0, 0.25, 5.0), (-0.5, 0.75, 1.0)]:
        params = {"epsilon": eps, "alpha": alpha, "gamma": gamma}
        x = logits_mixed(rng, (20, 3))
        y = labels_mixed(rng, (20, 3))
        a = torch.tensor(alpha, dtype=torch.float64) if isinstance(alpha, list) else alpha
        fn = lambda t, y=y, e=eps, a=a, g=gamma: reference.poly1_focal_loss(t, torch.tensor(y), e, a, g)  # noqa: E731
        loss, grad = _f64_grad(fn, x)
        mp_vals = [mp_poly1_focal(x[i, c], y[i, c], eps, alpha, gamma, c) for i in range(20) for c in range(3)]
        check_against_mp("poly1_focal_loss", loss, mp_vals)
        case = {"fn": "poly1_focal_loss", "params": params, "logits": as_list(x), "labels": as_list(y),
                "loss": as_list(loss), "grad": as_list(grad)}
        a_min = 1.0 if alpha is None else min(np.ravel(alpha).min(), 1 - np.ravel(alpha).max())
        if a_min + eps < 0:
            case["loss_atol"] = as_list(poly_focal_allowance(x, y, params))
        cases.append(case)
    return cases


def write_classification() -> None:
    cases = classification_cases(np.random.default_rng(SEED_CLASSIFICATION))
    for case in cases:
        for key in ("loss", "grad"):
            if not all(math.isfinite(v) for v in np.ravel(case[key])):
                sys.exit(f"non-finite {key} in {case['fn']} {case['params']}")
    doc = {
        "description": "focalkit classification-loss test vectors (Asymmetric Loss, Poly-1): float64 values of"
        " focalkit.reference at float32-exact inputs",
        "generator": "tests/vectors/generate_vectors.py",
        "seed": SEED_CLASSIFICATION,
        "torch_version": torch.__version__.split("+")[0],
        "reference_checked_against": f"mpmath {mp.__version__} at {mp.mp.dps} digits, rtol {REFERENCE_CHECK_RTOL}",
        "conventions": {
            "asymmetric_loss": "per element; logits (N, C), multi-hot or soft labels; params gamma_pos, gamma_neg,"
            " clip (None or 0: no margin), detach_focal_weight; keys 'loss_atol' / 'grad_atol' (cases with a"
            " margin): per-element absolute allowances added to the tolerances, the change of the float64 loss /"
            " gradient when p moves by 2^-23 max(p, m) + |float32(m) - m|, the float32 error of p - m",
            "asymmetric_loss_single_label": "per row; logits (N, C), integer labels (N,), -100 = ignore_index (loss"
            " 0); params gamma_pos, gamma_neg, label_smoothing",
            "poly1_cross_entropy": "per row; logits (N, C), integer labels (N,), -100 = ignore_index; params"
            " epsilon, weight (None or per class), label_smoothing",
            "poly1_cross_entropy_soft": "per row; labels are class probabilities (N, C)",
            "poly1_focal_loss": "per element; logits (N, C), binary or soft labels; params epsilon, alpha (None,"
            " float or per class along the last axis), gamma; key 'loss_atol' (cases with alpha_t + epsilon < 0,"
            " where the loss crosses zero): 2^-21 (1 - p_t)^gamma (alpha_t BCE + |epsilon| (1 - p_t)) per element",
        },
        "tolerance": TOLERANCE,
        "cases": cases,
    }
    OUT_CLASSIFICATION.write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n")
    n_values = sum(len(np.ravel(c["loss"])) for c in cases)
    print(f"wrote {OUT_CLASSIFICATION} with {len(cases)} cases, {n_values} loss values")


def main() -> None:
    rng = np.random.default_rng(SEED)
    cases = sigmoid_cases(rng) + binary_cases(rng) + star_cases(rng) + softmax_cases(rng) + softmax_soft_cases(rng)
    for case in cases:
        for key in ("loss", "grad"):
            if not all(math.isfinite(v) for v in np.ravel(case[key])):
                sys.exit(f"non-finite {key} in {case['fn']} {case['params']}")
    doc = {
        "description": "focalkit shared test vectors: float64 values of focalkit.reference at float32-exact inputs",
        "generator": "tests/vectors/generate_vectors.py",
        "seed": SEED,
        "torch_version": torch.__version__.split("+")[0],
        "reference_checked_against": f"mpmath {mp.__version__} at {mp.mp.dps} digits, rtol {REFERENCE_CHECK_RTOL}",
        "conventions": {
            "sigmoid_focal_loss": "per element; logits (N, C), labels binary or soft; alpha None, float, or per class"
            " (length C, class axis 1 = last); grad = d sum(loss) / d logits",
            "binary_focal_loss": "per element from probabilities (key 'probs')",
            "sigmoid_focal_loss_star": "per element, FL* with gamma, beta",
            "softmax_focal_loss": "per row; logits (N, C), integer labels (N,); alpha None, float (multiplies all), or"
            " per class indexed by the target",
            "softmax_focal_loss_soft": "per row; labels are class probabilities (N, C)",
        },
        "tolerance": TOLERANCE,
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n")
    n_values = sum(len(np.ravel(c["loss"])) for c in cases)
    print(f"wrote {OUT} with {len(cases)} cases, {n_values} loss values")
    write_detection()
    write_classification()


if __name__ == "__main__":
    if sys.argv[1:] == ["--detection-only"]:  # leave the other files as they are
        write_detection()
    elif sys.argv[1:] == ["--classification-only"]:
        write_classification()
    else:
        main()
