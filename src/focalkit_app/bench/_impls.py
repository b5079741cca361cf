"""The implementations a benchmark compares: focalkit's back-ends, other libraries when installed, and floors.

Every entry builds a closure ``loss_fn(x, target) -> 0-d loss`` for a given op. Entries whose library is not
installed are reported as skipped (with the import error), never silently dropped.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA = 0.25
GAMMA = 2.0


@dataclass
class Impl:
    """One implementation: ``make()`` returns ``loss_fn(x, target) -> 0-d loss`` or raises ImportError."""

    name: str
    op: str
    make: Callable[[], Callable[[Tensor, Tensor], Tensor]]
    kind: str  # "focalkit" | "other" | "floor"
    compiled: bool = False
    env: dict[str, str] = field(default_factory=dict)  # environment set while it runs (FOCALKIT_BACKEND)
    bytes_per_element: int = 64  # rough peak bytes per logit, to skip sizes that do not fit in memory
    max_numel: int | None = None  # skip larger sizes (calls of tens of seconds would blow the run time)
    note: str = ""


# ------------------------------------------------------------------------------------------- formulas
def torchvision_formula(x: Tensor, t: Tensor, alpha: float = ALPHA, gamma: float = GAMMA) -> Tensor:
    """``torchvision.ops.sigmoid_focal_loss`` (v0.20) written out, reduction "sum"."""
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    loss = alpha_t * loss
    return loss.sum()


def softmax_focal_formula(x: Tensor, t: Tensor, gamma: float = GAMMA) -> Tensor:
    """The common eager multi-class focal loss: log_softmax, gather, (1 - p_t)^gamma, reduction "sum"."""
    logp = F.log_softmax(x.float(), dim=1).gather(1, t.unsqueeze(1)).squeeze(1)
    p_t = logp.exp()
    return (-((1 - p_t) ** gamma) * logp).sum()


def _compiled(fn: Callable) -> Callable:
    return torch.compile(fn, fullgraph=True, dynamic=False)


def _focalkit_sigmoid() -> Callable:
    import focalkit

    return lambda x, t: focalkit.sigmoid_focal_loss(x, t, alpha=ALPHA, gamma=GAMMA, reduction="sum")


def _with_setting(setting: str, value: str) -> Callable[[Callable[[], Callable]], Callable[[], Callable]]:
    """The public function called with one of focalkit's global settings (``set_<setting>``) changed."""

    def wrap(make: Callable[[], Callable]) -> Callable[[], Callable]:
        def build() -> Callable:
            import focalkit

            fn = make()
            get, put = getattr(focalkit, f"get_{setting}"), getattr(focalkit, f"set_{setting}")

            def call(x: Tensor, t: Tensor) -> Tensor:
                previous = get()
                put(value)
                try:
                    return fn(x, t)
                finally:
                    put(previous)

            return call

        return build

    return wrap


# the host-side value checks off (the CPU kernel still counts bad targets)
_without_value_checks = _with_setting("value_checks", "never")
# gradient mode "store": the forward pass computes and saves the gradient
_with_stored_gradient = _with_setting("gradient_mode", "store")


def _focalkit_softmax() -> Callable:
    import focalkit

    return lambda x, t: focalkit.softmax_focal_loss(x, t, gamma=GAMMA, reduction="sum")


def _optional(module: str, build: Callable[[object], Callable]) -> Callable[[], Callable]:
    def make() -> Callable:
        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - a broken install (e.g. torchvision vs torch) is "not available"
            raise ImportError(f"{module}: {type(exc).__name__}: {exc}") from None
        return build(mod)

    return make


def _torchvision(mod: object) -> Callable:
    fn = mod.sigmoid_focal_loss  # type: ignore[attr-defined]
    return lambda x, t: fn(x, t, alpha=ALPHA, gamma=GAMMA, reduction="sum")


def _fvcore(mod: object) -> Callable:
    fn = mod.sigmoid_focal_loss  # type: ignore[attr-defined]
    return lambda x, t: fn(x, t, alpha=ALPHA, gamma=GAMMA, reduction="sum")


def _kornia_binary(mod: object) -> Callable:
    fn = mod.binary_focal_loss_with_logits  # type: ignore[attr-defined]
    return lambda x, t: fn(x, t, alpha=ALPHA, gamma=GAMMA, reduction="sum")


def _kornia_softmax(mod: object) -> Callable:
    fn = mod.focal_loss  # type: ignore[attr-defined]
    return lambda x, t: fn(x, t, alpha=ALPHA, gamma=GAMMA, reduction="sum")


def _smp_binary(mod: object) -> Callable:
    loss = mod.FocalLoss(mode="multilabel", alpha=ALPHA, gamma=GAMMA, reduction="sum")  # type: ignore[attr-defined]
    return lambda x, t: loss(x, t)


def _smp_softmax(mod: object) -> Callable:
    loss = mod.FocalLoss(mode="multiclass", alpha=None, gamma=GAMMA, reduction="sum")  # type: ignore[attr-defined]
    return lambda x, t: loss(x, t)


