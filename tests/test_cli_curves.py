"""focalkit curves writes the figures and prints the table with the modulating factor 0.01 at p_t = 0.9, gamma = 2."""

from __future__ import annotations

import subprocess
import sys

from focalkit_app.cli.curves import loss_table
from focalkit_app.cli.main import main


def test_loss_table_factor_at_pt_09():
    rows = {(r["p_t"], r["gamma"]): r for r in loss_table([0.9, 0.968], [0.0, 2.0])}
    assert abs(rows[(0.9, 2.0)]["factor"] - 0.01) < 1e-12
    assert abs(rows[(0.9, 0.0)]["factor"] - 1.0) < 1e-12
    assert 950 < rows[(0.968, 0.0)]["fl"] / rows[(0.968, 2.0)]["fl"] < 1000


def test_curves_command_writes_pngs(tmp_path, capsys):
    out = tmp_path / "curves"
    assert main(["curves", "--out", str(out), "--pt", "0.5", "0.9"]) == 0
    printed = capsys.readouterr().out
    assert "0.010000" in printed  # (1 - 0.9)^2
    assert "0.010000" in (out / "loss_table.md").read_text()
    for name in ("figure1_focal_loss.png", "fl_star.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_curves_bad_argument_exits_2(tmp_path, capsys):
    assert main(["curves", "--out", str(tmp_path), "--pt", "1.5"]) == 2
    assert "--pt: expected probabilities in (0, 1], got 1.5" in capsys.readouterr().err


def test_import_focalkit_is_light():
    code = "import sys, focalkit; bad = [m for m in ('jax', 'tensorflow', 'keras', 'triton', 'matplotlib', 'sklearn', 'pandas', 'optuna') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
