"""Smoke test of examples/beam_prediction.py (tiny sizes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def _load():
    path = Path(__file__).resolve().parents[1] / "examples" / "beam_prediction.py"
    spec = importlib.util.spec_from_file_location("beam_prediction", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_beam_data_is_imbalanced_and_script_runs(capsys):
    beam = _load()
    x, y = beam.make_users(5000, np.random.default_rng(0))
    assert x.shape == (5000, 6) and y.min() >= 0 and y.max() < beam.N_BEAMS
    counts = np.sort(np.bincount(y, minlength=beam.N_BEAMS))[::-1]
    assert counts[:4].sum() > 0.6 * len(y)  # a few beams dominate
    assert beam.main(["--seeds", "2", "--epochs", "1", "--train", "400", "--test", "600"]) == 0
    out = capsys.readouterr().out
    assert "per-beam recall" in out and "focal - CE, balanced accuracy" in out
