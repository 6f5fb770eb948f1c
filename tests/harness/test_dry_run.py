"""`edgebench bench --dry-run`: the jobs and the time estimate under the stopping rule, nothing built."""

from __future__ import annotations

import csv

import pytest
from helpers import synthetic_run, tiny_suite_toml, tiny_workload_toml, write

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
    # nothing cached: the base model is to build; its variant's key needs the base model's file
    assert artifact_states(out) == {"tiny-digits base model": "to build", "tiny-digits/fp32": "unknown"}
    assert "2 artifacts (1 to build, 1 unknown)" in out


def artifact_states(out: str) -> dict[str, str]:
    """The dry run's artifact lines: name -> cached | to build | unknown."""
    lines = out.splitlines()
    start = lines.index("artifacts (base models included):") + 1
    states = {}
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        state, name = line[2:12].strip(), line[12:]
        states[name] = state
    return states


def test_the_dry_run_says_what_the_build_would_take_from_the_cache_and_writes_nothing(tmp_path, monkeypatch,
                                                                                      capsys):
    import shutil

    from workloads import build_pool
    from workloads.build import build_base, build_variants
    from workloads.spec import load_workload

    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))  # this test's own cache
    monkeypatch.setenv(build_pool.WORKERS_ENV, "1")
    path = write(tmp_path / "w.toml", tiny_workload_toml("dry-cache", epochs=1) + """
    [[variants]]
    name = "int8"
    family = "quantize"
    scheme = "ort-static"
    calibration_samples = 20
    """)
    suite = write(tmp_path / "s.toml", tiny_suite_toml(["onnxruntime"], workloads=[str(path)], name="dry"))
    workload = load_workload(path)

    def dry_run() -> dict[str, str]:
        files = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
        assert main(["bench", "--suite", str(suite), "--dry-run", "--runs-dir", str(tmp_path / "runs")]) == 0
        assert sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == files
        return artifact_states(capsys.readouterr().out)

    build_variants(build_base(workload), {"fp32"})  # the base model, and the baseline's torch-code entry
    torch_code = tmp_path / "cache" / "torch-code"
    assert torch_code.is_dir()
    shutil.rmtree(torch_code)  # a cheap entry the build writes as it goes: the dry run does not
    states = dry_run()
    assert states == {"dry-cache base model": "cached", "dry-cache/fp32": "cached", "dry-cache/int8": "to build"}
    # what the build phase then builds is what the dry run said it would
    phase = build_pool.build_phase([(workload, {"fp32", "int8"})])
    assert {t.what: "cached" if t.cached else "to build" for t in phase.times} == states
    assert set(dry_run().values()) == {"cached"}


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


def test_a_build_error_the_cache_look_up_meets_stops_the_dry_run_as_it_stops_the_run(tmp_path, monkeypatch, capsys):
    from workloads import build_pool
    from workloads.build import build_base
    from workloads.spec import load_workload

    monkeypatch.setenv(build_pool.WORKERS_ENV, "1")
    path = write(tmp_path / "w.toml", tiny_workload_toml("dry-bad") + """
    [[variants]]
    name = "tfl"
    family = "tflite"
    quantization = "dynamic"
    """)
    build_base(load_workload(path))  # cached: its variants are looked up
    argv = ["bench", "--workload", str(path), "--backend", "onnxruntime", "--runs-dir", str(tmp_path / "runs")]
    dry = errors(capsys, [*argv, "--dry-run"])
    real = errors(capsys, [*argv, "--quiet", "--no-report"])
    assert dry[0] == real[0] == 2
    assert dry[1].splitlines() == real[1].splitlines()[-1:]  # the run printed its build lines before
    assert "quantization = \"dynamic\" is TensorFlow's converter's" in dry[1]


def test_a_dry_run_resume_with_nothing_left_looks_up_no_artifact(tiny_files, capsys):
    run = resumable_run(tiny_files["runs"] / "20260101-000000-cpu-tiny", tiny_files["suite"],
                        [ONNX_FP32, {**ONNX_FP32, "backend": "torch"}])
    assert main(["bench", "--dry-run", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "0 of 2 jobs to run (0 skipped in an earlier run), 0 artifacts; measuring ~0 min 00 s" in out
    assert "artifacts (base models included):" not in out