def sigmoid_impls() -> list[Impl]:
    fk = _focalkit_sigmoid
    return [
        Impl("focalkit[cpu]", "sigmoid", fk, "focalkit", env={"FOCALKIT_BACKEND": "cpu"}, bytes_per_element=16),
        Impl("focalkit[cpu], value checks off", "sigmoid", _without_value_checks(fk), "focalkit",
             env={"FOCALKIT_BACKEND": "cpu"}, bytes_per_element=16,
             note="focalkit.set_value_checks('never'): skips the host-side scan of the targets"),
        Impl("focalkit[cpu], gradient stored", "sigmoid", _with_stored_gradient(fk), "focalkit",
             env={"FOCALKIT_BACKEND": "cpu"}, bytes_per_element=16,
             note="focalkit.set_gradient_mode('store'): one kernel pass, the gradient saved from forward to backward"),
        Impl("focalkit[torch]", "sigmoid", fk, "focalkit", env={"FOCALKIT_BACKEND": "torch"}, bytes_per_element=120,
             max_numel=10_000_000),
        Impl("focalkit[cpu]+compile", "sigmoid", lambda: _compiled(fk()), "focalkit", compiled=True,
             env={"FOCALKIT_BACKEND": "cpu"}, bytes_per_element=16,
             note="torch.compile(fullgraph=True) around the public function; the kernel is an opaque custom op"),
        Impl("torchvision formula (eager)", "sigmoid", lambda: torchvision_formula, "other", bytes_per_element=400),
        Impl("torchvision formula (compiled)", "sigmoid", lambda: _compiled(torchvision_formula), "other",
             compiled=True, bytes_per_element=48),
        Impl("torchvision.ops", "sigmoid", _optional("torchvision.ops", _torchvision), "other", bytes_per_element=400),
        Impl("fvcore", "sigmoid", _optional("fvcore.nn", _fvcore), "other", bytes_per_element=400),
        Impl("kornia", "sigmoid", _optional("kornia.losses", _kornia_binary), "other", bytes_per_element=400),
        Impl("segmentation_models_pytorch", "sigmoid", _optional("segmentation_models_pytorch.losses", _smp_binary),
             "other", bytes_per_element=400),
        Impl("F.binary_cross_entropy_with_logits (floor)", "sigmoid",
             lambda: (lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum")), "floor",
             bytes_per_element=40),
    ]


def softmax_impls() -> list[Impl]:
    fk = _focalkit_softmax
    return [
        Impl("focalkit[cpu]", "softmax", fk, "focalkit", env={"FOCALKIT_BACKEND": "cpu"}, bytes_per_element=12),
        Impl("focalkit[cpu], value checks off", "softmax", _without_value_checks(fk), "focalkit",
             env={"FOCALKIT_BACKEND": "cpu"}, bytes_per_element=12,
             note="focalkit.set_value_checks('never'): skips the host-side scan of the targets"),
        Impl("focalkit[cpu], gradient stored", "softmax", _with_stored_gradient(fk), "focalkit",
             env={"FOCALKIT_BACKEND": "cpu"}, bytes_per_element=12,
             note="focalkit.set_gradient_mode('store'): one kernel pass, the gradient saved from forward to backward"),
        Impl("focalkit[torch]", "softmax", fk, "focalkit", env={"FOCALKIT_BACKEND": "torch"}, bytes_per_element=80,
             max_numel=10_000_000),
        Impl("focalkit[cpu]+compile", "softmax", lambda: _compiled(fk()), "focalkit", compiled=True,
             env={"FOCALKIT_BACKEND": "cpu"}, bytes_per_element=12),
        Impl("softmax focal formula (eager)", "softmax", lambda: softmax_focal_formula, "other", bytes_per_element=40),
        Impl("softmax focal formula (compiled)", "softmax", lambda: _compiled(softmax_focal_formula), "other",
             compiled=True, bytes_per_element=16),
        Impl("kornia", "softmax", _optional("kornia.losses", _kornia_softmax), "other", bytes_per_element=80),
        Impl("segmentation_models_pytorch", "softmax", _optional("segmentation_models_pytorch.losses", _smp_softmax),
             "other", bytes_per_element=80),
        Impl("F.cross_entropy (floor)", "softmax",
             lambda: (lambda x, t: F.cross_entropy(x, t, reduction="sum")), "floor", bytes_per_element=24),
    ]


def impls_for(op: str) -> list[Impl]:
    if op == "sigmoid":
        return sigmoid_impls()
    if op == "softmax":
        return softmax_impls()
    raise ValueError(f"op: expected 'sigmoid' or 'softmax', got {op!r}")


def make_inputs(op: str, numel: int, dtype: torch.dtype, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Inputs of about ``numel`` logits: sigmoid (N, 80) with 1 % positives; softmax (N, 64) class indices."""
    g = torch.Generator().manual_seed(seed)
    c = 80 if op == "sigmoid" else 64
    n = max(1, numel // c)
    x = (torch.randn(n, c, generator=g) * 2 - 2).to(dtype)
    if op == "sigmoid":
        t = (torch.rand(n, c, generator=g) < 0.01).to(dtype)
    else:
        t = torch.randint(0, c, (n,), generator=g)
    return x, t


class env_set:
    """Context manager setting environment variables for the duration of a measurement."""

    def __init__(self, values: dict[str, str]):
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> "env_set":
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v
        return self

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
