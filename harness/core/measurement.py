"""The measurement protocol: warm-up, then timed windows with a stopping rule.

Two stopping rules. `fixed` (MLPerf Tiny's): `n_windows` windows of at least `window_min_s` each.
`statistical`: windows of `statistical_window_s` until the median latency is known to `median_ci_pct`
at 99% confidence (and there are the samples LoadGen needs for p90 and p99), or until a ceiling:
`max_windows` or `max_timed_s` of windows, whichever comes first, but never fewer than `min_windows`
windows. The floor wins over the time: a slow model whose windows run window_min_iterations iterations
each (1,000 of 50 ms: 50 s a window) runs min_windows of them however far past max_timed_s that takes.

This module runs inside the agent on a board too, so it stays on the standard library and Python 3.8
syntax. Timing uses the monotonic nanosecond clock that power sources on the same machine share.
Only the inference call sits between the two clock reads; bookkeeping (and the stopping decision)
happens outside them, between windows.
"""

from __future__ import annotations

import math
import statistics
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

clock_ns = time.monotonic_ns

FIXED, STATISTICAL, CEILING = "fixed", "statistical", "ceiling"
STOPPING_RULES = (FIXED, STATISTICAL)          # what a suite may ask for
ENDED_BY = (FIXED, STATISTICAL, CEILING)       # what a row may say ended its windows

# The confidence of every median interval edgebench states (the latency_p50_ci_pct column's).
MEDIAN_CI_CONFIDENCE = 0.99
# LoadGen's early-stopping sample counts (confidence 0.99) for the percentiles a row shows.
MIN_SAMPLES_P90 = 64
MIN_SAMPLES_P99 = 662

ENERGY_NEEDS_FIXED_RULE = (
    "energy is measured over MLPerf Tiny's fixed windows (a meter needs its samples in every window): "
    "stopping = \"statistical\" falls back to the fixed rule's n_windows windows for this run")


@dataclass
class MeasurementProtocol:
    """How long to warm up and how long each timed window runs. Warm-up and each window stop only when
    BOTH their minimum duration and their minimum iteration count are met (MLPerf LoadGen's rule).
    The stopping rule decides how many windows: see the module's docstring."""

    warmup_min_iterations: int = 10
    warmup_min_s: float = 0.5
    n_windows: int = 5
    window_min_s: float = 10.0
    window_min_iterations: int = 100
    stopping: str = FIXED
    # the statistical rule: its windows' minimum duration (window_min_iterations still applies) ...
    statistical_window_s: float = 1.0
    min_windows: int = 3
    # ... the precision it stops at: the 99% CI of the median within +-median_ci_pct % of the median ...
    median_ci_pct: float = 1.0
    # ... and its ceiling: whichever comes first (a window is never cut short), but never fewer than
    # min_windows windows: max_timed_s is passed when min_windows windows take longer
    max_windows: int = 20
    max_timed_s: float = 30.0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def planned_windows(self) -> int:
        """The windows the rule runs at most (the fixed rule: exactly)."""
        return self.max_windows if self.stopping == STATISTICAL else self.n_windows

    @property
    def window_s(self) -> float:
        """Each window's minimum duration under the rule in force."""
        return self.statistical_window_s if self.stopping == STATISTICAL else self.window_min_s

    def snapshot(self) -> dict:
        """The settings that decide how a job is measured: the statistical rule's keys only when it is the
        rule (so that a run started before they existed, or with other unused values, still resumes)."""
        settings = self.to_dict()
        if self.stopping == FIXED:
            for key in STATISTICAL_KEYS:
                settings.pop(key)
        return settings

    def for_energy(self) -> MeasurementProtocol:
        """The fixed rule's long windows: energy per inference is integrated over each window, and a meter
        needs enough of its samples in every one."""
        return replace(self, stopping=FIXED)


STATISTICAL_KEYS = ("stopping", "statistical_window_s", "min_windows", "median_ci_pct", "max_windows",
                    "max_timed_s")


@dataclass
class Window:
    start_ns: int
    end_ns: int
    n_iterations: int

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


@dataclass
class TimedRun:
    """Every iteration's latency, in order, the windows that hold them, and the rule that ended them."""

    latency_ns: array = field(default_factory=lambda: array("q"))
    windows: list[Window] = field(default_factory=list)
    warmup_iterations: int = 0
    warmup_s: float = 0.0
    stopping_rule: str = FIXED   # one of ENDED_BY


# ---- the precision of the median ----

@lru_cache(maxsize=None)
def _normal_quantile(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2)


