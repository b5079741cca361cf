"""Benchmarks of focalkit's back-ends against other focal-loss implementations (``focalkit bench``).

``add_bench_arguments(parser)`` adds the options, ``run_bench(args) -> int`` runs them and writes JSON, Markdown and
a PNG plot with the device, versions, date and git commit. The method is described in :mod:`focalkit_app.bench._runner`
and in ``docs/benchmarks.md``. Importing this package imports nothing beyond torch and focalkit; matplotlib is
imported only to draw the plot.

Example:
    $ focalkit bench --quick
    $ python benchmarks/bench_sigmoid.py --sizes 1e6 4e6
"""

from ._runner import add_bench_arguments, main, run_bench

__all__ = ["add_bench_arguments", "main", "run_bench"]
