"""`edgebench bench --dry-run`: the jobs and the time estimate under the stopping rule, nothing built."""

from __future__ import annotations

import csv

import pytest
from helpers import synthetic_run

from harness.app.cli import main
from harness.app.plan import timed_estimate_s
from harness.core.measurement import STATISTICAL, MeasurementProtocol


def test_the_dry_run_prints_the_plan_and_builds_nothing(tiny_files, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "empty-cache"
    monkeypatch.setenv("EDGEBENCH_CACHE", str(cache))
    runs = tmp_path / "no-runs"
    code = main(["bench", "--suite", str(tiny_files["suite"]), "--dry-run", "--stopping", "statistical",
                 "--runs-dir", str(runs)])
    out = capsys.readouterr().out
    assert code == 0
    assert not cache.exists() and not runs.exists()  # no cache entry, no run directory
    assert "dry run: target cpu, suite tiny: nothing is built or measured" in out
    assert "statistical rule" in out and "ceiling 20 windows or 30 s" in out
    lines = [line.split() for line in out.splitlines()]
    jobs = [line[:5] for line in lines if line[:1] == ["tiny-digits"]]
    assert jobs == [["tiny-digits", "fp32", "onnxruntime", "1", "1"], ["tiny-digits", "fp32", "torch", "1", "1"]]
    assert "2 of 2 jobs to run" in out and "(the fixed rule:" in out


def test_an_earlier_run_of_the_job_refines_the_estimate(tiny_files, capsys):
    runs = tiny_files["runs"]
    synthetic_run(runs / "20260101-000000-cpu-tiny", "cpu", [
        {"workload": "tiny-digits", "variant": "fp32", "family": "baseline", "precision": "fp32",
         "backend": "onnxruntime", "p50_ms": 2.0, "accuracy": 0.9}])
    assert main(["bench", "--suite", str(tiny_files["suite"]), "--backend", "onnxruntime", "--dry-run",
                 "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    [fp32] = [line for line in out.splitlines() if line.startswith("tiny-digits") and " fp32 " in line]
    # the fixed rule: 2 windows of max(0.05 s, 20 iterations x 2 ms); n_eval 1000 x 2 ms bounds the accuracy pass
    assert "<=2.0" in fp32 and " 0.1 " in fp32 and "latency from 20260101-000000-cpu-tiny" in fp32
    assert "fixed rule: warm-up >= 3 it and >= 0.01 s; 2 windows of >= 0.05 s and >= 20 it" in out


@pytest.mark.parametrize("latency_s, expected", [
    (None, (3.0, 20.0)),      # the floor: min_windows windows of 1 s; 20 windows at the ceiling
    (0.001, (3.0, 20.0)),     # 1,000 samples a window: p99's 662 come with the first
    (0.01, (7.0, 20.0)),      # 100 a window: 7 windows before 662 samples
    (0.1, (20.0, 20.0)),      # 10 a window: 662 samples would take 67 windows; the ceiling (20) comes first
])
def test_statistical_estimates(latency_s, expected):
    protocol = MeasurementProtocol(stopping=STATISTICAL, statistical_window_s=1.0, window_min_iterations=10,
                                   min_windows=3, max_windows=20, max_timed_s=30.0)
    typical, ceiling = timed_estimate_s(protocol, latency_s)
    assert (round(typical, 6), round(ceiling, 6)) == expected


def test_fixed_estimate_is_the_windows():
    protocol = MeasurementProtocol(n_windows=5, window_min_s=10.0, window_min_iterations=1000)
    assert timed_estimate_s(protocol, None) == (50.0, None)
    assert timed_estimate_s(protocol, 0.02) == (100.0, None)   # 1,000 iterations of 20 ms outlast 10 s


def resumable_run(path, suite, jobs, config_hash=None):
    """A run directory --resume accepts: its request and configuration hash as a real run writes them."""
    from dataclasses import asdict

    from harness.app.runner import BenchRequest, resolve
    from harness.core.hashing import content_hash

    request = BenchRequest(suite=str(suite))
    synthetic_run(path, "cpu", jobs, info={
        "request": asdict(request), "config_hash": config_hash or content_hash(resolve(request).snapshot())})
    results = path / "results.csv"   # finished, as a real run's rows are (else --resume runs them again)
    with results.open(newline="") as f:
        rows = list(csv.DictReader(f))
    with results.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "finished_at": "2026-01-01T00:00:00Z"} for row in rows)
    return path


ONNX_FP32 = {"workload": "tiny-digits", "variant": "fp32", "family": "baseline", "precision": "fp32",
             "backend": "onnxruntime", "p50_ms": 2.0, "accuracy": 0.9}


def errors(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


def test_a_dry_run_resume_of_no_run_is_the_same_one_line_error(tmp_path, capsys):
    missing = str(tmp_path / "nonexistent")
    dry = errors(capsys, ["bench", "--dry-run", "--resume", missing])
    real = errors(capsys, ["bench", "--resume", missing, "--quiet", "--no-report"])
    assert dry == real
    assert dry[0] != 0 and dry[1] == (f"edgebench: error: {missing}: not an edgebench run directory (run.json and "
                                      f"results.csv expected)\n")


def test_a_dry_run_resume_refuses_a_changed_configuration_as_resume_does(tiny_files, capsys):
    run = resumable_run(tiny_files["runs"] / "20260101-000000-cpu-tiny", tiny_files["suite"], [ONNX_FP32],
                        config_hash="the hash of another configuration")
    dry = errors(capsys, ["bench", "--dry-run", "--resume", str(run)])
    real = errors(capsys, ["bench", "--resume", str(run), "--quiet", "--no-report"])
    assert dry == real
    assert dry[0] != 0 and "changed since this run started; start a new run instead of resuming" in dry[1]
    assert "Traceback" not in dry[1] and dry[1].count("\n") == 1


def test_a_dry_run_resume_plans_the_missing_jobs_from_the_runs_beside_it(tiny_files, tmp_path, capsys):
    runs = tiny_files["runs"]
    synthetic_run(runs / "20250101-000000-cpu-tiny", "cpu", [
        ONNX_FP32, {**ONNX_FP32, "backend": "torch", "p50_ms": 3.0}])
    run = resumable_run(runs / "20260101-000000-cpu-tiny", tiny_files["suite"], [ONNX_FP32])
    elsewhere = tmp_path / "other-runs"   # --runs-dir is where new runs go: not the resumed run's
    assert main(["bench", "--dry-run", "--resume", str(run), "--runs-dir", str(elsewhere)]) == 0
    out = capsys.readouterr().out
    jobs = [line for line in out.splitlines() if line.startswith("tiny-digits")]
    # onnxruntime finished in the resumed run; torch's estimate learns from the run in the same directory
    assert len(jobs) == 1 and " torch " in jobs[0] and "latency from 20250101-000000-cpu-tiny" in jobs[0]
    assert "1 of 2 jobs to run" in out and not elsewhere.exists()
