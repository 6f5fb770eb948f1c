"""The stopping rule, checked against a fake clock so that the test is exact and machine-independent."""

from harness.core import measurement
from harness.core.measurement import MeasurementProtocol, run_windows


class FakeClock:
    def __init__(self):
        self.now = 0
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.now


def test_windows_stop_when_both_duration_and_iterations_are_met(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(measurement, "clock_ns", clock)
    calls = []

    def run_once():  # every inference takes exactly 1 ms
        calls.append(clock.now)
        clock.now += 1_000_000

    settings = MeasurementProtocol(warmup_min_iterations=5, warmup_min_s=0.02, n_windows=3,
                                window_min_s=0.01, window_min_iterations=50)
    seen = []
    result = run_windows(run_once, (), settings, on_window=lambda d, t: seen.append((d, t)))
    # warm-up: 20 ms of 1 ms calls beats the 5-iteration minimum
    assert result.warmup_iterations == 20
    # windows: 50 iterations (50 ms) beat the 10 ms minimum
    assert [w.n_iterations for w in result.windows] == [50, 50, 50]
    assert len(result.latency_ns) == 150
    # only the inference sits between the two clock reads: every latency is exactly 1 ms
    assert set(result.latency_ns) == {1_000_000}
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert len(calls) == 20 + 150


def test_duration_dominates_for_fast_models(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(measurement, "clock_ns", clock)

    def run_once():
        clock.now += 100_000  # 0.1 ms

    settings = MeasurementProtocol(warmup_min_iterations=1, warmup_min_s=0.0, n_windows=2,
                                window_min_s=0.05, window_min_iterations=10)
    result = run_windows(run_once, (), settings)
    assert [w.n_iterations for w in result.windows] == [500, 500]
    assert all(w.duration_s >= 0.05 for w in result.windows)
