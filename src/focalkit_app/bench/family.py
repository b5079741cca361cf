"""Benchmark of the focal-loss family against the formulas their users run today (``focalkit bench --op family``).

One group per loss, on inputs of the size a training step sees (4M logits unless noted). Each group times, with
``torch.utils.benchmark`` (``Timer.blocked_autorange``, thread count set explicitly) at 1 and 2 torch threads:

- focalkit's public function (the fused back-end the dispatcher picks) and the same function on the PyTorch back-end
  (``FOCALKIT_BACKEND=torch``);
- the peer's published formula (:mod:`focalkit_app.bench.peer_formulas`, or the installed package: MONAI), eager and
  ``torch.compile``d;
- anchors: focalkit's sigmoid / softmax focal loss and ``F.cross_entropy`` on the same shape, for the "within 1.3x of
  the fused focal loss" targets of the Asymmetric and Poly-1 losses.

Modes: forward + backward of the sum-reduced loss, and forward alone under ``torch.no_grad()``. Reported per row: the
median and interquartile range, the ratio to focalkit's row of the group (peer time / focalkit time: above 1 means
focalkit is faster), and the bytes saved for backward beyond the inputs, in units of the logits' size. The machine's
quietness is checked before and after (:mod:`focalkit_app.bench.quiet`); a busy run is refused and writes nothing.

Example:
    $ focalkit bench --op family --out benchmarks/results/cpu
    $ focalkit bench --op family --quick --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
import torch.utils.benchmark as benchmark
from torch import Tensor

from . import peer_formulas as peers
from . import quiet
from .allocator import allocator_line
from ._impls import env_set

__all__ = ["Case", "Group", "groups", "run_family"]


@dataclass
class Case:
    """One implementation of a group: ``fn(x, *inputs) -> 0-d loss``."""

    name: str
    fn: Callable[..., Tensor]
    kind: str  # "focalkit" | "peer" | "anchor"
    env: dict[str, str] = field(default_factory=dict)
    compiled: bool = False
    note: str = ""


@dataclass
class Group:
    """One loss: its inputs (built once, seeded) and the implementations timed on them."""

    name: str
    shape: tuple[int, ...]
    make_inputs: Callable[[tuple[int, ...]], tuple[Tensor, tuple[Tensor, ...]]]
    cases: list[Case]


# ------------------------------------------------------------------------------------------------ inputs
def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _iou_targets(shape: tuple[int, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Logits and dense IoU-quality targets: 1 % positives with a score in [0.3, 1), 0 elsewhere."""
    g = _generator()
    x = torch.randn(shape, generator=g) * 2 - 2
    positive = torch.rand(shape, generator=g) < 0.01
    score = 0.3 + 0.7 * torch.rand(shape, generator=g)
    return x, (torch.where(positive, score, torch.zeros_like(score)),)


