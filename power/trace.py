"""A power trace: timestamped samples of voltage, current and power on one monotonic clock."""

from __future__ import annotations

import threading

import numpy as np

from harness.core.traces import TraceSlice


class PowerTrace:
    """Appended to by a reader thread, read by the harness; NaN where a meter gives no V or I."""

    def __init__(self):
        self._lock = threading.Lock()
        self._t: list[int] = []
        self._v: list[float] = []
        self._i: list[float] = []
        self._p: list[float] = []

    def append(self, t_ns: int, voltage_v: float, current_a: float, power_w: float) -> None:
        with self._lock:
            self._t.append(t_ns)
            self._v.append(voltage_v)
            self._i.append(current_a)
            self._p.append(power_w)

    def extend(self, t_ns, voltage_v, current_a, power_w) -> None:
        with self._lock:
            self._t.extend(t_ns)
            self._v.extend(voltage_v)
            self._i.extend(current_a)
            self._p.extend(power_w)

    def __len__(self) -> int:
        return len(self._t)

    def last_t_ns(self) -> int | None:
        with self._lock:
            return self._t[-1] if self._t else None

    def between(self, start_ns: int, end_ns: int) -> TraceSlice:
        """Samples with start_ns <= t <= end_ns, plus one on each side when there is one (for the
        interpolation at the window edges)."""
        with self._lock:
            t = np.asarray(self._t, dtype=np.int64)
            lo = max(0, int(np.searchsorted(t, start_ns, "left")) - 1)
            hi = min(len(t), int(np.searchsorted(t, end_ns, "right")) + 1)
            return TraceSlice(t[lo:hi], np.asarray(self._v[lo:hi], dtype=np.float64),
                              np.asarray(self._i[lo:hi], dtype=np.float64),
                              np.asarray(self._p[lo:hi], dtype=np.float64))
