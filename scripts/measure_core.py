"""Measure the core's numerics and saved memory; writes docs/core_measurements.md.

Usage: .venv/bin/python scripts/measure_core.py [--out docs/core_measurements.md]

1. Extremes grid: for every loss, dtype (fp32, bf16, fp16), gamma in {0, 0.5, 1, 2, 5} and |logit| in
   {0, 9, 12, 17, 20, 50, 100, 1e3, 1e4} on both sides with targets 0 and 1 (and soft 0.3): are loss and gradient
   finite? The torchvision formula is measured alongside.
2. Tail accuracy: fp32 relative error against the float64 reference at |x| in {9, 12, 17}, hard targets.
3. Saved for backward: bytes autograd keeps, in units of the logits' size, for a (4096, 80) fp32 problem.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch
import torch.nn.functional as F

import focalkit
from focalkit import reference

MAGNITUDES = [0.0, 9.0, 12.0, 17.0, 20.0, 50.0, 100.0, 1e3, 1e4]
GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def torchvision_formula(inputs, targets, alpha=0.25, gamma=2.0, reduction="sum"):
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * loss).sum()


def _grid_inputs(dtype):
    mags = torch.tensor(MAGNITUDES)
    x = torch.cat([mags, -mags]).repeat(3).to(dtype)
    y = torch.cat([torch.zeros(18), torch.ones(18), torch.full((18,), 0.3)]).to(dtype)
    return x, y


def _finite(fn, x, *args):
    x = x.clone().requires_grad_(True)
    loss = fn(x, *args)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all())


def extremes_grid():
    losses = {
        "sigmoid_focal_loss": lambda x, y, g: focalkit.sigmoid_focal_loss(x, y, 0.25, g, "sum"),
        "sigmoid_focal_loss (index targets)": lambda x, y, g: focalkit.sigmoid_focal_loss(
            x.reshape(6, 9), torch.tensor([0, 9, -100, 4, 8, 1]), 0.25, g, "sum"
        ),
        "softmax_focal_loss": lambda x, y, g: focalkit.softmax_focal_loss(x.reshape(18, 3), torch.arange(18) % 3, gamma=g),
        "softmax_focal_loss (label_smoothing 0.1)": lambda x, y, g: focalkit.softmax_focal_loss(
            x.reshape(18, 3), torch.arange(18) % 3, gamma=g, label_smoothing=0.1
        ),
        "binary_focal_loss (p = sigmoid(x))": lambda x, y, g: focalkit.binary_focal_loss(torch.sigmoid(x), y, 0.25, g, "sum"),
        "sigmoid_focal_loss_star": lambda x, y, g: focalkit.sigmoid_focal_loss_star(x, y, max(g, 0.5), 1.0, 0.25, "sum"),
        "torchvision formula (for comparison)": lambda x, y, g: torchvision_formula(x, y, 0.25, g),
    }
    rows = []
    for name, fn in losses.items():
        cells = []
        for dtype_name, dtype in DTYPES.items():
            x, y = _grid_inputs(dtype)
            bad = [g for g in GAMMAS if not _finite(lambda v, yy=y, gg=g: fn(v, yy, gg), x)]
            cells.append("all finite" if not bad else "NaN/inf at gamma " + ", ".join(f"{g:g}" for g in bad))
        rows.append((name, cells))
    return rows


def tail_accuracy():
    worst_loss = worst_grad = 0.0
    for m in (9.0, 12.0, 17.0):
        for target in (0.0, 1.0):
            for gamma in (0.0, 0.5, 2.0):
                x = torch.tensor([m, -m], requires_grad=True)
                y = torch.full((2,), target)
                loss = focalkit.sigmoid_focal_loss(x, y, 0.25, gamma)
                (grad,) = torch.autograd.grad(loss.sum(), x)
                x64 = x.detach().double().requires_grad_(True)
                ref = reference.sigmoid_focal_loss(x64, y.double(), 0.25, gamma)
                (ref_grad,) = torch.autograd.grad(ref.sum(), x64)
                worst_loss = max(worst_loss, float(((loss.detach().double() - ref.detach()) / ref.detach()).abs().max()))
                worst_grad = max(worst_grad, float(((grad.double() - ref_grad) / ref_grad).abs().max()))
    bce = float(F.binary_cross_entropy_with_logits(torch.tensor([-17.0]), torch.zeros(1)))
    return worst_loss, worst_grad, bce


def saved_memory():
    x = torch.randn(4096, 80, requires_grad=True)
    y = (torch.rand(4096, 80) > 0.99).float()
    t = torch.randint(0, 81, (4096,))
    logits_bytes = x.numel() * 4
    cases = {
        "torchvision formula (dense targets)": lambda: torchvision_formula(x, y),
        "sigmoid_focal_loss (dense targets)": lambda: focalkit.sigmoid_focal_loss(x, y, reduction="sum"),
        "sigmoid_focal_loss (index targets)": lambda: focalkit.sigmoid_focal_loss(x, t, reduction="sum"),
        "softmax_focal_loss": lambda: focalkit.softmax_focal_loss(x, t.clamp(max=79), reduction="sum"),
        "softmax_focal_loss (label smoothing)": lambda: focalkit.softmax_focal_loss(x, t.clamp(max=79), reduction="sum", label_smoothing=0.1),
        "F.cross_entropy (floor)": lambda: F.cross_entropy(x, t.clamp(max=79), reduction="sum"),
    }
    rows = []
    for name, fn in cases.items():
        storages = {}

        def pack(tensor):
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda v: v):
            fn()
        total = sum(storages.values())
        rows.append((name, total, total / logits_bytes))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/core_measurements.md"))
    args = parser.parse_args()
    lines = [
        "# Core measurements",
        "",
        f"Produced by `python scripts/measure_core.py` with torch {torch.__version__}, focalkit {focalkit.__version__}, "
        f"Python {platform.python_version()} on {platform.machine()} ({torch.get_num_threads()} threads).",
        "",
        "## Extremes grid: loss and gradient finite?",
        "",
        f"|logit| in {MAGNITUDES} on both sides, targets 0, 1 and 0.3, gamma in {GAMMAS}, alpha 0.25, reduction sum.",
        "",
        "| loss | " + " | ".join(DTYPES) + " |",
        "| --- | " + " | ".join("---" for _ in DTYPES) + " |",
    ]
    for name, cells in extremes_grid():
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    worst_loss, worst_grad, bce = tail_accuracy()
    lines += [
        "",
        "## fp32 tail accuracy (hard targets, |x| in {9, 12, 17}, gamma in {0, 0.5, 2})",
        "",
        f"- worst relative error of the loss against float64: {worst_loss:.2e} (target <= 1e-4)",
        f"- worst relative error of the gradient: {worst_grad:.2e}",
        f"- for comparison, F.binary_cross_entropy_with_logits(-17, 0) in fp32 = {bce!r} (true value 4.14e-08)",
        "",
        "## Saved for backward, (4096, 80) fp32 logits",
        "",
        "| loss | bytes saved | in logits-sized tensors |",
        "| --- | ---: | ---: |",
    ]
    for name, total, ratio in saved_memory():
        lines.append(f"| {name} | {total:,} | {ratio:.2f} |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
