"""Result format 6: the stopping rule and the median's interval in every row, the early-exit path columns
defined; format-5 runs still load, the new columns empty."""

from __future__ import annotations

import csv
import json

from helpers import fake_run

from harness.core import migrations
from harness.core.rundir import RunStore
from harness.core.schema import BY_NAME, COLUMNS, RESULT_FORMAT_VERSION, parse_cell

NEW = ["stopping_rule", "latency_p50_ci_pct", "exit_path", "exit_skip_rate"]


def test_the_new_columns_sit_with_their_neighbours():
    assert RESULT_FORMAT_VERSION == 6
    at = COLUMNS.index
    assert at("stopping_rule") == at("window_min_s") + 1 and at("latency_p50_ci_pct") == at("stopping_rule") + 1
    assert at("exit_path") == at("expected_macs") + 1 and at("exit_skip_rate") == at("exit_path") + 1
    assert BY_NAME["exit_path"].only_when_present and BY_NAME["exit_skip_rate"].only_when_present
    assert migrations.FORMAT_COLUMNS[5] == [c for c in COLUMNS if c not in NEW]


def test_the_new_columns_round_trip(tmp_path):
    run = fake_run(tmp_path / "runs" / "r6", p50_ms=1.0, accuracy=0.9, seed=0)
    [row] = migrations.read_run(run).rows
    assert row["stopping_rule"] == "fixed" and parse_cell("latency_p50_ci_pct", row["latency_p50_ci_pct"]) > 0
    written = {**row, "job_id": "w__exit__onnxruntime__t1__b1", "exit_path": "one-call+predictor",
               "exit_skip_rate": 0.25, "stopping_rule": "ceiling"}
    with RunStore.create(tmp_path / "runs", "r6b", {"run_id": "r6b"}) as store:
        store.append(written)
    data = migrations.read_run(tmp_path / "runs" / "r6b")
    assert data.from_version == 6
    back = data.rows[-1]
    assert parse_cell("exit_path", back["exit_path"]) == "one-call+predictor"
    assert parse_cell("exit_skip_rate", back["exit_skip_rate"]) == 0.25
    assert parse_cell("stopping_rule", back["stopping_rule"]) == "ceiling"


def test_a_format_5_run_still_loads_with_the_new_columns_empty(tmp_path):
    run = tmp_path / "runs" / "r5"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"format_version": 5, "run_id": "r5", "config_hash": "ab",
                                              "request": {"suite": "full"}, "measurement_protocol": {}}))
    header = migrations.FORMAT_COLUMNS[5]
    row = {c: "" for c in header}
    row.update(run_id="r5", job_id="w__fp32__onnxruntime__t1__b1", status="ok", workload="w", variant="fp32",
               target="cpu", backend="onnxruntime", precision="fp32", threads="1", batch_size="1",
               family="baseline", latency_p50_ms="0.25", n_windows="5")
    with open(run / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerow(row)
    data = migrations.read_run(run)
    assert data.from_version == 5 and data.info["format_version"] == 6
    [back] = data.rows
    assert list(back) == COLUMNS and back["latency_p50_ms"] == "0.25"
    assert all(back[c] == "" for c in NEW)
    assert "migrated to format 6" in migrations.migrate_in_place(run)
    assert (run / "results.v5.csv").is_file() and RunStore.open(run).rows()[0]["stopping_rule"] == ""
