"""Entry point of the ``focalkit`` command: one sub-command per task, each loaded only when it is used.

Each sub-command lives in its own module exposing the ``add_<name>_arguments(parser)`` / ``run_<name>(args) -> int``
pair named in ``_SUBCOMMANDS``; only the module of the command being run is imported. Usage errors (unknown option,
bad number, invalid choice) and the errors focalkit raises for bad input are printed as one line,
``focalkit <command>: error: NAME: expected ..., got ...``, and give exit status 2 (see
:mod:`focalkit_app.cli.checks`); an interrupted run prints one line and gives 130; other exceptions propagate.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from focalkit.errors import FocalKitError

from .checks import OneLineParser, one_line

# name -> (module, add-arguments function, run function, help)
_SUBCOMMANDS: dict[str, tuple[str, str, str, str]] = {
    "curves": ("focalkit_app.cli.curves", "add_curves_arguments", "run_curves", "plot the paper's Figure 1 and the FL* curves, print the loss table"),
    "demo": ("focalkit_app.demo.cli", "add_demo_arguments", "run_demo", "measure when focal loss helps on long-tailed real data"),
    "compare": ("focalkit_app.demo.cli", "add_compare_arguments", "run_compare", "compare the focal-loss family on your own data"),
    "bench": ("focalkit_app.bench", "add_bench_arguments", "run_bench", "benchmark focalkit's back-ends against other implementations"),
}


def _version() -> str:
    import focalkit

    return focalkit.__version__


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported (to add its arguments)."""
    parser = OneLineParser(prog="focalkit", description="Focal loss, exact and measured.")
    parser.add_argument("--version", action="version", version=f"focalkit {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, add_name, _, help_text) in _SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name != command:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:  # an optional part whose dependencies are not installed
            sub_parser.set_defaults(_missing=f"focalkit {name} is unavailable ({error}); see the README's set-up command")
            continue
        getattr(module, add_name)(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in _SUBCOMMANDS else None
    parser = build_parser(command)
    if command is None and argv[:1] not in (["-h"], ["--help"], ["--version"]):
        parser.error(f"COMMAND: expected one of {', '.join(_SUBCOMMANDS)}, got {repr(argv[0]) if argv else 'nothing'}")
    args, extras = parser.parse_known_args(argv)
    if extras:  # reported as the sub-command's error: they were meant for its options
        print(f"focalkit {args.command}: error: arguments: expected the options listed by 'focalkit {args.command} "
              f"--help', got unrecognized {' '.join(extras)}", file=sys.stderr)
        return 2
    missing = getattr(args, "_missing", None)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    module_name, _, run_name, _ = _SUBCOMMANDS[args.command]
    run = getattr(importlib.import_module(module_name), run_name)
    try:
        return int(run(args) or 0)
    except FocalKitError as error:
        print(f"focalkit {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"focalkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
