"""Statistics of one job's latency samples, and the validity verdict and warnings stored with its row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.core.measurement import Window

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class ValidityRules:
    """MLPerf Tiny's window rule and LoadGen's sample counts for the percentiles a row shows."""

    min_window_s: float = 10.0
    min_windows: int = 5
    min_samples_p90: int = 64
    min_samples_p99: int = 662


# pyperf's thresholds: a spread this large means the machine was not quiet.
STDEV_WARN_FRACTION = 0.10
OUTLIER_WARN_FRACTION = 0.50
THROUGHPUT_SPREAD_WARN_FRACTION = 0.10


def latency_summary_ms(latency_ns: np.ndarray) -> dict:
    ms = np.asarray(latency_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise ValueError("no latency samples")
    summary = {
        "latency_mean_ms": float(ms.mean()),
        "latency_std_ms": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        "latency_min_ms": float(ms.min()),
        "latency_max_ms": float(ms.max()),
    }
    for q, value in zip(PERCENTILES, np.percentile(ms, PERCENTILES)):
        summary[f"latency_p{q}_ms"] = float(value)
    return summary


def window_throughputs_ips(windows: list[Window], batch_size: int) -> list[float]:
    return [w.n_iterations * batch_size / w.duration_s for w in windows]


def summarize(latency_ns: np.ndarray, windows: list[Window], batch_size: int,
              rules: ValidityRules = ValidityRules()) -> dict:
    """Row metrics, `valid`, `invalid_reasons` and `warnings` for one job's timed windows."""
    row = latency_summary_ms(latency_ns)
    throughputs = window_throughputs_ips(windows, batch_size)
    row["throughput_ips"] = float(np.median(throughputs))
    row["n_iterations"] = len(latency_ns)
    row["n_windows"] = len(windows)
    row["window_min_s"] = min(w.duration_s for w in windows)

    reasons = []
    short = [i for i, w in enumerate(windows) if w.duration_s < rules.min_window_s]
    if short:
        reasons.append(f"{len(short)} of {len(windows)} windows shorter than {rules.min_window_s:g} s "
                       f"(shortest {row['window_min_s']:.2f} s)")
    if len(windows) < rules.min_windows:
        reasons.append(f"{len(windows)} windows < {rules.min_windows}")
    n = row["n_iterations"]
    if n < rules.min_samples_p99:
        reasons.append(f"{n} samples < {rules.min_samples_p99} needed for p99")
    if n < rules.min_samples_p90:
        reasons.append(f"{n} samples < {rules.min_samples_p90} needed for p90")

    warnings = []
    mean = row["latency_mean_ms"]
    if row["latency_std_ms"] >= STDEV_WARN_FRACTION * mean:
        warnings.append(f"stdev is {row['latency_std_ms'] / mean:.0%} of the mean (>= 10%): unstable")
    if row["latency_min_ms"] <= (1 - OUTLIER_WARN_FRACTION) * mean:
        warnings.append(f"min {row['latency_min_ms']:.3g} ms is >= 50% below the mean")
    if row["latency_max_ms"] >= (1 + OUTLIER_WARN_FRACTION) * mean:
        warnings.append(f"max {row['latency_max_ms']:.3g} ms is >= 50% above the mean")
    if len(throughputs) > 1:
        spread = (max(throughputs) - min(throughputs)) / row["throughput_ips"]
        if spread >= THROUGHPUT_SPREAD_WARN_FRACTION:
            warnings.append(f"throughput differs by {spread:.0%} between windows")

    row["valid"] = not reasons
    row["invalid_reasons"] = "; ".join(reasons)
    row["warnings"] = "; ".join(warnings)
    return row
