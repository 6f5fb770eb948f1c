"""Comparisons: significance on raw samples plus a ratio threshold, and regression flags."""

from __future__ import annotations

import numpy as np
from helpers import fake_run

from reports.compare import compare_runs, latency_verdict, write_comparison


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
