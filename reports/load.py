"""Reading a run directory into a tidy table (pandas), one row per job."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.core.errors import ConfigError
from harness.core.rundir import RunStore

NUMERIC = ["accuracy", "accuracy_delta", "latency_mean_ms", "latency_std_ms", "latency_min_ms",
           "latency_max_ms", "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
           "throughput_ips", "n_iterations", "n_windows", "model_bytes", "params", "macs", "weight_sparsity",
           "exit_rate", "expected_macs",
           "peak_rss_mb",
           "threads", "batch_size", "n_eval", "energy_per_inference_mj", "energy_per_inference_above_idle_mj",
           "avg_power_w", "idle_power_w", "power_samples", "h2d_ms", "d2h_ms", "clock_offset_us",
           "clock_uncertainty_us"]


def load_run(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    """run.json and results.csv; when a job was retried (--resume after a failure) its last row wins."""
    run_dir = Path(run_dir)
    if not (run_dir / "results.csv").is_file():
        raise ConfigError(f"{run_dir}: no results.csv here; expected a run directory such as runs/latest")
    store = RunStore(run_dir)
    info = json.loads(store.run_json.read_text()) if store.run_json.is_file() else {}
    rows = pd.read_csv(store.results_csv, dtype=str, keep_default_na=False)
    rows = rows.drop_duplicates("job_id", keep="last").reset_index(drop=True)
    for column in NUMERIC:
        if column in rows:
            rows[column] = pd.to_numeric(rows[column].replace("", None), errors="coerce")
    rows["valid"] = rows["valid"].map({"True": True, "False": False})
    return info, rows

