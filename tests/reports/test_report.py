"""Reports show what came from user files escaped, and their Pareto fronts are right."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import fake_run

from reports.pareto import pareto_mask
from reports.report import write_report


def test_pareto_front_keeps_only_undominated_points():
    latency = np.array([1.0, 2.0, 3.0, 2.5, 0.5])
    accuracy = np.array([0.90, 0.95, 0.97, 0.94, 0.80])
    assert pareto_mask(latency, accuracy).tolist() == [True, True, True, False, True]


def test_html_report_escapes_names_from_user_files(tmp_path):
    run = fake_run(tmp_path / "runs" / "r", 1.0, 0.9, seed=0)
    text = (run / "results.csv").read_text().replace(",w,", ",<script>alert(1)</script>,")
    (run / "results.csv").write_text(text)
    html_path, _ = write_report(run)
    html = html_path.read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_gpu_copy_columns_appear_only_when_a_backend_reported_them():
    import pandas as pd

    from reports.render import table_cells

    cpu = pd.DataFrame([{"workload": "w", "h2d_ms": float("nan"), "d2h_ms": float("nan")}])
    gpu = pd.DataFrame([{"workload": "w", "h2d_ms": 0.012, "d2h_ms": 0.008}])
    assert "H2D ms" not in table_cells(cpu)[0]
    headers, body = table_cells(gpu)
    assert "H2D ms" in headers and body[0][headers.index("D2H ms")] == "0.0080"


def test_an_accuracy_delta_does_not_depend_on_the_order_jobs_ran_in(tmp_path):
    """The baseline failed first and --resume measured it after the variant: the variant's row has no
    delta on disk, and reading the run takes it from the same run's baseline."""
    from harness.core.rundir import RunStore
    from reports.load import load_run

    store = RunStore.create(tmp_path, "run", {"run_id": "run"})
    key = {"workload": "w", "target": "cpu", "backend": "onnxruntime", "precision": "fp32", "threads": 1,
           "batch_size": 1}
    store.append({**key, "run_id": "run", "job_id": "w__fp32", "variant": "fp32", "family": "baseline",
                  "status": "failed", "reason": "agent exited mid-job"})
    store.append({**key, "run_id": "run", "job_id": "w__int8", "variant": "int8", "family": "quantize",
                  "precision": "int8", "status": "ok", "accuracy": 0.95})
    store.append({**key, "run_id": "run", "job_id": "w__fp32", "variant": "fp32", "family": "baseline",
                  "status": "ok", "accuracy": 0.97, "accuracy_delta": 0.0})
    _, rows = load_run(store.dir)
    by_variant = rows.set_index("variant")
    assert by_variant.loc["int8", "accuracy_delta"] == pytest.approx(-0.02)
    assert by_variant.loc["fp32", "accuracy_delta"] == 0.0
