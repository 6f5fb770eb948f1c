"""The statistical stopping rule, against a fake clock (exact and machine-independent): it stops early on a
steady call, runs to its ceiling on a drifting or noisy one and says so, and leaves the fixed rule as it was.
Also: the median's interval, the t quantiles it uses, the [protocol] keys and energy's fixed windows."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats as scipy_stats

from harness.app.suite import parse_protocol, with_stopping
from harness.core import measurement
from harness.core.config import Table
from harness.core.errors import ConfigError
from harness.core.measurement import (
    CEILING,
    ENERGY_NEEDS_FIXED_RULE,
    FIXED,
    STATISTICAL,
    MeasurementProtocol,
    median_interval,
    run_windows,
    t_quantile,
)
from harness.core.stats import ceiling_warning, summarize


class FakeClock:
    def __init__(self):
        self.now = 0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(measurement, "clock_ns", fake)
    return fake


def statistical(**changes) -> MeasurementProtocol:
    """Half-second windows of 1 ms calls: 500 samples each, 3 windows (1,500) past LoadGen's 662 for p99."""
    settings = dict(warmup_min_iterations=5, warmup_min_s=0.0, window_min_iterations=10, stopping=STATISTICAL,
                    statistical_window_s=0.5, min_windows=3, max_windows=8, max_timed_s=60.0, median_ci_pct=1.0)
    return MeasurementProtocol(**{**settings, **changes})


def call_taking(clock: FakeClock, latency_ns):
    """A call that advances the fake clock by latency_ns(i) on its i-th timed call (warm-up included)."""
    count = [0]

    def call():
        clock.now += latency_ns(count[0])
        count[0] += 1
    return call


def summarized(timed) -> dict:
    latency = np.frombuffer(timed.latency_ns, dtype=np.int64)
    return summarize(latency, timed.windows, 1, stopping_rule=timed.stopping_rule)


def test_a_steady_call_stops_at_min_windows_with_the_median_known(clock):
    noise = random.Random(0)
    call = call_taking(clock, lambda i: 1_000_000 + noise.randrange(-2_000, 2_000))  # +-0.2%
    seen = []
    timed = run_windows(call, (), statistical(), on_window=lambda done, planned: seen.append((done, planned)))
    assert timed.stopping_rule == STATISTICAL
    assert len(timed.windows) == 3 and all(500 <= w.n_iterations <= 501 for w in timed.windows)
    assert seen == [(1, 8), (2, 8), (3, 8)]  # progress counts towards the ceiling
    row = summarized(timed)
    assert row["stopping_rule"] == "statistical" and row["latency_p50_ci_pct"] < 1.0
    assert "ceiling" not in row["warnings"]


def test_it_waits_for_the_samples_p99_needs(clock):
    # 0.1 s windows of 1 ms calls: 100 samples each, so 7 windows before 662 samples, however steady
    call = call_taking(clock, lambda i: 1_000_000)
    timed = run_windows(call, (), statistical(statistical_window_s=0.1, max_windows=20))
    assert timed.stopping_rule == STATISTICAL and len(timed.windows) == 7 and len(timed.latency_ns) == 700


