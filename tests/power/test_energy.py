"""Energy accounting: exact integrals on known traces, medians over windows, and the validity rules."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core.measurement import Window
from harness.core.traces import TraceSlice
from power.emulators.profile import steps_and_ramps
from power.energy import job_energy, min_window_s, window_energy_j
from power.trace import PowerTrace

S = 1_000_000_000


def trace_of(times_s, watts) -> TraceSlice:
    t = (np.asarray(times_s) * S).astype(np.int64)
    w = np.asarray(watts, dtype=float)
    return TraceSlice(t, np.full(len(t), 5.0), w / 5.0, w)


def test_linear_power_integrates_exactly_with_interpolated_edges():
    trace = trace_of([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])  # P(t) = t
    # window edges between samples: integral of t from 0.5 to 3.25 = (3.25^2 - 0.5^2) / 2
    assert window_energy_j(trace, int(0.5 * S), int(3.25 * S)) == pytest.approx((3.25**2 - 0.25) / 2)


def test_a_window_the_trace_does_not_cover_is_an_error():
    with pytest.raises(ValueError):
        window_energy_j(trace_of([1, 2], [1, 1]), 0, 2 * S)


def test_sampled_profile_converges_to_the_exact_energy():
    profile = steps_and_ramps()
    t = np.arange(0, 30, 0.001)
    trace = trace_of(t, [profile.power_w(x) for x in t])
    assert window_energy_j(trace, 3 * S, 27 * S) == pytest.approx(profile.energy_j(3, 27), rel=1e-3)


def test_job_energy_per_inference_above_idle_and_median_over_windows():
    trace = trace_of(np.arange(0, 31, 0.01), np.r_[np.full(1000, 2.0), np.full(1000, 4.0), np.full(1100, 3.0)])
    windows = [Window(0, 10 * S, 1000), Window(10 * S, 20 * S, 1000), Window(20 * S, 30 * S, 2000)]
    result = job_energy(trace, windows, batch_size=2, idle_power_w=1.0, expected_period_s=0.01)
    # per inference: 20 J / 2000, 40 J / 2000 (edge sample at 10 s is 4 W: ~40 J), 30 J / 4000
    assert result.energy_per_inference_mj == pytest.approx(10.0, rel=2e-3)
    assert result.energy_per_inference_above_idle_mj == pytest.approx(5.0, rel=5e-3)
    assert result.avg_power_w == pytest.approx(3.0, rel=2e-3)
    assert result.power_samples > 2900 and result.invalid_reasons == []


def test_too_few_samples_and_a_silent_meter_are_reasons():
    slow = trace_of(np.arange(0, 10.5, 0.5), np.ones(21))  # 2 Hz
    result = job_energy(slow, [Window(0, 5 * S, 10)], 1, None, expected_period_s=0.5)
    assert result.invalid_reasons == ["power: window 1 holds 11 samples < 20"]
    gap = trace_of([0, 0.1, 0.2, 4.8, 4.9, 5.0], np.ones(6))
    result = job_energy(gap, [Window(0, 5 * S, 10)], 1, None, expected_period_s=0.1)
    assert "no sample for 4.6 s" in result.invalid_reasons[0]
    assert result.energy_per_inference_mj is None


def test_slow_meters_get_longer_windows():
    assert min_window_s(2.0) == pytest.approx(12.5)      # 20 samples at 2 Hz, with a 25% margin
    assert min_window_s(1000.0) == pytest.approx(0.025)


def test_trace_between_keeps_one_sample_beyond_each_edge():
    trace = PowerTrace()
    for k in range(10):
        trace.append(k * S, 5.0, 0.2, 1.0)
    part = trace.between(int(2.5 * S), int(5.5 * S))
    assert list(part.t_ns // S) == [2, 3, 4, 5, 6]