def _multi_hot(shape: tuple[int, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Logits and multi-hot targets with 1 % positives."""
    g = _generator()
    return torch.randn(shape, generator=g) * 2, ((torch.rand(shape, generator=g) < 0.01).float(),)


def _heatmap(shape: tuple[int, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Logits and CenterNet-style heatmaps: values in [0, 1) decaying from 0.05 % peaks equal to 1."""
    g = _generator()
    heat = torch.rand(shape, generator=g) ** 8
    heat = torch.where(torch.rand(shape, generator=g) < 5e-4, torch.ones_like(heat), heat)
    return torch.randn(shape, generator=g) * 2 - 3, (heat,)


def _bins(shape: tuple[int, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Bin logits (rows, n + 1) and continuous targets in [0, n)."""
    g = _generator()
    rows, bins = shape
    return torch.randn(shape, generator=g), (torch.rand(rows, generator=g) * (bins - 1.01),)


def _probabilities(shape: tuple[int, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Logits (N, C) and soft targets: class probabilities of the logits' shape (a softmax of random scores)."""
    g = _generator()
    return torch.randn(shape, generator=g), (torch.softmax(torch.randn(shape, generator=g) * 2, dim=1),)


def _classes(shape: tuple[int, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Logits (N, C, ...) and class indices."""
    g = _generator()
    index_shape = (shape[0], *shape[2:])
    return torch.randn(shape, generator=g), (torch.randint(0, shape[1], index_shape, generator=g),)


# ------------------------------------------------------------------------------------------------ groups
def _compiled(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    return torch.compile(fn, dynamic=False)


def _with_peer(name: str, fn: Callable[..., Tensor], compile_peers: bool) -> list[Case]:
    cases = [Case(f"{name}, eager", fn, "peer")]
    if compile_peers:
        cases.append(Case(f"{name}, torch.compile", _compiled(fn), "peer", compiled=True))
    return cases


def _focalkit(fn: Callable[..., Tensor]) -> list[Case]:
    return [Case("focalkit", fn, "focalkit"),
            Case("focalkit, PyTorch back-end", fn, "focalkit", env={"FOCALKIT_BACKEND": "torch"})]


def _monai_cases() -> list[Case]:
    try:
        from monai.losses import DiceFocalLoss, DiceLoss, FocalLoss
    except ImportError:
        return []
    combined = DiceFocalLoss(softmax=True)
    dice, focal = DiceLoss(softmax=True), FocalLoss(use_softmax=True)

    def one_hot(index: Tensor, c: int) -> Tensor:
        return F.one_hot(index, c).movedim(-1, 1).float()

    def monai_same_math(x: Tensor, index: Tensor) -> Tensor:
        y = one_hot(index, x.shape[1])
        return dice(x, y) + focal(x, y)

    def monai_dice_focal(x: Tensor, index: Tensor) -> Tensor:
        return combined(x, one_hot(index, x.shape[1]))

    return [
        Case("MONAI DiceLoss(softmax) + FocalLoss(use_softmax) (the same loss)", monai_same_math, "peer"),
        Case("MONAI DiceFocalLoss(softmax=True)", monai_dice_focal, "peer",
             note="MONAI 1.6 computes this one's focal term with a sigmoid"),
    ]


def _monai_tversky_cases() -> list[Case]:
    """MONAI's DiceFocalLoss (the reference of the segmentation speed target) and its TverskyLoss beside focalkit's
    focal Tversky loss (MONAI has no focal Tversky loss; its TverskyLoss is gamma = 1, its alpha weighs the false
    positives)."""
    try:
        from monai.losses import DiceFocalLoss, TverskyLoss
    except ImportError:
        return []
    combined, tversky = DiceFocalLoss(softmax=True), TverskyLoss(softmax=True, alpha=0.3, beta=0.7)

    def one_hot(index: Tensor, c: int) -> Tensor:
        return F.one_hot(index, c).movedim(-1, 1).float()

    return [
        Case("MONAI DiceFocalLoss(softmax=True)", lambda x, t: combined(x, one_hot(t, x.shape[1])), "peer",
             note="another loss: the reference of the speed target"),
        Case("MONAI TverskyLoss(softmax=True, alpha=.3, beta=.7)", lambda x, t: tversky(x, one_hot(t, x.shape[1])),
             "peer", note="gamma = 1: the Tversky loss without the focal exponent"),
    ]


def groups(quick: bool = False, compile_peers: bool = True) -> list[Group]:
    """The benchmark's groups; ``quick`` shrinks every input to about 65k logits."""
    import focalkit

    n = 8192 if quick else 524288
    detection = (n, 8)

    def sigmoid_anchor(x: Tensor, y: Tensor) -> Tensor:
        return focalkit.sigmoid_focal_loss(x, y, reduction="sum")

    return [
        Group("quality_focal_loss (dense IoU targets)", detection, _iou_targets, [
            *_focalkit(lambda x, y: focalkit.quality_focal_loss(x, y, reduction="sum")),
            *_with_peer("mmdetection quality_focal_loss_tensor_target",
                        lambda x, y: peers.mmdet_quality_focal_loss_tensor_target(x, y).sum(), compile_peers),
        ]),
        Group("varifocal_loss", detection, _iou_targets, [
            *_focalkit(lambda x, y: focalkit.varifocal_loss(x, y, reduction="sum")),
            *_with_peer("mmdetection varifocal_loss", lambda x, y: peers.mmdet_varifocal_loss(x, y, reduction="sum"),
                        compile_peers),
        ]),
        Group("gaussian_focal_loss (heatmaps, from logits)", (2 if quick else 16, 8, 64, 128), _heatmap, [
            *_focalkit(lambda x, y: focalkit.gaussian_focal_loss(x, y)),
            *_with_peer("CenterNet _neg_loss(_sigmoid(x))",
                        lambda x, y: peers.centernet_neg_loss(peers.centernet_sigmoid(x), y), compile_peers),
        ]),
        Group("distribution_focal_loss (17 bins)", (n // 2, 17), _bins, [
            *_focalkit(lambda x, t: focalkit.distribution_focal_loss(x, t, reduction="sum")),
            *_with_peer("mmdetection distribution_focal_loss",
                        lambda x, t: peers.mmdet_distribution_focal_loss(x, t).sum(), compile_peers),
        ]),
        Group("asymmetric_loss (multi-label)", detection, _multi_hot, [
            *_focalkit(lambda x, y: focalkit.asymmetric_loss(x, y, reduction="sum")),
            *_with_peer("timm AsymmetricLossMultiLabel",
                        lambda x, y: peers.timm_asymmetric_loss_multi_label(x, y, gamma_pos=0, reduction="sum"),
                        compile_peers),
            Case("focalkit sigmoid_focal_loss (anchor)", sigmoid_anchor, "anchor"),
        ]),
        Group("poly1_focal_loss", detection, _multi_hot, [
            *_focalkit(lambda x, y: focalkit.poly1_focal_loss(x, y, reduction="sum")),
            *_with_peer("PolyLoss paper's Poly-1 focal", lambda x, y: peers.paper_poly1_focal_loss(x, y, 1.0).sum(),
                        compile_peers),
            Case("focalkit sigmoid_focal_loss (anchor)", sigmoid_anchor, "anchor"),
        ]),
        Group("poly1_cross_entropy", (n // 8, 64), _classes, [
            *_focalkit(lambda x, t: focalkit.poly1_cross_entropy(x, t, reduction="sum")),
            *_with_peer("timm PolyCrossEntropy",
                        lambda x, t: peers.timm_poly_cross_entropy(x, t, 1.0, reduction="sum"), compile_peers),
            Case("focalkit softmax_focal_loss (anchor)",
                 lambda x, t: focalkit.softmax_focal_loss(x, t, reduction="sum"), "anchor"),
            Case("F.cross_entropy (anchor)", lambda x, t: F.cross_entropy(x, t, reduction="sum"), "anchor"),
        ]),
        Group("softmax_focal_loss (class probabilities)", (n // 8, 64), _probabilities, [
            *_focalkit(lambda x, q: focalkit.softmax_focal_loss(x, q, alpha=0.25, reduction="sum")),
            *_with_peer("Keras categorical_focal_crossentropy(from_logits=True)",
                        lambda x, q: peers.keras_categorical_focal_crossentropy(x, q).sum(), compile_peers),
            Case("F.cross_entropy, probability targets (anchor)", lambda x, q: F.cross_entropy(x, q, reduction="sum"),
                 "anchor"),
        ]),
        Group("dice_focal_loss (softmax, class indices)", (2 if quick else 8, 4, 128, 128), _classes, [
            *_focalkit(lambda x, t: focalkit.dice_focal_loss(x, t)),
            *_monai_cases(),
        ]),
        Group("focal_tversky_loss (softmax, class indices)", (2 if quick else 8, 4, 128, 128), _classes, [
            *_focalkit(lambda x, t: focalkit.focal_tversky_loss(x, t)),
            *_monai_tversky_cases(),
        ]),
    ]


# ------------------------------------------------------------------------------------------------ timing
def _saved_beyond_inputs(fn: Callable[..., Tensor], x: Tensor, inputs: tuple[Tensor, ...]) -> float:
    """Bytes saved for backward (unique storages) minus the inputs', in units of the logits' size."""
    storages: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = fn(x, *inputs)
    del loss
    held = {x.untyped_storage().data_ptr(), *(t.untyped_storage().data_ptr() for t in inputs)}
    extra = sum(size for ptr, size in storages.items() if ptr not in held)
    return extra / (x.numel() * x.element_size())


def _time(case: Case, x: Tensor, inputs: tuple[Tensor, ...], threads: int, mode: str, min_run_time: float
          ) -> dict[str, Any]:
    def fwd_bwd() -> None:
        case.fn(x, *inputs).backward()
        x.grad = None

    def forward_only() -> None:
        with torch.no_grad():
            case.fn(x, *inputs)

    step = fwd_bwd if mode == "forward + backward" else forward_only
    with env_set(case.env):
        step()
        step()  # warm-up: compiles, loads kernels
        timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=threads)
        m = timer.blocked_autorange(min_run_time=min_run_time)
    return {"median_ms": m.median * 1e3, "iqr_ms": m.iqr * 1e3, "runs": len(m.times)}


def _measure_group(group: Group, threads_list: list[int], min_run_time: float, log: Callable[[str], None]
                   ) -> dict[str, Any]:
    x, inputs = group.make_inputs(group.shape)
    x.requires_grad_(True)
    rows: list[dict[str, Any]] = []
    for case in group.cases:
        row: dict[str, Any] = {"name": case.name, "kind": case.kind, "note": case.note, "timings": {}}
        try:
            with env_set(case.env):
                value = float(case.fn(x, *inputs).detach())
                row["saved_beyond_inputs"] = _saved_beyond_inputs(case.fn, x, inputs)
            row["loss"] = value
            row["relative_difference"] = abs(value - rows[0]["loss"]) / max(abs(rows[0]["loss"]), 1e-30) if rows else 0.0
            for threads in threads_list:
                torch.set_num_threads(threads)
                for mode in ("forward + backward", "forward, no_grad"):
                    row["timings"][f"{mode}, {threads} thr"] = _time(case, x, inputs, threads, mode, min_run_time)
        except Exception as exc:  # noqa: BLE001 - a failing peer is reported, not fatal
            row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        log(f"{group.name}: {case.name}: " + (row.get("error") or ", ".join(
            f"{k} {v['median_ms']:.2f} ms" for k, v in row["timings"].items())))
        rows.append(row)
    reference = rows[0]["timings"]
    for row in rows:
        row["ratio_to_focalkit"] = {k: v["median_ms"] / reference[k]["median_ms"]
                                    for k, v in row["timings"].items() if k in reference}
    return {"group": group.name, "shape": list(group.shape), "rows": rows}


# ------------------------------------------------------------------------------------------------ report
def _markdown(report: dict[str, Any]) -> str:
    meta = report["metadata"]
    lines = [
        "# Focal-loss family benchmark (CPU)", "",
        f"Command: `{meta['command']}`  ",
        f"Device: {meta['device']}; versions {meta['versions']}; fused CPU kernel build {meta['cpu_kernel_build']}; "
        f"{meta['date_utc']}; git {meta['git_commit']}; allocator {allocator_line(meta)}  ",
        f"Quietness (before / after): load average {meta['quiet_before']['load_average_1min']} / "
        f"{meta['quiet_after']['load_average_1min']}; cross-entropy floor ns per element "
        f"{meta['quiet_before']['floor_ns_per_element']} / {meta['quiet_after']['floor_ns_per_element']}", "",
        "Cells: median ms (interquartile range) of `torch.utils.benchmark` blocked_autorange; ratio = row time / "
        "focalkit's time (above 1: focalkit is faster). Saved: bytes saved for backward beyond the inputs, in logits' "
        "sizes. Loss vs focalkit: relative difference of the fp32 loss values (definitions differ where a note says so).", "",
    ]
    for g in report["groups"]:
        keys = list(g["rows"][0]["timings"])
        lines += [f"## {g['group']}, shape {tuple(g['shape'])}, fp32", "",
                  "| implementation | loss vs focalkit | saved | " + " | ".join(keys) + " |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in keys) + " |"]
        for row in g["rows"]:
            if "error" in row:
                lines.append(f"| {row['name']} | | | error: {row['error']} |" + " |" * (len(keys) - 1))
                continue
            cells = [f"{row['timings'][k]['median_ms']:.2f} ({row['timings'][k]['iqr_ms']:.2f}) "
                     f"x{row['ratio_to_focalkit'][k]:.2f}" for k in keys]
            name = row["name"] + (f" ({row['note']})" if row["note"] else "")
            lines.append(f"| {name} | {row['relative_difference']:.1e} | {row['saved_beyond_inputs']:.2f} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def run_family(args: argparse.Namespace, out: Path, metadata: dict[str, Any], log: Callable[[str], None]) -> int:
    """Run the family benchmark; write ``<out>/<name>.json|.md`` only when the machine was quiet. Returns an exit
    code: 0 written, 3 refused (busy machine; the reasons are printed)."""
    start = time.perf_counter()
    threads_list = [1, 2]
    min_run_time = 0.2 if args.quick else 1.0
    before = quiet.machine_state(threads=max(threads_list))
    log(f"quietness before: {before}")
    results = []
    for group in groups(quick=args.quick, compile_peers=not args.no_compile):
        results.append(_measure_group(group, threads_list, min_run_time, log))
    after = quiet.machine_state(threads=max(threads_list))
    log(f"quietness after: {after}")
    reasons = quiet.verdict(before, after)
    if reasons:
        log("REFUSED: the machine was busy during this run, nothing was written: " + "; ".join(reasons))
        return 3
    metadata = dict(metadata, quiet_before=before, quiet_after=after, wall_s=time.perf_counter() - start)
    report = {"metadata": metadata, "method": __doc__, "groups": results}
    stem = out / args.name
    Path(f"{stem}.json").write_text(json.dumps(report, indent=1, default=str))
    Path(f"{stem}.md").write_text(_markdown(report))
    log(f"wrote {stem}.json, {stem}.md")
    for g in results:
        for row in g["rows"]:
            if row["kind"] == "anchor" and "error" not in row:
                ratios = {k: 1 / v for k, v in row["ratio_to_focalkit"].items()}
                log(f"{g['group']}: focalkit / {row['name']}: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    return 0

