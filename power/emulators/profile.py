"""Power profiles that drive the emulators: known shapes (steps, ramps) with exact energies for checking
the serial path, and a modelled profile that follows this machine's CPU load for demos."""

from __future__ import annotations

import math
import threading
import time

import numpy as np

SUPPLY_V = 5.0  # a USB-powered board


class PiecewiseLinear:
    """Power (W) linear between breakpoints, repeating with the last breakpoint's time as the period."""

    def __init__(self, times_s, watts):
        self.times = np.asarray(times_s, dtype=np.float64)
        self.watts = np.asarray(watts, dtype=np.float64)
        self.period = float(self.times[-1])

    def power_w(self, t_s: float) -> float:
        return float(np.interp(t_s % self.period, self.times, self.watts))

    def energy_j(self, t0_s: float, t1_s: float) -> float:
        """Exact integral over [t0, t1], segment by segment (a repeated breakpoint time is a step)."""
        total = 0.0
        for cycle in range(int(np.floor(t0_s / self.period)), int(np.floor(t1_s / self.period)) + 1):
            offset = cycle * self.period
            for j in range(len(self.times) - 1):
                a, b = self.times[j] + offset, self.times[j + 1] + offset
                lo, hi = max(a, t0_s), min(b, t1_s)
                if b <= a or hi <= lo:
                    continue
                slope = (self.watts[j + 1] - self.watts[j]) / (b - a)
                total += (self.watts[j] + slope * ((lo - a) + (hi - a)) / 2) * (hi - lo)
        return total


def steps_and_ramps() -> PiecewiseLinear:
    """A 12 s cycle: idle 1 W, a step to 3 W, a ramp down to 1.5 W, a ramp up to 4 W, a step down."""
    return PiecewiseLinear([0.0, 2.0, 2.0, 5.0, 7.0, 8.0, 9.5, 11.0, 11.0, 12.0],
                           [1.0, 1.0, 3.0, 3.0, 1.5, 1.5, 4.0, 4.0, 1.0, 1.0])


class CpuLoadModel:
    """Modelled power = idle_w + (busy_w - idle_w) * CPU utilisation, read from /proc/stat at 20 Hz.

    A demo without a meter: its numbers describe the model, not this machine's power draw."""

    energy_j = None  # no exact integral: it follows live load

    def __init__(self, idle_w: float = 2.0, busy_w: float = 6.0, interval_s: float = 0.05):
        self.idle_w, self.busy_w, self.interval_s = idle_w, busy_w, interval_s
        self.utilisation = 0.0
        threading.Thread(target=self._follow, daemon=True).start()

    @staticmethod
    def _cpu_times() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return sum(values), idle

    def _follow(self) -> None:
        total, idle = self._cpu_times()
        while True:
            time.sleep(self.interval_s)
            total2, idle2 = self._cpu_times()
            if total2 > total:
                self.utilisation = 1.0 - (idle2 - idle) / (total2 - total)
            total, idle = total2, idle2

    def power_w(self, t_s: float) -> float:
        return self.idle_w + (self.busy_w - self.idle_w) * self.utilisation


PROFILES = ("steps", "cpu-load", "constant:<watts>")


def check_profile(spec) -> None:
    """Raises ValueError unless `spec` names a profile make_profile makes (checked before an emulator
    starts)."""
    if isinstance(spec, str) and spec in PROFILES[:2]:
        return
    if isinstance(spec, str) and spec.startswith("constant:"):
        try:
            watts = float(spec.split(":", 1)[1])
        except ValueError:
            watts = float("nan")
        if math.isfinite(watts) and watts >= 0:
            return
    raise ValueError(f"power 'profile' = {spec!r}: accepted: {', '.join(PROFILES)} (watts a finite "
                     f"number >= 0)")


def make_profile(spec: str):
    """'steps' (the default), 'cpu-load', or 'constant:<watts>'."""
    check_profile(spec)
    if spec == "steps":
        return steps_and_ramps()
    if spec == "cpu-load":
        return CpuLoadModel()
    if spec.startswith("constant:"):
        watts = float(spec.split(":", 1)[1])
        return PiecewiseLinear([0.0, 1.0], [watts, watts])
    raise AssertionError(spec)  # check_profile accepted it
