"""End to end on the cpu target: real training, real agent processes, real results and reports."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.app.cli import main
from harness.core.schema import COLUMNS
from workloads.spec import load_workload

REQUIRED_COLUMNS = [
    "run_id", "workload", "variant", "target", "backend", "precision", "threads", "batch_size", "accuracy",
    "accuracy_delta", "n_eval", "latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms",
    "latency_std_ms", "throughput_ips", "n_iterations", "n_windows", "model_bytes", "params", "macs", "peak_rss_mb",
    "valid", "warnings", "energy_per_inference_mj", "avg_power_w", "energy_source"]


def read_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def only_run(runs: Path) -> Path:
    dirs = [p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_bench_writes_rows_raw_samples_environment_and_report(tiny_files, capsys):
    runs = tiny_files["runs"]
    assert main(["bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(runs), "--quiet"]) == 0
    run_dir = only_run(runs)
    assert (runs / "latest").resolve() == run_dir.resolve()

    with open(run_dir / "results.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == COLUMNS and set(REQUIRED_COLUMNS) <= set(header)
    rows = read_rows(run_dir)
    assert [(r["backend"], r["status"]) for r in rows] == [("onnxruntime", "ok"), ("torch", "ok")]
    for row in rows:
        # a trained 8-wide CNN on digits is far above chance (10%); both backends run the same weights
        assert float(row["accuracy"]) > 0.85
        assert row["accuracy"] == rows[0]["accuracy"]
        assert float(row["accuracy_delta"]) == 0.0 and int(row["n_eval"]) == 360
        assert row["energy_source"] == "none" and row["energy_per_inference_mj"] == ""
        assert row["valid"] == "False" and "shorter than 10 s" in row["invalid_reasons"]
        assert int(row["macs"]) > 0 and int(row["params"]) > 0 and int(row["model_bytes"]) > 0
        assert 0 < float(row["peak_rss_mb"]) < 4096
        # the row's statistics are those of its raw samples
        with np.load(run_dir / row["raw_latency_file"]) as raw:
            latency_ms = raw["latency_ns"] / 1e6
            assert len(latency_ms) == int(row["n_iterations"]) and len(raw["windows"]) == 2
            assert raw["windows"][:, 2].sum() == len(latency_ms)
        assert float(row["latency_p50_ms"]) == pytest.approx(np.percentile(latency_ms, 50))
        assert float(row["latency_p99_ms"]) == pytest.approx(np.percentile(latency_ms, 99))

    info = json.loads((run_dir / "run.json").read_text())
    assert info["device"]["cpu_count"] >= 1 and "onnxruntime" in info["device"]["runtimes"]
    assert info["seeds"]["tiny-digits"] == {"dataset": 0, "training": 0}
    assert info["measurement_protocol"]["n_windows"] == 2 and "finished_at" in info
    assert "commit" in info["host"]["git"]

    html = (run_dir / "report.html").read_text()
    # figures inline as SVG (with tooltips) or PNG: every one with a caption
    assert "tiny-digits" in html and html.count("<figure ") >= 3
    assert html.count("<figure ") == html.count("<figcaption>")
    assert "Not valid for publication" in html
    md = (run_dir / "report.md").read_text()
    assert "| tiny-digits | fp32 | onnxruntime |" in md


def test_second_build_reuses_the_trained_model(tiny_files):
    from workloads.build import build_base

    workload = load_workload(tiny_files["workload"])
    first = build_base(workload)
    second = build_base(workload)
    assert second.onnx_path == first.onnx_path and not second.was_trained


def test_user_model_from_the_command_line(user_model, capsys):
    runs = user_model["dir"] / "runs"
    suite = user_model["dir"] / "s.toml"
    suite.write_text('[suite]\nworkloads = ["unused"]\n[protocol]\nn_windows = 2\nwindow_min_s = 0.05\n'
                     'window_min_iterations = 10\nwarmup_min_s = 0.0\n')
    code = main(["bench", "--model", str(user_model["model"]), "--data", str(user_model["data"]),
                 "--suite", str(suite), "--runs-dir", str(runs), "--quiet"])
    assert code == 0
    rows = {r["backend"]: r for r in read_rows(only_run(runs))}
    ort = rows["onnxruntime"]
    assert ort["status"] == "ok" and ort["workload"] == "user" and ort["variant"] == "as-given"
    assert ort["precision"] == "fp32"  # read from the model file
    # accuracy is the argmax of the first output against y, computed here independently
    import onnxruntime

    session = onnxruntime.InferenceSession(str(user_model["model"]))
    x, y = user_model["x"][-300:], user_model["y"][-300:]
    expected = float((session.run(None, {"input": x})[0].argmax(1) == y).mean())
    assert float(ort["accuracy"]) == pytest.approx(expected)
    assert rows["torch"]["status"] == "skipped" and "reference models" in rows["torch"]["reason"]
    assert int(ort["macs"]) == 64 * 10 + 10  # one Gemm: 640 multiply-accumulates and 10 bias adds


def _wait_for_rows(run_parent: Path, n: int, timeout_s: float) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for results in run_parent.glob("*/results.csv"):
            if len(read_rows(results.parent)) >= n:
                return results.parent
        time.sleep(0.2)
    raise AssertionError(f"no run with {n} finished rows after {timeout_s} s")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_finished_rows_and_resume_runs_only_the_rest(tiny_files, tmp_path, stop):
    """Ctrl-C, and SIGTERM (a CI cancel, `timeout`), stop the same way: rows kept, one line, resumable."""
    suite = tiny_files["suite"]
    text = suite.read_text().replace("window_min_s = 0.05", "window_min_s = 1.5")
    suite.write_text(text.replace('threads = [1]', 'threads = [1, 2]'))
    runs = tiny_files["runs"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a shell without job control starts background commands with SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler: give the run the default disposition, as a terminal would
    proc = subprocess.Popen([sys.executable, "-m", "harness", "bench", "--suite", str(suite),
                             "--runs-dir", str(runs), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    run_dir = _wait_for_rows(runs, 1, timeout_s=240)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume with: edgebench bench --resume" in err and "Traceback" not in err
    kept = read_rows(run_dir)
    assert 1 <= len(kept) < 4
    # a crash in the middle of writing a row leaves a partial line: it is not a finished job
    with open(run_dir / "results.csv", "a") as fh:
        fh.write("partial,row,without,newline")

    assert main(["bench", "--resume", str(run_dir), "--quiet", "--no-report"]) == 0
    rows = read_rows(run_dir)
    assert len(rows) == 4 and len({r["job_id"] for r in rows}) == 4
    assert rows[:len(kept)] == kept  # finished rows untouched, in place
    assert {(r["backend"], r["threads"]) for r in rows} == {
        ("onnxruntime", "1"), ("onnxruntime", "2"), ("torch", "1"), ("torch", "2")}


def test_resume_refuses_a_run_written_with_other_columns(tmp_path, capsys):
    run_dir = tmp_path / "old-run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    (run_dir / "results.csv").write_text("run_id,job_id,status\n")
    assert main(["bench", "--resume", str(run_dir), "--quiet"]) == 2
    assert "other result columns" in capsys.readouterr().err


def test_resume_refuses_a_run_whose_config_changed(tiny_files, capsys):
    runs = tiny_files["runs"]
    assert main(["bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(runs), "--quiet",
                 "--no-report", "--backend", "onnxruntime"]) == 0
    run_dir = only_run(runs)
    tiny_files["suite"].write_text(tiny_files["suite"].read_text().replace("n_windows = 2", "n_windows = 3"))
    assert main(["bench", "--resume", str(run_dir), "--quiet"]) == 2
    assert "changed since this run started" in capsys.readouterr().err


def test_a_run_started_with_relative_paths_resumes_from_another_directory(tiny_files, tmp_path, monkeypatch):
    """run.json keeps the request with absolute paths: --resume does not depend on the working directory."""
    monkeypatch.chdir(tiny_files["suite"].parent)
    code = main(["bench", "--suite", tiny_files["suite"].name, "--backend", "onnxruntime", "--quiet",
                 "--no-report", "--runs-dir", "runs-rel"])
    assert code == 0
    run_dir = (tiny_files["suite"].parent / "runs-rel" / "latest").resolve()
    request = json.loads((run_dir / "run.json").read_text())["request"]
    assert request["suite"] == str(tiny_files["suite"])
    monkeypatch.chdir(tmp_path.parent)
    assert main(["bench", "--resume", str(run_dir), "--quiet", "--no-report"]) == 0