def _t_within(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with an integer `df` (Abramowitz & Stegun 26.7.3 and 26.7.4)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    term = total = 1.0
    if df % 2:
        if df == 1:
            return 2 * theta / math.pi
        for i in range(3, df - 1, 2):
            term *= c2 * (i - 1) / i
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    for i in range(2, df - 1, 2):
        term *= c2 * (i - 1) / i
        total += term
    return math.sin(theta) * total


@lru_cache(maxsize=None)
def t_quantile(confidence: float, df: int) -> float:
    """The two-sided Student t quantile: P(|T| <= t) = confidence (bisection on the exact CDF)."""
    low, high = 0.0, 1.0
    while _t_within(high, df) < confidence:
        high *= 2
    for _ in range(100):
        mid = (low + high) / 2
        if _t_within(mid, df) < confidence:
            low = mid
        else:
            high = mid
    return high


def _at_most(sorted_samples: Sequence[int], value: int) -> int:
    """How many samples are <= value: numpy's searchsorted on the host (the same count, in C), bisect in
    the agent."""
    searchsorted = getattr(sorted_samples, "searchsorted", None)
    if searchsorted is not None:
        return int(searchsorted(value, "right"))
    return bisect_right(sorted_samples, value)


def _kth_smallest(sorted_windows: Sequence[Sequence[int]], k: int) -> int:
    """The k-th smallest sample (0-based) across the windows' sorted samples, without merging them."""
    low = min(int(w[0]) for w in sorted_windows if len(w))
    high = max(int(w[-1]) for w in sorted_windows if len(w))
    while low < high:
        mid = (low + high) // 2
        if sum(_at_most(w, mid) for w in sorted_windows) > k:
            high = mid
        else:
            low = mid + 1
    return low


def _median(sorted_windows: Sequence[Sequence[int]], n: int) -> float:
    if n % 2:
        return float(_kth_smallest(sorted_windows, n // 2))
    return (_kth_smallest(sorted_windows, n // 2 - 1) + _kth_smallest(sorted_windows, n // 2)) / 2


@dataclass(frozen=True)
class MedianInterval:
    """How well the median is known, as half-widths of 99% confidence intervals in % of the median.

    order_pct: the distribution-free interval from order statistics of all samples. It assumes
    independent samples; consecutive latencies are not (caches, clocks, a neighbour's burst), so alone it
    is over-confident. batch_pct: batch means (the windows' medians as the batches, Student t with
    windows - 1 degrees of freedom), which sees drift and slow noise between windows; None with one
    window. The rule and the row use the wider of the two."""

    median_ns: float
    n_samples: int
    n_windows: int
    order_pct: float
    batch_pct: float | None

    @property
    def half_width_pct(self) -> float:
        return max(self.order_pct, self.batch_pct if self.batch_pct is not None else 0.0)


def median_interval(sorted_windows: Sequence[Sequence[int]],
                    confidence: float = MEDIAN_CI_CONFIDENCE) -> MedianInterval:
    """The median's intervals from each window's samples, sorted (lists, arrays or numpy arrays of ns).
    The host and the agent both call this on the same samples, so they agree on every decision."""
    windows = [w for w in sorted_windows if len(w)]
    n = sum(len(w) for w in windows)
    if not n:
        raise ValueError("no latency samples")
    median = _median(windows, n)
    spread = _normal_quantile(confidence) * math.sqrt(n) / 2
    # 1-based ranks floor(n/2 - spread) and ceil(n/2 + spread) + 1, clamped to the sample
    lower = min(max(math.floor(n / 2 - spread) - 1, 0), n - 1)
    upper = min(max(math.ceil(n / 2 + spread), 0), n - 1)
    order_half = (_kth_smallest(windows, upper) - _kth_smallest(windows, lower)) / 2
    batch_half = None
    if len(windows) >= 2:
        medians = [_median([w], len(w)) for w in windows]
        batch_half = (t_quantile(confidence, len(medians) - 1) * statistics.stdev(medians)
                      / math.sqrt(len(medians)))
    scale = 100 / median if median > 0 else math.inf
    return MedianInterval(median, n, len(windows), order_half * scale,
                          batch_half * scale if batch_half is not None else None)


def precision_reached(interval: MedianInterval, settings: MeasurementProtocol) -> bool:
    """The statistical rule's stop: enough windows, the samples LoadGen needs for p99 (and so p90), and
    the median's 99% interval (the wider of order statistics and batch means) within median_ci_pct."""
    return (interval.n_windows >= settings.min_windows and interval.n_samples >= MIN_SAMPLES_P99
            and interval.half_width_pct <= settings.median_ci_pct)


# ---- the timed loop ----

def run_windows(call: Callable[..., object], args: tuple, settings: MeasurementProtocol,
                 on_window: Callable[[int, int], None] | None = None) -> TimedRun:
    """Warm up, then time windows of `call(*args)` until the stopping rule ends them.

    The runtime's own call and its arguments come unwrapped: a wrapper function would add a Python frame
    (about 0.7 us, 3% of a 25 us model) inside every timed region.
    `on_window(done, planned)` is called between windows, outside every timed region.
    """
    result = TimedRun()
    warm_start = clock_ns()
    warm_ns = int(settings.warmup_min_s * 1e9)
    n = 0
    while n < settings.warmup_min_iterations or clock_ns() - warm_start < warm_ns:
        call(*args)
        n += 1
    result.warmup_iterations = n
    result.warmup_s = (clock_ns() - warm_start) / 1e9

    statistical = settings.stopping == STATISTICAL
    planned = settings.planned_windows
    window_ns = int(settings.window_s * 1e9)
    timed_ns = int(settings.max_timed_s * 1e9)
    min_iterations = settings.window_min_iterations
    latency = result.latency_ns
    append = latency.append
    sorted_windows = []
    first_start = None
    for index in range(planned):
        start = clock_ns()
        if first_start is None:
            first_start = start
        deadline = start + window_ns
        n = 0
        while True:
            t0 = clock_ns()
            call(*args)
            t1 = clock_ns()
            append(t1 - t0)
            n += 1
            if t1 >= deadline and n >= min_iterations:
                break
        end = clock_ns()
        result.windows.append(Window(start, end, n))
        if on_window is not None:
            on_window(index + 1, planned)
        if not statistical:
            continue
        sorted_windows.append(array("q", sorted(latency[len(latency) - n:])))
        if precision_reached(median_interval(sorted_windows), settings):
            result.stopping_rule = STATISTICAL
            break
        # the time ceiling, like the precision, waits for min_windows (max_timed_s is no bound below it)
        if (index + 1 >= settings.min_windows and end - first_start >= timed_ns) or index + 1 == planned:
            result.stopping_rule = CEILING
            break
    return result
