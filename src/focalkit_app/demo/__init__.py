"""``focalkit demo`` and ``focalkit compare``: measured evidence of when focal loss helps.

Optional dependencies (the ``demo`` extra: scikit-learn, pandas, pyarrow, optuna, tqdm, matplotlib) are imported only
inside this package's functions, never at import time.

Layout (one concept per file):
  datasets.py        long-tailed profile and the bundled digits split
  models.py          small MLP
  losses.py          the family of losses compared (names, construction)
  training.py        training loop for classifiers (with the adaptive hooks)
  experiment.py      every loss on every seed / fold (optionally in worker processes)
  metrics.py         balanced accuracy, tail recall, macro-F1, macro AP, ECE
  stats.py           mean +- std and the paired "which loss won" rule
  paired_table.py    per-loss metric tables with the paired verdicts (multi-label and segmentation demos)
  plots.py           PNG figures
  report.py          Markdown report and terminal table
  classification.py  ``focalkit demo`` on long-tailed digits
  detection.py       dense detection in miniature (``demo --task detection``): configuration, workers, report
  detection_task.py  the generated long-tailed task and RetinaNet's IoU anchor assignment (background = C)
  detection_model.py, detection_losses.py, detection_training.py  the detector, the rows, SGD / Adam with warm-up
  detection_metrics.py, detection_budget.py, detection_ranking.py  mAP, budgets and the plateau rule, Kendall tau
  detection_report.py, detection_plots.py  paired verdicts per budget, findings, figures
  multilabel.py, multilabel_data.py  BCE, focal loss and ASL on long-tailed multi-label digit mosaics
                     (``demo --task multilabel``)
  segmentation.py, segmentation_data.py, segmentation_metrics.py  a rare small class in synthetic masks; Dice and
                     boundary recall (``demo --task segmentation``)
  tabular.py         loading and validating CSV / Parquet / .npz for ``compare``
  compare.py         stratified k-fold comparison (``focalkit compare``)
  tuning.py          Optuna search with nested measurement (``compare --tune``)
  outdir.py, progress.py, threads.py  report folder, progress bar, torch threads
  cli.py             the argparse glue called by ``focalkit_app.cli.main``
"""
