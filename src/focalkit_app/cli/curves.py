"""``focalkit curves``: the paper's Figure 1, the FL* curves and a table of loss and modulating factor.

Figure 1 of Lin et al. plots FL(p_t) = -(1 - p_t)^gamma log(p_t) against p_t for gamma in {0, 0.5, 1, 2, 5}
(no alpha). Figure 5 / Appendix A compares CE, FL (gamma = 2) and FL* (gamma = 2, beta = 1 and gamma = 4,
beta = 0) as functions of x_t = y x; Figure 6 shows their derivatives. Every value is computed by focalkit's own
losses (``binary_focal_loss`` from probabilities, ``sigmoid_focal_loss`` / ``sigmoid_focal_loss_star`` from logits),
so the plots double as a visual check of the implementation.

Example:
    $ focalkit curves --out out/curves --pt 0.1 0.5 0.9 0.968
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from focalkit import binary_focal_loss, sigmoid_focal_loss, sigmoid_focal_loss_star
from focalkit.errors import argument_error

from .checks import check_out_dir

FIGURE1_GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)
DEFAULT_PT = (0.1, 0.25, 0.5, 0.75, 0.9, 0.968, 0.99)


def add_curves_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/curves", help="output folder for the PNG files (created if needed)")
    parser.add_argument("--pt", type=float, nargs="+", default=list(DEFAULT_PT),
                        metavar="P", help="p_t values of the printed table, in (0, 1]")
    parser.add_argument("--gammas", type=float, nargs="+", default=list(FIGURE1_GAMMAS), metavar="G",
                        help="gamma values of Figure 1, finite and >= 0")


def loss_table(pt_values: list[float], gammas: list[float]) -> list[dict[str, float]]:
    """Rows of (p_t, gamma, CE, FL, modulating factor (1 - p_t)^gamma, FL / CE), computed with focalkit."""
    pt = torch.tensor(pt_values, dtype=torch.float64)
    ones = torch.ones_like(pt)
    ce = binary_focal_loss(pt, ones, alpha=None, gamma=0.0, reduction="none")
    rows = []
    for gamma in gammas:
        fl = binary_focal_loss(pt, ones, alpha=None, gamma=gamma, reduction="none")
        for i, p in enumerate(pt_values):
            rows.append(
                {
                    "p_t": p,
                    "gamma": gamma,
                    "ce": float(ce[i]),
                    "fl": float(fl[i]),
                    "factor": float(fl[i] / ce[i]) if ce[i] > 0 else float((1 - p) ** gamma),
                }
            )
    return rows


def format_table(rows: list[dict[str, float]]) -> str:
    header = f"{'p_t':>7} {'gamma':>6} {'CE':>10} {'FL':>12} {'(1-p_t)^g':>11} {'CE/FL':>10}"
    lines = [header, "-" * len(header)]
    for row in rows:
        ratio = row["ce"] / row["fl"] if row["fl"] > 0 else float("inf")
        lines.append(
            f"{row['p_t']:7.3f} {row['gamma']:6.2f} {row['ce']:10.4f} {row['fl']:12.6f} {row['factor']:11.6f} {ratio:10.1f}"
        )
    return "\n".join(lines)


def _plot_figure1(path: Path, gammas: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pt = torch.linspace(1e-3, 1.0, 500, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for gamma in gammas:
        fl = binary_focal_loss(pt, torch.ones_like(pt), alpha=None, gamma=gamma, reduction="none")
        label = f"$\\gamma$ = {gamma:g}" + (" (CE)" if gamma == 0 else "")
        ax.plot(pt.numpy(), fl.numpy(), label=label)
    ax.set(xlabel="probability of ground truth class $p_t$", ylabel="loss", ylim=(0, 5), xlim=(0, 1))
    ax.axvspan(0.6, 1.0, color="0.92")
    ax.text(0.8, 3.5, "well-classified\nexamples", ha="center")
    ax.set_title("Focal loss FL$(p_t) = -(1-p_t)^\\gamma \\log p_t$ (Lin et al. 2017, Fig. 1)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_fl_star(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_t = torch.linspace(-5, 5, 400, dtype=torch.float64, requires_grad=True)
    y = torch.ones_like(x_t)  # x_t = y x with y = +1: the curve as a function of x_t
    curves = {
        "CE": lambda x: sigmoid_focal_loss(x, y, alpha=None, gamma=0.0),
        "FL, $\\gamma$=2": lambda x: sigmoid_focal_loss(x, y, alpha=None, gamma=2.0),
        "FL*, $\\gamma$=2, $\\beta$=1": lambda x: sigmoid_focal_loss_star(x, y, gamma=2.0, beta=1.0, alpha=None),
        "FL*, $\\gamma$=4, $\\beta$=0": lambda x: sigmoid_focal_loss_star(x, y, gamma=4.0, beta=0.0, alpha=None),
    }
    fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(10, 4))
    for label, fn in curves.items():
        loss = fn(x_t)
        (grad,) = torch.autograd.grad(loss.sum(), x_t)
        ax_loss.plot(x_t.detach().numpy(), loss.detach().numpy(), label=label)
        ax_grad.plot(x_t.detach().numpy(), grad.numpy(), label=label)
    ax_loss.set(xlabel="$x_t$", ylabel="loss", ylim=(0, 5), title="Loss (paper Fig. 5)")
    ax_grad.set(xlabel="$x_t$", ylabel="d loss / d $x_t$", title="Derivative (paper Fig. 6)")
    ax_loss.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_curves(args: argparse.Namespace) -> int:
    """Write figure1_focal_loss.png, fl_star.png and loss_table.md into ``args.out`` and print the table.

    Every value and the output folder are checked before anything is computed or written."""
    for p in args.pt:
        if not 0 < p <= 1:
            raise argument_error("--pt", "probabilities in (0, 1]", p)
    for g in args.gammas:
        if not 0 <= g < float("inf"):
            raise argument_error("--gammas", "finite values >= 0", g)
    out = check_out_dir(args.out, option="--out")
    try:
        import matplotlib  # noqa: F401 - the figures need it; check before any work
    except ImportError as exc:
        print(f"focalkit curves: error: matplotlib is missing ({exc}); install it: pip install 'focalkit[plots]'",
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    rows = loss_table(list(args.pt), list(args.gammas))
    table = format_table(rows)
    print(table)
    (out / "loss_table.md").write_text(
        "# Focal loss against cross-entropy\n\nFL = -(1 - p_t)^gamma log p_t (no alpha), computed by "
        "`focalkit.binary_focal_loss`.\n\n```\n" + table + "\n```\n"
    )
    _plot_figure1(out / "figure1_focal_loss.png", list(args.gammas))
    _plot_fl_star(out / "fl_star.png")
    print(f"\nwrote {out / 'figure1_focal_loss.png'}, {out / 'fl_star.png'}, {out / 'loss_table.md'}")
    return 0