def test_a_drifting_call_runs_to_the_ceiling_and_the_row_says_so(clock):
    # 2% slower each window: every window is steady inside, so order statistics of all samples alone
    # would call the median known; the windows' medians disagree, and batch means see it
    noise = random.Random(1)
    call = call_taking(clock, lambda i: int(1_000_000 * (1 + 0.02 * (i // 500)) + noise.randrange(-1_000, 1_000)))
    timed = run_windows(call, (), statistical(warmup_min_iterations=0, max_windows=6))
    assert timed.stopping_rule == CEILING and len(timed.windows) == 6
    ends = np.cumsum([w.n_iterations for w in timed.windows])
    interval = median_interval([sorted(timed.latency_ns[end - w.n_iterations:end])
                                for w, end in zip(timed.windows, ends)])
    assert interval.order_pct < 1.0 < interval.batch_pct
    row = summarized(timed)
    assert row["stopping_rule"] == "ceiling" and row["latency_p50_ci_pct"] > 1.0
    assert "statistical stopping rule reached its ceiling (6 windows" in row["warnings"]


def test_a_slow_steady_call_lacks_only_samples_and_the_warning_does_not_blame_noise(clock):
    # 10 ms calls, 0.2 s windows of 20: the median is tight after the first windows, but the time ceiling
    # (3 s) comes at 300 samples, before p99's 662
    noise = random.Random(3)
    call = call_taking(clock, lambda i: 10_000_000 + noise.randrange(0, 20_000))
    settings = statistical(statistical_window_s=0.2, window_min_iterations=20, max_windows=20, max_timed_s=3.0)
    timed = run_windows(call, (), settings)
    assert timed.stopping_rule == CEILING and len(timed.windows) == 15 and len(timed.latency_ns) == 300
    latency = np.frombuffer(timed.latency_ns, dtype=np.int64)
    warning = summarize(latency, timed.windows, 1, stopping_rule=CEILING, protocol=settings)["warnings"]
    assert "reached its ceiling (15 windows, 3.0 s) with 300 samples < 662 needed for p99; the median was " \
           "known to its target (99% CI +-" in warning
    assert "<= +-1%): not noise, only the samples were missing" in warning
    assert "noisy" not in warning and "drifting" not in warning
    # without the run's protocol the target is unknown: the samples are named, the CI shown, nothing blamed
    unknown = summarized(timed)["warnings"]
    assert "with 300 samples < 662 needed for p99 (the median's 99% CI +-" in unknown
    assert "noisy" not in unknown and "target" not in unknown


def windows_of(counts: list[int]) -> list[measurement.Window]:
    return [measurement.Window(i * 10**9, (i + 1) * 10**9, n) for i, n in enumerate(counts)]


def test_the_ceiling_warning_names_each_unmet_condition():
    steady = measurement.MedianInterval(1e6, 1000, 2, 0.1, 0.2)
    # too few windows (a ceiling below min_windows, or a target that stopped early), the samples there
    text = ceiling_warning(steady, windows_of([500, 500]), statistical(min_windows=3))
    assert "(2 windows, 2.0 s) with 2 windows < min_windows 3; the median was known to its target" in text
    assert "only the windows were missing" in text and "noisy" not in text
    # windows and samples both short
    few = measurement.MedianInterval(1e6, 200, 2, 0.1, 0.2)
    text = ceiling_warning(few, windows_of([100, 100]), statistical(min_windows=3))
    assert "with 2 windows < min_windows 3; 200 samples < 662 needed for p99;" in text
    assert "only the windows and samples were missing" in text
    # the CI: only then the machine is blamed, the target named
    wide = measurement.MedianInterval(1e6, 4000, 8, 0.3, 2.5)
    text = ceiling_warning(wide, windows_of([500] * 8), statistical(median_ci_pct=1.0))
    assert text.endswith("with the median's 99% CI +-2.50% (order statistics +-0.30%, window medians +-2.50%) "
                         "> +-1% target: the machine was noisy or drifting")
    # the samples short and the CI wide: both named, the noise blamed for the CI
    both = measurement.MedianInterval(1e6, 300, 8, 0.3, 2.5)
    text = ceiling_warning(both, windows_of([40] * 8), statistical(median_ci_pct=1.0))
    assert "with 300 samples < 662 needed for p99; the median's 99% CI +-2.50%" in text
    assert text.endswith("> +-1% target: the machine was noisy or drifting")
    # no protocol: with the samples there, the CI is what the ceiling lacked
    assert ceiling_warning(wide, windows_of([500] * 8)).endswith("window medians +-2.50%): the machine was "
                                                                 "noisy or drifting")


def test_the_time_ceiling_never_ends_before_min_windows(clock):
    # windows of 1,000 iterations of ~50 ms: 50 s each, 5% slower each window (the median is never known);
    # max_timed_s = 30 s is passed to reach min_windows = 3, and the rule stops there
    call = call_taking(clock, lambda i: int(50_000_000 * (1 + 0.05 * (i // 1000))))
    timed = run_windows(call, (), statistical(warmup_min_iterations=0, window_min_iterations=1000, max_timed_s=30.0,
                                              max_windows=20))
    assert timed.stopping_rule == CEILING and len(timed.windows) == 3
    assert (timed.windows[-1].end_ns - timed.windows[0].start_ns) / 1e9 == pytest.approx(157.5)


def test_a_noisy_call_stops_at_the_time_ceiling(clock):
    noise = random.Random(2)
    call = call_taking(clock, lambda i: int(1_000_000 * noise.lognormvariate(0, 1.0)))
    timed = run_windows(call, (), statistical(max_windows=100, max_timed_s=2.0))
    assert timed.stopping_rule == CEILING
    elapsed_s = (timed.windows[-1].end_ns - timed.windows[0].start_ns) / 1e9
    assert 2.0 <= elapsed_s < 2.0 + 0.5 + 0.1  # the window that crossed 2 s was the last


def test_the_fixed_rule_is_unchanged_and_never_computes_an_interval(clock, monkeypatch):
    def no_interval(*args):
        raise AssertionError("the fixed rule decided on precision")
    monkeypatch.setattr(measurement, "median_interval", no_interval)
    call = call_taking(clock, lambda i: 1_000_000)
    settings = MeasurementProtocol(warmup_min_iterations=5, warmup_min_s=0.02, n_windows=3, window_min_s=0.01,
                                   window_min_iterations=50)
    assert settings.stopping == FIXED  # the default
    timed = run_windows(call, (), settings)
    assert timed.stopping_rule == FIXED and timed.warmup_iterations == 20
    assert [w.n_iterations for w in timed.windows] == [50, 50, 50]


def test_every_row_gets_the_interval_and_a_target_that_does_not_say_ran_the_fixed_rule():
    rng = np.random.default_rng(0)
    latency = rng.normal(1e6, 2e4, 3000).astype(np.int64)
    windows = [measurement.Window(i * 10**10, (i + 1) * 10**10, 1000) for i in range(3)]
    row = summarize(latency, windows, 1)
    assert row["stopping_rule"] == "fixed" and 0 < row["latency_p50_ci_pct"] < 1
    with pytest.raises(ValueError, match="stopping rule 'sometimes'; accepted: fixed, statistical, ceiling"):
        summarize(latency, windows, 1, stopping_rule="sometimes")


def test_the_order_statistic_interval_is_the_textbook_one_and_host_and_agent_agree():
    rng = np.random.default_rng(3)
    samples = rng.lognormal(13, 0.3, 2001).astype(np.int64)
    parts = np.split(samples, [700, 1400])
    on_host = median_interval([np.sort(p) for p in parts])                 # numpy arrays
    on_agent = median_interval([sorted(int(v) for v in p) for p in parts])  # plain lists
    assert on_host == on_agent
    ordered = np.sort(samples)
    n, z = len(samples), scipy_stats.norm.ppf(0.995)
    lower, upper = int(np.floor(n / 2 - z * np.sqrt(n) / 2)) - 1, int(np.ceil(n / 2 + z * np.sqrt(n) / 2))
    median = np.median(samples)
    assert on_host.median_ns == median
    assert on_host.order_pct == pytest.approx((ordered[upper] - ordered[lower]) / 2 / median * 100)
    window_medians = [np.median(p) for p in parts]
    batch = scipy_stats.t.ppf(0.995, 2) * np.std(window_medians, ddof=1) / np.sqrt(3)
    assert on_host.batch_pct == pytest.approx(batch / median * 100)
    assert on_host.half_width_pct == max(on_host.order_pct, on_host.batch_pct)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 10, 19, 30, 99])
def test_t_quantiles_match_scipy(df):
    assert t_quantile(0.99, df) == pytest.approx(scipy_stats.t.ppf(0.995, df), rel=1e-9)


def protocol_from(values: dict) -> MeasurementProtocol:
    return parse_protocol(Table(values, "suite.toml", "protocol"))


@pytest.mark.parametrize("values, message", [
    ({"stopping": "sometimes"}, "suite.toml: key 'protocol.stopping' = 'sometimes'; accepted: fixed, statistical"),
    ({"min_windows": 1}, "key 'protocol.min_windows' = 1: accepted: values >= 2"),
    ({"min_windows": 5, "max_windows": 4}, "key 'protocol.max_windows' = 4: accepted: values >= min_windows (5)"),
    ({"median_ci_pct": 0}, "key 'protocol.median_ci_pct' = 0.0: accepted: values >= 0.01 and <= 100.0"),
    ({"max_timed_s": "30"}, "key 'protocol.max_timed_s' = '30': expected float"),
    ({"stoping": "fixed"}, "key 'protocol.stoping' is not a known key"),
    ({"stopping": 1}, "key 'protocol.stopping' = 1: expected a string; accepted: fixed, statistical"),
    ({"stopping": True}, "key 'protocol.stopping' = True: expected a string; accepted: fixed, statistical"),
])
def test_protocol_errors_name_the_key_and_what_is_accepted(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        protocol_from(values)


def test_the_suite_keys_reach_the_protocol():
    settings = protocol_from({"stopping": "statistical", "statistical_window_s": 0.5, "min_windows": 4,
                              "median_ci_pct": 0.5, "max_windows": 9, "max_timed_s": 12})
    assert (settings.stopping, settings.statistical_window_s, settings.min_windows, settings.median_ci_pct,
            settings.max_windows, settings.max_timed_s) == ("statistical", 0.5, 4, 0.5, 9, 12.0)
    assert settings.planned_windows == 9 and settings.window_s == 0.5


def test_a_fixed_protocol_snapshots_as_before_so_older_runs_resume():
    assert set(MeasurementProtocol().snapshot()) == {"warmup_min_iterations", "warmup_min_s", "n_windows",
                                                     "window_min_s", "window_min_iterations"}
    assert MeasurementProtocol(stopping=STATISTICAL).snapshot()["max_windows"] == 20


def test_energy_keeps_the_fixed_rule_saying_so(tiny_files):
    from harness.app.suite import find_suite

    suite = find_suite(str(tiny_files["suite"]))
    chosen, notes = with_stopping(suite, "statistical", measures_energy=False)
    assert chosen.protocol.stopping == STATISTICAL and notes == []
    kept, notes = with_stopping(suite, "statistical", measures_energy=True)
    assert kept.protocol.stopping == FIXED and notes == [ENERGY_NEEDS_FIXED_RULE]
    assert kept.protocol.n_windows == suite.protocol.n_windows


def test_a_run_with_a_power_meter_resolves_to_the_fixed_rule(tiny_files):
    from harness.app.runner import BenchRequest, resolve

    run = resolve(BenchRequest(suite=str(tiny_files["suite"]), workloads=[str(tiny_files["workload"])],
                               power="emulated-ina219", stopping="statistical"))
    assert run.suite.protocol.stopping == FIXED and ENERGY_NEEDS_FIXED_RULE in run.notes
    run = resolve(BenchRequest(suite=str(tiny_files["suite"]), workloads=[str(tiny_files["workload"])],
                               stopping="statistical"))
    assert run.suite.protocol.stopping == STATISTICAL and ENERGY_NEEDS_FIXED_RULE not in run.notes


def test_a_bench_run_under_the_statistical_rule_says_so_in_its_rows(tiny_files):
    from harness.app.cli import main
    from harness.core.rundir import RunStore

    code = main(["bench", "--suite", str(tiny_files["suite"]), "--backend", "onnxruntime", "--stopping",
                 "statistical", "--runs-dir", str(tiny_files["runs"]), "--no-report", "--quiet"])
    assert code == 0
    store = RunStore.open(tiny_files["runs"] / "latest")
    [row] = store.rows()
    assert row["stopping_rule"] in ("statistical", "ceiling") and float(row["latency_p50_ci_pct"]) > 0
    assert store.run_info()["measurement_protocol"]["stopping"] == "statistical"
    assert (row["stopping_rule"] == "ceiling") == ("ceiling" in row["warnings"])
