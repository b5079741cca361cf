"""``focalkit demo`` and ``focalkit compare``: measured evidence of when focal loss helps.

Optional dependencies (the ``demo`` extra: scikit-learn, pandas, pyarrow, optuna, tqdm, matplotlib) are imported only
inside this package's functions, never at ``import focalkit`` time.

Layout (one concept per file):
  datasets.py  long-tailed profile and the bundled digits split
  models.py    small MLP and the miniature one-stage detector
  losses.py    the family of losses compared (names, construction)
  training.py  training loop for classifiers (with the adaptive hooks)
  metrics.py   balanced accuracy, tail recall, macro-F1, macro AP, ECE
  stats.py     mean +- std and the paired "which loss won" rule
  plots.py     PNG figures; report.py Markdown report and terminal table
  detection.py dense detection in miniature (``demo --task detection``)
  tabular.py   loading and validating CSV / Parquet / .npz for ``compare``
  compare.py   stratified k-fold comparison; tuning.py Optuna search
  cli.py       the argparse glue called by ``focalkit.cli.main``
"""
