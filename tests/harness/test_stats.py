import numpy as np
import pytest

from harness.core.measurement import Window
from harness.core.stats import ValidityRules, latency_summary_ms, summarize


def windows(n: int, seconds: float, iterations: int) -> list[Window]:
    return [Window(i * 10**10, i * 10**10 + int(seconds * 1e9), iterations) for i in range(n)]


def test_percentiles_match_numpy_on_known_samples():
    rng = np.random.default_rng(1)
    latency_ns = rng.lognormal(mean=13, sigma=0.4, size=5000).astype(np.int64)
    summary = latency_summary_ms(latency_ns)
    ms = latency_ns / 1e6
    for q in (50, 90, 95, 99):
        assert summary[f"latency_p{q}_ms"] == pytest.approx(np.percentile(ms, q), rel=1e-12)
    assert summary["latency_mean_ms"] == pytest.approx(ms.mean())
    assert summary["latency_std_ms"] == pytest.approx(ms.std(ddof=1))
    assert summary["latency_min_ms"] == ms.min() and summary["latency_max_ms"] == ms.max()


def test_exact_values_on_a_tiny_sample():
    summary = latency_summary_ms(np.array([1_000_000, 2_000_000, 3_000_000, 4_000_000]))
    assert summary["latency_p50_ms"] == 2.5
    assert summary["latency_mean_ms"] == 2.5
    assert summary["latency_max_ms"] == 4.0


def test_mlperf_compliant_job_is_valid_and_throughput_is_median_of_windows():
    latency = np.full(5000, 2_000_000)
    wins = [Window(0, 10 * 10**9, 1000), Window(0, 10 * 10**9, 1200), Window(0, 10 * 10**9, 900),
            Window(0, 10 * 10**9, 1000), Window(0, 10 * 10**9, 900)]
    row = summarize(latency, wins, batch_size=2)
    assert row["valid"] is True and row["invalid_reasons"] == ""
    assert row["throughput_ips"] == pytest.approx(200.0)  # median of 1000*2/10 s, ...
    assert row["n_iterations"] == 5000 and row["n_windows"] == 5


def test_short_windows_and_few_samples_make_a_row_invalid_with_reasons():
    row = summarize(np.full(100, 1_000_000), windows(3, 1.0, 33), batch_size=1)
    assert row["valid"] is False
    assert "shorter than 10 s" in row["invalid_reasons"]
    assert "3 windows < 5" in row["invalid_reasons"]
    assert "100 samples < 662 needed for p99" in row["invalid_reasons"]
    assert "needed for p90" not in row["invalid_reasons"]


def test_pyperf_style_warnings():
    rng = np.random.default_rng(0)
    noisy = (rng.exponential(1.0, 2000) * 1e6).astype(np.int64) + 1
    row = summarize(noisy, windows(5, 10, 400), batch_size=1)
    assert "stdev" in row["warnings"] and "above the mean" in row["warnings"]
    steady = np.full(2000, 1_000_000)
    assert summarize(steady, windows(5, 10, 400), batch_size=1)["warnings"] == ""


def test_throughput_spread_between_windows_warns():
    wins = [Window(0, 10**10, 1000), Window(0, 10**10, 1500)]
    row = summarize(np.full(2500, 1_000_000), wins, 1, ValidityRules(min_windows=2))
    assert "throughput differs by" in row["warnings"]
