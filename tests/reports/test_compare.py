"""Comparisons: significance on raw samples plus a ratio threshold, and regression flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.core.measurement import Window
from harness.core.rundir import RunStore
from harness.core.schema import COLUMNS
from harness.core.stats import summarize
from reports.compare import compare_runs, latency_verdict, write_comparison


def fake_run(path: Path, p50_ms: float, accuracy: float, seed: int) -> Path:
    """A run directory holding one job whose samples are drawn around `p50_ms`."""
    store = RunStore.create(path.parent, path.name, {"run_id": path.name})
    rng = np.random.default_rng(seed)
    latency_ns = (rng.normal(p50_ms, p50_ms * 0.05, 3000) * 1e6).astype(np.int64)
    windows = [Window(0, 10**10, 1000)] * 3
    row = {c: "" for c in COLUMNS}
    row.update(summarize(latency_ns, windows, 1))
    row.update(run_id=path.name, job_id="w__fp32__onnxruntime__t1__b1", status="ok", workload="w",
               variant="fp32", target="cpu", backend="onnxruntime", precision="fp32", threads=1,
               batch_size=1, family="baseline", accuracy=accuracy, peak_rss_mb=100.0,
               raw_latency_file=store.save_latency("w__fp32__onnxruntime__t1__b1", latency_ns, windows))
    store.append(row)
    return path


def test_same_distribution_is_no_change_and_a_slowdown_is_a_regression(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 0.05, 5000)
    assert latency_verdict(a, rng.normal(1.0, 0.05, 5000), 1.1, 0.01)[2] == "no significant change"
    ratio, p, verdict = latency_verdict(a, rng.normal(1.5, 0.05, 5000), 1.1, 0.01)
    assert verdict == "regression" and ratio > 1.4 and p < 1e-10
    assert latency_verdict(a, rng.normal(0.5, 0.02, 5000), 1.1, 0.01)[2] == "improvement"
    # significant but below the ratio threshold: not reported as a change
    assert latency_verdict(a, rng.normal(1.03, 0.05, 5000), 1.1, 0.01)[2] == "no significant change"


def test_compare_runs_joins_jobs_and_flags_regressions(tmp_path):
    base = fake_run(tmp_path / "runs" / "a", 1.0, 0.95, seed=1)
    slower = fake_run(tmp_path / "runs" / "b", 1.5, 0.90, seed=2)
    table, only_a, only_b = compare_runs(base, slower)
    assert len(table) == 1 and only_a == only_b == []
    row = table.iloc[0]
    assert row["latency_verdict"] == "regression" and bool(row["regression"])
    assert "accuracy regression (-5.00 points)" in row["flags"]
    (html, md), n_regressions = write_comparison(base, slower, tmp_path / "out")
    assert n_regressions == 1
    assert "regression" in md.read_text() and html.read_text().startswith("<!doctype html>")


def test_compare_cli_fails_on_regression_when_asked(tmp_path, capsys):
    from harness.app.cli import main

    base = fake_run(tmp_path / "runs" / "a", 1.0, 0.95, seed=1)
    same = fake_run(tmp_path / "runs" / "b", 1.0, 0.95, seed=3)
    slower = fake_run(tmp_path / "runs" / "c", 1.5, 0.95, seed=2)
    assert main(["compare", str(base), str(same), "--fail-on-regression"]) == 0
    assert main(["compare", str(base), str(slower), "--fail-on-regression"]) == 1
    assert "latency regression" in capsys.readouterr().out
