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
    MeasurementProtocol,
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


def ceiling_warning(interval: MedianInterval, windows: list[Window],
                    protocol: MeasurementProtocol | None = None) -> str:
    """What a job that reached the statistical rule's ceiling lacked: the windows (fewer than min_windows),
    the samples (fewer than LoadGen's 662 for p99) or the median's precision (its 99% CI wider than
    +-median_ci_pct). Noise or drift is blamed only for the last: a slow model's windows hold few samples,
    and a tight median without them is no fault of the machine.

    Without `protocol` (a caller that does not pass the run's) min_windows and median_ci_pct are unknown:
    the samples are still judged, and the CI is blamed only when the samples were there (the rule never
    ends at its ceiling with the windows short, max_windows >= min_windows and the time ceiling waits for
    min_windows, so then the CI was what it lacked)."""
    timed_s = (windows[-1].end_ns - windows[0].start_ns) / 1e9
    ci = (f"{MEDIAN_CI_CONFIDENCE:.0%} CI +-{interval.half_width_pct:.2f}% (order statistics "
          f"+-{interval.order_pct:.2f}%, window medians +-{interval.batch_pct or 0:.2f}%)")
    unmet, missing = [], []
    if protocol is not None and interval.n_windows < protocol.min_windows:
        unmet.append(f"{interval.n_windows} windows < min_windows {protocol.min_windows}")
        missing.append("windows")
    if interval.n_samples < MIN_SAMPLES_P99:
        unmet.append(f"{interval.n_samples} samples < {MIN_SAMPLES_P99} needed for p99")
        missing.append("samples")
    if protocol is not None:
        wide = interval.half_width_pct > protocol.median_ci_pct
        target = f" > +-{protocol.median_ci_pct:g}% target"
    else:
        wide, target = not unmet, ""
    said = f"the statistical stopping rule reached its ceiling ({len(windows)} windows, {timed_s:.1f} s)"
    if wide:
        wide_ci = f"the median's {ci}{target}"
        return f"{said} with {'; '.join([*unmet, wide_ci])}: the machine was noisy or drifting"
    more = ("longer windows (statistical_window_s) or a higher ceiling (max_windows, max_timed_s) give "
            "them")
    if protocol is None:
        return f"{said} with {'; '.join(unmet)} (the median's {ci}); {more}"
    return (f"{said} with {'; '.join(unmet) or 'its conditions met'}; the median was known to its target "
            f"({ci} <= +-{protocol.median_ci_pct:g}%): not noise, only the {' and '.join(missing) or 'ceiling'}"
            f" {'were' if missing else 'was'} missing; {more}")


def summarize(latency_ns: np.ndarray, windows: list[Window], batch_size: int,
              rules: ValidityRules = ValidityRules(), stopping_rule: str | None = None,
              protocol: MeasurementProtocol | None = None) -> dict:
    """Row metrics, `valid`, `invalid_reasons` and `warnings` for one job's timed windows.
    `stopping_rule` is what ended them (measurement.ENDED_BY); a target that does not say ran the fixed
    rule, the only one there was before. `protocol`, the run's, lets a ceiling's warning name its
    min_windows and median_ci_pct (see ceiling_warning)."""
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
        warnings.append(ceiling_warning(interval, windows, protocol))
    if len(throughputs) > 1:
        spread = (max(throughputs) - min(throughputs)) / row["throughput_ips"]
        if spread >= THROUGHPUT_SPREAD_WARN_FRACTION:
            warnings.append(f"throughput differs by {spread:.0%} between windows")

    row["valid"] = not reasons
    row["invalid_reasons"] = "; ".join(reasons)
    row["warnings"] = "; ".join(warnings)
    return row
