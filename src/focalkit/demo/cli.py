"""argparse glue for ``focalkit demo`` and ``focalkit compare`` (called lazily by ``focalkit.cli.main``).

Contract: ``add_demo_arguments(parser)``, ``run_demo(args) -> int``, ``add_compare_arguments(parser)``,
``run_compare(args) -> int``. Bad input raises a :class:`focalkit.FocalKitError` subclass internally; the run
functions print it as ``focalkit <command>: error: ...`` on stderr and return 2. Nothing is written before the input is
validated, and only the report folder is ever written.
"""

from __future__ import annotations

import argparse
import shlex
import sys

__all__ = ["add_demo_arguments", "run_demo", "add_compare_arguments", "run_compare"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``focalkit demo``."""
    parser.add_argument("--task", choices=("classification", "detection"), default="classification",
                        help="classification: losses on long-tailed digits (default); detection: dense detection "
                             "in miniature (RetinaNet's Table 1 and Figure 4)")
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 30 s or less)")
    parser.add_argument("--seeds", type=_positive_int, default=None, help="number of seeds (default 5; detection 3)")
    parser.add_argument("--imbalance", type=float, nargs="+", default=None,
                        help="imbalance factors of the digits task (default 10 50 100)")
    parser.add_argument("--out", default=None, help="report folder to create (Markdown + PNG)")
    parser.add_argument("--force", action="store_true", help="write into --out even if it exists")
    parser.add_argument("--threads", type=_positive_int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``focalkit compare``."""
    parser.add_argument("--data", required=True, help="CSV, Parquet or .npz file (arrays X and y in .npz)")
    parser.add_argument("--target", default=None,
                        help="label column (CSV / Parquet; required there) or array name in .npz (default y)")
    parser.add_argument("--folds", type=_positive_int, default=5, help="stratified folds (default 5)")
    parser.add_argument("--epochs", type=_positive_int, default=60, help="training epochs per fold (default 60)")
    parser.add_argument("--tune", action="store_true",
                        help="search gamma, alpha and beta with Optuna on inner validation splits")
    parser.add_argument("--trials", type=_positive_int, default=20, help="Optuna trials per search (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of folds, initialisation and search")
    parser.add_argument("--out", default=None, help="report folder to create (Markdown + PNG)")
    parser.add_argument("--force", action="store_true", help="write into --out even if it exists")
    parser.add_argument("--threads", type=_positive_int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fail(command: str, exc: Exception) -> int:
    print(f"focalkit {command}: error: {exc}", file=sys.stderr)
    return 2


def _command_line(command: str) -> str:
    return "focalkit " + command + " " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1 else ""


def _threads(args) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def run_demo(args: argparse.Namespace) -> int:
    """Run ``focalkit demo``; returns the exit status (0 ok, 2 bad input)."""
    import focalkit

    from .outdir import check_out_dir

    try:
        out = check_out_dir(args.out, args.force)
        _threads(args)
        if args.task == "detection":
            from .detection import DEFAULT_DETECTION, QUICK_DETECTION, run_detection_demo

            cfg = QUICK_DETECTION if args.quick else DEFAULT_DETECTION
            if args.seeds is not None:
                cfg = cfg.with_seeds(args.seeds)
            run_detection_demo(cfg, out, progress=not args.no_progress, command=_command_line("demo"))
            return 0
        from dataclasses import replace

        from .classification import DEFAULT, QUICK, run_digits_demo

        cfg = QUICK if args.quick else DEFAULT
        if args.seeds is not None:
            cfg = replace(cfg, seeds=args.seeds)
        if args.imbalance is not None:
            bad = [v for v in args.imbalance if not v >= 1.0]
            if bad:
                raise focalkit.InvalidArgumentError(f"--imbalance: expected factors >= 1, got {bad}")
            cfg = replace(cfg, imbalances=tuple(args.imbalance))
        if cfg.seeds < 2:
            raise focalkit.InvalidArgumentError(f"--seeds: expected at least 2 (for a spread), got {cfg.seeds}")
        run_digits_demo(cfg, out, progress=not args.no_progress, command=_command_line("demo"))
        return 0
    except focalkit.FocalKitError as exc:
        return _fail("demo", exc)


def run_compare(args: argparse.Namespace) -> int:
    """Run ``focalkit compare``; returns the exit status (0 ok, 2 bad input)."""
    import focalkit

    from .outdir import check_out_dir

    try:
        out = check_out_dir(args.out, args.force)
        _threads(args)
        from .compare import CompareConfig, run_compare_file

        cfg = CompareConfig(folds=args.folds, epochs=args.epochs, tune=args.tune, trials=args.trials,
                            seed=args.seed)
        run_compare_file(args.data, args.target, cfg, out, progress=not args.no_progress,
                         command=_command_line("compare"))
        return 0
    except focalkit.FocalKitError as exc:
        return _fail("compare", exc)
