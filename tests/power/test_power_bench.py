"""`edgebench bench --power ...` end to end: energy columns, labelled emulation, faults."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from harness.app.cli import main
from harness.core.traces import TraceSlice


def rows_of(runs: Path) -> tuple[Path, list[dict]]:
    run_dir = next(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    with open(run_dir / "results.csv", newline="") as fh:
        return run_dir, list(csv.DictReader(fh))


def test_emulated_ina219_fills_the_energy_columns_and_labels_them(tiny_files):
    runs = tiny_files["runs"]
    code = main(["bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(runs), "--quiet",
                 "--backend", "onnxruntime", "--power",
                 "emulated-ina219:idle_s=0.5,profile=\"constant:2.5\",garbage_every=200"])
    assert code == 0
    run_dir, rows = rows_of(runs)
    row = rows[0]
    assert row["energy_source"] == "emulated-ina219"
    # a constant 2.5 W profile: average power 2.5 W, energy per inference = 2.5 W * window / inferences
    assert abs(float(row["avg_power_w"]) - 2.5) < 0.01
    assert abs(float(row["idle_power_w"]) - 2.5) < 0.01
    assert abs(float(row["energy_per_inference_above_idle_mj"])) < 0.01 * float(row["energy_per_inference_mj"])
    # per window, shared by the inferences it held; the row takes the median over windows (not 2.5 W / the
    # median throughput, which differs when a busy machine makes the windows differ)
    with np.load(run_dir / row["raw_latency_file"]) as raw:
        per_window_mj = [2500.0 * (end - start) / 1e9 / n for start, end, n in raw["windows"]]
    assert abs(float(row["energy_per_inference_mj"]) / float(np.median(per_window_mj)) - 1) < 0.03
    assert "bad or partial frames dropped (resynchronised)" in row["warnings"]
    trace = TraceSlice.load(run_dir / row["power_trace_file"])
    assert len(trace) >= int(row["power_samples"]) >= 2 * 20
    html = (run_dir / "report.html").read_text()
    assert "Energy is EMULATED (emulated-ina219)" in html and "accuracy vs energy" in html


def test_a_missing_port_stops_before_anything_runs(tiny_files, capsys):
    runs = tiny_files["runs"]
    code = main(["bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(runs), "--quiet",
                 "--power", "um25c:port=/dev/ttyNOPE7"])
    err = capsys.readouterr().err
    assert code == 2 and "power: serial port /dev/ttyNOPE7: it does not exist" in err
    assert not runs.exists() or not any(runs.iterdir())


def test_strict_mode_stops_cleanly_when_the_meter_dies_and_keeps_rows(tiny_files, capsys):
    runs = tiny_files["runs"]
    code = main(["bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(runs), "--quiet",
                 "--no-report", "--power",
                 "emulated-um25c:idle_s=0.2,silent_after_s=1.5,strict=true,rate_hz=20"])
    err = capsys.readouterr().err
    assert code == 3 and "strict mode" in err and "--resume" in err
    _, rows = rows_of(runs)
    assert len(rows) == 1 and rows[0]["valid"] == "False" and "power:" in rows[0]["invalid_reasons"]


def test_without_strict_mode_a_dead_meter_marks_jobs_and_the_run_goes_on(tiny_files):
    runs = tiny_files["runs"]
    code = main(["bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(runs), "--quiet",
                 "--no-report", "--power", "emulated-um25c:idle_s=0.2,unplug_after_s=1.5,rate_hz=20"])
    assert code == 0
    _, rows = rows_of(runs)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all("power:" in r["invalid_reasons"] for r in rows)
    assert all(float(r["accuracy"]) > 0.85 for r in rows)  # the timing and accuracy results stand
