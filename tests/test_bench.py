"""The benchmark package (focalkit_app.bench): runner pieces and a tiny end-to-end run. No speed assertions."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

import focalkit

from focalkit_app.bench import _impls, _runner, add_bench_arguments, run_bench


def test_formulas_match_reference_style_losses():
    x, t = _impls.make_inputs("sigmoid", 800, torch.float32)
    import focalkit

    torch.testing.assert_close(_impls.torchvision_formula(x, t),
                               focalkit.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="sum"),
                               rtol=1e-4, atol=1e-4)
    xs, ts = _impls.make_inputs("softmax", 640, torch.float32)
    torch.testing.assert_close(_impls.softmax_focal_formula(xs, ts),
                               focalkit.softmax_focal_loss(xs, ts, gamma=2.0, reduction="sum"), rtol=1e-4, atol=1e-4)


def test_time_group_interleaves_and_reports_errors():
    x, t = _impls.make_inputs("sigmoid", 800, torch.float32)
    x.requires_grad_(True)
    good = _impls.Impl("good", "sigmoid", lambda: _impls.torchvision_formula, "other")

    def broken(x, t):
        raise RuntimeError("boom")

    bad = _impls.Impl("bad", "sigmoid", lambda: broken, "other")
    res = _runner.time_group([(good, good.make()), (bad, bad.make())], x, t, "both", min_reps=3, max_reps=4,
                             min_time=0.0)
    assert isinstance(res["good"], list) and 3 <= len(res["good"]) <= 4 and all(v > 0 for v in res["good"])
    assert isinstance(res["bad"], str) and "boom" in res["bad"]


def test_memory_accounting_on_a_known_case():
    impl = _impls.Impl("tv", "sigmoid", lambda: _impls.torchvision_formula, "other")
    m = _runner.measure_memory(impl, impl.make(), "sigmoid", 80_000, torch.float32)
    assert m["saved_in_logits"] >= 5  # the eager formula keeps a chain of intermediates
    assert m["peak_extra_in_logits"] >= 1  # at least the gradient


def test_targets_are_computed_from_one_run():
    def rec(impl, ms, numel=4_000_000, mode="both"):
        return {"impl": impl, "dtype": "fp32", "numel": numel, "mode": mode, "median_ms": ms}

    results = {
        "sigmoid": {"timings": [rec("focalkit[cpu]", 10.0), rec("torchvision formula (eager)", 90.0),
                                rec("torchvision formula (compiled)", 12.0),
                                rec("focalkit[cpu]", 0.3, 10_000), rec("F.binary_cross_entropy_with_logits (floor)",
                                                                       0.25, 10_000)],
                    "memory": [], "first_call": [{"impl": "focalkit[cpu]", "first_call_s": 0.1}], "skipped": {}},
        "softmax": {"timings": [rec("focalkit[cpu]", 13.0, 65536 * 64), rec("F.cross_entropy (floor)", 10.0, 65536 * 64),
                                rec("focalkit[cpu]", 5.0, 65536 * 64, "forward_no_grad"),
                                rec("F.cross_entropy (floor)", 5.0, 65536 * 64, "forward_no_grad")],
                    "memory": [], "first_call": [], "skipped": {}},
    }
    values = [(t["value"], t["met"]) for t in _runner.evaluate_targets(results)]
    assert values[0] == (9.0, True) and values[1] == (1.2, False)  # eager >= 8x, compiled >= 2x
    assert abs(values[2][0] - 1.2) < 1e-12 and values[2][1] is True  # 1e4 elements vs BCE <= 1.5x
    assert values[3] == (0.1, True)  # first call
    assert abs(values[4][0] - 1.3) < 1e-12 and values[4][1] is False  # softmax fwd+bwd <= 1.1x
    assert values[5] == (1.0, True)  # softmax forward only <= 1.2x


def test_quick_run_writes_json_markdown_and_png(tmp_path, monkeypatch):
    from focalkit_app.bench import quiet

    monkeypatch.setattr(quiet, "machine_state", lambda threads, min_run_time=0.3: _state(0.3, 2.1, 2.0))
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    args = parser.parse_args(["--op", "sigmoid", "--sizes", "2e4", "--modes", "both", "--no-compile",
                              "--no-first-call", "--impls", "torchvision formula (eager)", "--min-reps", "3",
                              "--max-reps", "3", "--min-time", "0", "--dtypes", "fp32", "--out", str(tmp_path),
                              "--name", "t"])
    assert run_bench(args) == 0
    report = json.loads((tmp_path / "t.json").read_text())
    meta = report["metadata"]
    for key in ("date_utc", "git_commit", "device", "versions"):
        assert meta[key]
    names = {r["impl"] for r in report["results"]["sigmoid"]["timings"]}
    assert "torchvision formula (eager)" in names and "F.binary_cross_entropy_with_logits (floor)" in names
    assert (tmp_path / "t.md").read_text().startswith("# focalkit CPU benchmark")
    assert "- quietness: quiet" in (tmp_path / "t.md").read_text()
    assert (tmp_path / "t.png").stat().st_size > 1000
    assert meta["allocator"]["mode"] == "steady"
    assert "- allocator: steady" in (tmp_path / "t.md").read_text()


def test_steady_allocator_keeps_freed_buffers_mapped():
    """With the benchmark's default allocator mode, 48 MB freed and allocated again stops being page-faulted again:
    once the heap has room for both buffers' placements (a few repetitions) the minor page faults stay near 0 (with
    glibc's defaults every repetition of this loop faults 8,000-12,000 pages, measured on glibc 2.36)."""
    import subprocess
    import sys

    from focalkit_app.bench import allocator

    if allocator._glibc() is None:
        pytest.skip("not glibc: the allocator mode changes nothing here")
    code = ("from focalkit_app.bench import allocator as a; info = a.configure('steady'); "
            "print(info['applied'], *a.reuse_page_faults(16))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120).stdout.split()
    applied, counts = out[0], [int(v) for v in out[1:]]
    assert applied == "True"
    assert max(counts[-6:]) < 200, counts


def test_allocator_modes_are_checked_and_reported():
    from focalkit_app.bench import allocator

    assert allocator.configure("system") == {"mode": "system", "applied": False, "detail": "the C library's defaults"}
    with pytest.raises(focalkit.InvalidArgumentError, match="allocator: expected one of steady, system, got 'fast'"):
        allocator.configure("fast")
    assert allocator.allocator_line({}) == "not recorded (the C library's defaults)"


def test_main_benchmark_refuses_a_busy_machine_unless_told(tmp_path, monkeypatch):
    from focalkit_app.bench import quiet

    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    argv = ["--op", "sigmoid", "--sizes", "1e3", "--modes", "both", "forward_no_grad", "--no-compile",
            "--no-first-call", "--no-memory", "--impls", "torchvision formula (eager)", "--min-reps", "1",
            "--max-reps", "2", "--min-time", "0", "--dtypes", "fp32", "--out", str(tmp_path), "--name", "t"]
    states = iter([_state(5.0, 900.0, 180.0), _state(5.0, 900.0, 180.0)] * 2)
    monkeypatch.setattr(quiet, "machine_state", lambda threads, min_run_time=0.3: next(states))
    assert run_bench(parser.parse_args(argv)) == 3
    assert not list(tmp_path.iterdir())
    assert run_bench(parser.parse_args(argv + ["--allow-busy"])) == 0
    assert "BUSY MACHINE" in (tmp_path / "t.md").read_text()
    modes = {r["mode"] for r in json.loads((tmp_path / "t.json").read_text())["results"]["sigmoid"]["timings"]}
    assert modes == {"both", "forward_no_grad"}


# ------------------------------------------------------------------------------- family benchmark, quietness check
def _state(load: float, small: float, large: float) -> dict:
    return {"load_average_1min": load, "threads": 2, "floor_ns_per_element": {"100000": small, "1000000": large}}


def test_quietness_verdict_names_each_kind_of_noise():
    from focalkit_app.bench import quiet

    assert quiet.verdict(_state(0.8, 2.2, 2.0), _state(1.9, 2.4, 2.1)) == []
    reasons = quiet.verdict(_state(4.0, 2.2, 2.0), _state(0.5, 2.2, 2.0))
    assert len(reasons) == 1 and "load average 4.00" in reasons[0]
    reasons = quiet.verdict(_state(0.5, 60.0, 2.0), _state(0.5, 60.0, 2.0))
    assert len(reasons) == 2 and all("30.0x" in r for r in reasons)
    reasons = quiet.verdict(_state(0.5, 2.0, 2.0), _state(0.5, 2.0, 4.0))
    assert len(reasons) == 1 and "changed 2.0x during the run" in reasons[0]
    reasons = quiet.verdict(_state(0.5, 2.0, 2.0), _state(0.5, 2.0, 2.6))  # a 1.3x drift: the median alone moved
    assert len(reasons) == 1 and "changed 1.3x during the run" in reasons[0]


def test_quietness_verdict_refuses_a_floor_whose_repetitions_spread():
    """A neighbour on the shared cores slows some repetitions and not others: the medians can look normal while the
    interquartile range of the floor's repetitions is wide."""
    from focalkit_app.bench import quiet

    steady = {**_state(0.5, 2.0, 2.0), "floor_relative_iqr": {"100000": 0.04, "1000000": 0.06}}
    assert quiet.verdict(steady, steady) == []
    noisy = {**_state(0.5, 2.0, 2.0), "floor_relative_iqr": {"100000": 0.05, "1000000": 0.5}}
    reasons = quiet.verdict(steady, noisy)
    assert len(reasons) == 1 and "after the run at 1000000 elements" in reasons[0] and "50%" in reasons[0]


def test_machine_state_records_the_floor_and_its_spread():
    from focalkit_app.bench import quiet

    state = quiet.machine_state(threads=1, min_run_time=0.05)
    assert set(state["floor_ns_per_element"]) == set(state["floor_relative_iqr"]) == {"100000", "1000000"}
    assert all(v > 0 for v in state["floor_ns_per_element"].values())
    assert all(v >= 0 for v in state["floor_relative_iqr"].values())


def _tiny_groups(quick: bool = False, compile_peers: bool = True):
    from focalkit_app.bench import family, peer_formulas

    import focalkit

    return [family.Group("varifocal_loss", (64, 4), family._iou_targets, [
        *family._focalkit(lambda x, y: focalkit.varifocal_loss(x, y, reduction="sum")),
        family.Case("mmdetection varifocal_loss, eager",
                    lambda x, y: peer_formulas.mmdet_varifocal_loss(x, y, reduction="sum"), "peer"),
    ])]


def _family_args(tmp_path):
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    return parser.parse_args(["--op", "family", "--quick", "--out", str(tmp_path), "--name", "fam"])


def test_family_benchmark_refuses_a_busy_machine_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from focalkit_app.bench import family, quiet

    states = iter([_state(6.0, 900.0, 180.0), _state(7.0, 2.0, 180.0)])  # what a run beside a test suite looked like
    monkeypatch.setattr(quiet, "machine_state", lambda threads, min_run_time=0.3: next(states))
    monkeypatch.setattr(family, "groups", _tiny_groups)
    assert run_bench(_family_args(tmp_path)) == 3
    assert not list(tmp_path.iterdir())
    out = capsys.readouterr().out
    assert "REFUSED" in out and "load average 6.00" in out


def test_family_benchmark_writes_ratios_when_quiet(tmp_path, monkeypatch):
    from focalkit_app.bench import family, quiet

    monkeypatch.setattr(quiet, "machine_state", lambda threads, min_run_time=0.3: _state(0.3, 2.1, 2.0))
    monkeypatch.setattr(family, "groups", _tiny_groups)
    assert run_bench(_family_args(tmp_path)) == 0
    report = json.loads((tmp_path / "fam.json").read_text())
    rows = report["groups"][0]["rows"]
    assert [r["name"] for r in rows] == ["focalkit", "focalkit, PyTorch back-end", "mmdetection varifocal_loss, eager"]
    assert set(rows[0]["timings"]) == {f"{m}, {t} thr" for m in ("forward + backward", "forward, no_grad") for t in (1, 2)}
    assert all(v == 1.0 for v in rows[0]["ratio_to_focalkit"].values())
    assert rows[2]["relative_difference"] < 1e-5  # the same definition
    assert "| mmdetection varifocal_loss, eager |" in (tmp_path / "fam.md").read_text()


def test_markdown_tables_have_as_many_cells_as_columns(tmp_path):
    """Every row of every Markdown table has its header's number of columns (the all-modes table included)."""
    def rec(dtype, mode, ms):
        return {"impl": "focalkit[cpu]", "dtype": dtype, "numel": 4_000_000, "mode": mode, "median_ms": ms,
                "q1_ms": ms, "q3_ms": ms}

    timings = [rec(d, m, 1.0 + i) for i, (d, m) in enumerate([("fp32", "both"), ("fp32", "forward_no_grad"),
                                                                ("bf16", "both"), ("bf16", "forward_no_grad")])]
    report = {"metadata": _runner.metadata(), "results": {"sigmoid": {"timings": timings, "memory": [], "first_call": [],
                                                                  "skipped": {}}}, "targets": []}
    path = tmp_path / "r.md"
    _runner.write_markdown(report, path)
    header = None
    for line in path.read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = line.count("|") - 1
        if header is None:
            header = cells
        assert cells == header, line


def test_output_name_defaults_to_the_op(tmp_path):
    """Without --name the files are bench_<op> (bench_sigmoid, bench_family, ...), so runs of different ops do not
    overwrite each other."""
    for op in ("sigmoid", "family"):
        parser = argparse.ArgumentParser()
        add_bench_arguments(parser)
        args = parser.parse_args(["--op", op, "--out", str(tmp_path)])
        _runner.check_bench_args(args)
        assert args.name == f"bench_{op}"
