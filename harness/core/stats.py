"""Statistics of one job's latency samples, and the validity verdict and warnings stored with its row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.core.measurement import (
    CEILING,
    ENDED_BY,
    FIXED,
    MEDIAN_CI_CONFIDENCE,
    MIN_SAMPLES_P90,
    MIN_SAMPLES_P99,
    MedianInterval,
    Window,
    median_interval,
)

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class ValidityRules:
    """MLPerf Tiny's window rule and LoadGen's sample counts for the percentiles a row shows."""

    min_window_s: float = 10.0
    min_windows: int = 5
    min_samples_p90: int = MIN_SAMPLES_P90
    min_samples_p99: int = MIN_SAMPLES_P99


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


def window_samples_sorted(latency_ns: np.ndarray, windows: list[Window]) -> list[np.ndarray]:
    """Each window's samples, sorted (the samples are in window order); all as one window when the
    windows do not account for them (a target that reports its windows otherwise)."""
    latency = np.asarray(latency_ns, dtype=np.int64)
    counts = [w.n_iterations for w in windows]
    if sum(counts) != latency.size:
        return [np.sort(latency)]
    return [np.sort(part) for part in np.split(latency, np.cumsum(counts)[:-1])]


def ceiling_warning(interval: MedianInterval, windows: list[Window]) -> str:
    timed_s = (windows[-1].end_ns - windows[0].start_ns) / 1e9
    return (f"the statistical stopping rule reached its ceiling ({len(windows)} windows, {timed_s:.1f} s) "
            f"before the median was known to its target: {MEDIAN_CI_CONFIDENCE:.0%} CI +-"
            f"{interval.half_width_pct:.2f}% (order statistics +-{interval.order_pct:.2f}%, window medians "
            f"+-{interval.batch_pct or 0:.2f}%); the machine was noisy or drifting")


def summarize(latency_ns: np.ndarray, windows: list[Window], batch_size: int,
              rules: ValidityRules = ValidityRules(), stopping_rule: str | None = None) -> dict:
    """Row metrics, `valid`, `invalid_reasons` and `warnings` for one job's timed windows.
    `stopping_rule` is what ended them (measurement.ENDED_BY); a target that does not say ran the fixed
    rule, the only one there was before."""
    if stopping_rule not in (None, *ENDED_BY):
        raise ValueError(f"stopping rule {stopping_rule!r}; accepted: {', '.join(ENDED_BY)}")
    row = latency_summary_ms(latency_ns)
    interval = median_interval(window_samples_sorted(latency_ns, windows))
    row["latency_p50_ci_pct"] = interval.half_width_pct
    row["stopping_rule"] = stopping_rule or FIXED
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
    if stopping_rule == CEILING:
        warnings.append(ceiling_warning(interval, windows))
    if len(throughputs) > 1:
        spread = (max(throughputs) - min(throughputs)) / row["throughput_ips"]
        if spread >= THROUGHPUT_SPREAD_WARN_FRACTION:
            warnings.append(f"throughput differs by {spread:.0%} between windows")

    row["valid"] = not reasons
    row["invalid_reasons"] = "; ".join(reasons)
    row["warnings"] = "; ".join(warnings)
    return row
