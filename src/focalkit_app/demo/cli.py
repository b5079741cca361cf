"""argparse glue for ``focalkit demo`` and ``focalkit compare`` (called lazily by ``focalkit_app.cli.main``).

Contract: ``add_demo_arguments(parser)``, ``run_demo(args) -> int``, ``add_compare_arguments(parser)``,
``run_compare(args) -> int``. Bad input raises a :class:`focalkit.FocalKitError` subclass internally; the run
functions print it as one line, ``focalkit <command>: error: NAME: expected ..., got ...``, on stderr and return 2.
Every option, the data file, the optional dependencies and the report folder (created, written and removed again)
are checked before any training, so that no work is lost to bad input; only the report folder is ever written.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace

from ..cli.checks import available_cpus, int_type, one_line

__all__ = ["add_demo_arguments", "run_demo", "add_compare_arguments", "run_compare"]

MAX_SEEDS = 100  # more would hold every split in memory for hours of runs
MAX_SEED = 2**31 - 1  # seed + fold must stay a valid NumPy / scikit-learn seed (< 2**32)

_positive_int = int_type(1)
_threads = int_type(1, available_cpus, note="(at most the CPUs available)")


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``focalkit demo``."""
    parser.add_argument("--task", choices=("classification", "detection", "multilabel", "segmentation"),
                        default="classification",
                        help="classification: losses on long-tailed digits (default); detection: dense detection "
                             "in miniature (RetinaNet's Table 1 and Figure 4); multilabel: BCE, focal loss and ASL "
                             "on long-tailed multi-label digit mosaics; segmentation: CE, focal, Dice + focal and "
                             "focal Tversky on synthetic shapes with a rare small class")
    parser.add_argument("--quick", action="store_true", help="a smaller run (about 30 s or less)")
    parser.add_argument("--seeds", type=int_type(1, MAX_SEEDS), default=None,
                        help=f"number of seeds, at most {MAX_SEEDS} (default 5; detection 4, detection --quick 2)")
    parser.add_argument("--imbalance", type=float, nargs="+", default=None,
                        help="imbalance factors of the digits task (default 10 50 100)")
    parser.add_argument("--max-budget", type=_positive_int, default=None,
                        help="detection only: the largest checkpoint budget in training steps, the first budget "
                             "times a power of two (default 1024; --quick 128); a run costs about max-budget steps "
                             "per row, optimiser and seed")
    parser.add_argument("--optimizers", nargs="+", choices=("sgd", "adam"), default=None,
                        help="detection only: the optimisers to compare (default: sgd adam)")
    parser.add_argument("--out", default=None, help="report folder to create (Markdown + PNG)")
    parser.add_argument("--force", action="store_true", help="write into --out even if it exists")
    parser.add_argument("--threads", type=_threads, default=None,
                        help="run in one process with this many torch threads, at most the CPUs available "
                             "(default: 2 worker processes of 1 thread for the full runs, 1 process of 1 thread "
                             "for --quick; multilabel and segmentation: 1 process of 1 thread)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``focalkit compare``."""
    parser.add_argument("--data", required=True, help="CSV, Parquet or .npz file (arrays X and y in .npz)")
    parser.add_argument("--target", default=None,
                        help="label column (CSV / Parquet; required there) or array name in .npz (default y)")
    parser.add_argument("--folds", type=int_type(2), default=5, help="stratified folds, >= 2 (default 5)")
    parser.add_argument("--epochs", type=_positive_int, default=60, help="training epochs per fold (default 60)")
    parser.add_argument("--tune", action="store_true",
                        help="search gamma, alpha and beta with Optuna on inner validation splits")
    parser.add_argument("--trials", type=_positive_int, default=20, help="Optuna trials per search (default 20)")
    parser.add_argument("--seed", type=int_type(0, MAX_SEED), default=0,
                        help=f"seed of folds, initialisation and search, in [0, {MAX_SEED}]")
    parser.add_argument("--out", default=None, help="report folder to create (Markdown + PNG)")
    parser.add_argument("--force", action="store_true", help="write into --out even if it exists")
    parser.add_argument("--threads", type=_threads, default=None,
                        help="torch intra-op threads, at most the CPUs available (default 1: faster for these "
                             "small models)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fail(command: str, exc: Exception) -> int:
    print(f"focalkit {command}: error: {one_line(exc)}", file=sys.stderr)
    return 2


def _missing(command: str, exc: ImportError) -> int:
    print(f"focalkit {command}: error: an optional dependency is missing ({one_line(exc)}); install the demo extra: "
          "pip install 'focalkit[demo]'", file=sys.stderr)
    return 2


def _command_line(command: str) -> str:
    return "focalkit " + command + " " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1 else ""


def _require(modules: list[str]) -> None:
    """Import the optional dependencies a run will need, before any work (ImportError -> the one-line message)."""
    import importlib

    for name in modules:
        importlib.import_module(name)


def _dependencies(args: argparse.Namespace, *extra: str) -> list[str]:
    return (["sklearn.metrics", "scipy.stats", *extra] + (["matplotlib"] if args.out is not None else [])
            + ([] if args.no_progress else ["tqdm"]))


def _check_imbalance(values: list[float]) -> tuple[float, ...]:
    import math

    import focalkit

    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise focalkit.InvalidArgumentError(f"--imbalance: expected finite factors, got {bad}")
    bad = [v for v in values if not v >= 1.0]
    if bad:
        raise focalkit.InvalidArgumentError(f"--imbalance: expected factors >= 1, got {bad}")
    tags = [f"{v:g}" for v in values]  # the report's file names use this form
    if len(set(tags)) < len(tags):
        raise focalkit.InvalidArgumentError(f"--imbalance: expected distinct factors, got {list(values)}")
    return tuple(values)


def run_demo(args: argparse.Namespace) -> int:
    """Run ``focalkit demo``; returns the exit status (0 ok, 2 bad input).

    Every option, the optional dependencies and the report folder (created, written and removed again) are checked
    before any training."""
    import focalkit

    from .outdir import check_out_dir

    try:
        for option, value in (("--max-budget", getattr(args, "max_budget", None)),
                              ("--optimizers", getattr(args, "optimizers", None))):
            if value is not None and args.task != "detection":
                raise focalkit.InvalidArgumentError(
                    f"{option}: expected only with --task detection, got {value} with --task {args.task}")
        if args.task in ("multilabel", "segmentation"):  # one process, --threads torch threads (default 1)
            if args.imbalance is not None:
                raise focalkit.InvalidArgumentError(
                    f"--imbalance: expected only with --task classification, got {args.imbalance} with --task "
                    f"{args.task}")
            if args.task == "multilabel":
                from .multilabel import DEFAULT_MULTILABEL as full, QUICK_MULTILABEL as quick
                from .multilabel import run_multilabel_demo as run_task
            else:
                from .segmentation import DEFAULT_SEGMENTATION as full, QUICK_SEGMENTATION as quick
                from .segmentation import run_segmentation_demo as run_task
            cfg = quick if args.quick else full
            if args.seeds is not None:
                cfg = cfg.with_seeds(args.seeds)
            if cfg.seeds < 2:
                raise focalkit.InvalidArgumentError(f"--seeds: expected at least 2 (for a spread), got {cfg.seeds}")
            _require(_dependencies(args, *(["sklearn.datasets"] if args.task == "multilabel" else [])))
            out = check_out_dir(args.out, args.force)
            run_task(cfg, out, progress=not args.no_progress, command=_command_line("demo"), threads=args.threads)
            return 0
        if args.task == "detection":
            if args.imbalance is not None:
                raise focalkit.InvalidArgumentError(
                    f"--imbalance: expected only with --task classification, got {args.imbalance} with --task "
                    "detection")
            from .detection import DEFAULT_DETECTION, QUICK_DETECTION, run_detection_demo

            cfg = QUICK_DETECTION if args.quick else DEFAULT_DETECTION
            if args.seeds is not None:
                cfg = cfg.with_seeds(args.seeds)
            if getattr(args, "max_budget", None) is not None:
                cfg = cfg.with_max_budget(args.max_budget, name="--max-budget")
            if getattr(args, "optimizers", None) is not None:
                cfg = cfg.with_optimizers(args.optimizers, name="--optimizers")
            if args.threads is not None:  # an explicit thread count: one process using that many threads
                cfg = replace(cfg, workers=1)
            _require(_dependencies(args))
            out = check_out_dir(args.out, args.force)
            run_detection_demo(cfg, out, progress=not args.no_progress, command=_command_line("demo"),
                               threads=args.threads)
            return 0
        from .classification import DEFAULT, QUICK, run_digits_demo

        cfg = QUICK if args.quick else DEFAULT
        if args.threads is not None:  # an explicit thread count: one process using that many threads
            cfg = replace(cfg, workers=1)
        if args.seeds is not None:
            cfg = replace(cfg, seeds=args.seeds)
        if args.imbalance is not None:
            cfg = replace(cfg, imbalances=_check_imbalance(args.imbalance))
        if cfg.seeds < 2:
            raise focalkit.InvalidArgumentError(f"--seeds: expected at least 2 (for a spread), got {cfg.seeds}")
        _require(_dependencies(args, "sklearn.datasets"))
        out = check_out_dir(args.out, args.force)
        run_digits_demo(cfg, out, progress=not args.no_progress, command=_command_line("demo"),
                        threads=args.threads)
        return 0
    except focalkit.FocalKitError as exc:
        return _fail("demo", exc)
    except ImportError as exc:
        return _missing("demo", exc)


def run_compare(args: argparse.Namespace) -> int:
    """Run ``focalkit compare``; returns the exit status (0 ok, 2 bad input).

    The options, the report folder (created, written and removed again), the optional dependencies and the data
    file (read and validated in full, in the dtype used for training) are checked before any training."""
    import focalkit

    from .outdir import check_out_dir

    try:
        out = check_out_dir(args.out, args.force)
        _require(_dependencies(args, "sklearn.model_selection", *(["optuna"] if args.tune else [])))
        from .compare import CompareConfig, run_compare_file

        cfg = CompareConfig(folds=args.folds, epochs=args.epochs, tune=args.tune, trials=args.trials,
                            seed=args.seed)
        run_compare_file(args.data, args.target, cfg, out, progress=not args.no_progress,
                         command=_command_line("compare"), threads=args.threads)
        return 0
    except focalkit.FocalKitError as exc:
        return _fail("compare", exc)
    except ImportError as exc:
        return _missing("compare", exc)
