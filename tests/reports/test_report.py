"""Reports show what came from user files escaped, and their Pareto fronts are right."""

from __future__ import annotations

import numpy as np
from test_compare import fake_run

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
