"""Energy accounting, one place for every source.

Energy of a window = the integral of power over exactly the window (trapezoid, linearly interpolated at
the edges); energy per inference = window energy / inferences in the window; the median over windows is
reported. Energy above idle subtracts the idle power measured before the run over the same duration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.core.measurement import Window
from power.trace import TraceSlice

# numpy 2 renamed trapz; a JetPack 5 board (Python 3.8) has numpy 1.x, where only trapz exists
_trapezoid = getattr(np, "trapezoid", None) or np.trapz

# A window must hold at least this many samples for its energy to count (20 samples, per the issue and
# common practice for host-polled meters).
MIN_SAMPLES_PER_WINDOW = 20


def window_energy_j(trace: TraceSlice, start_ns: int, end_ns: int) -> float:
    """Integral of power over [start_ns, end_ns]; the trace must cover both edges."""
    t, p = trace.t_ns, trace.power_w
    if len(t) < 2 or t[0] > start_ns or t[-1] < end_ns:
        raise ValueError("the trace does not cover the window")
    inside = (t > start_ns) & (t < end_ns)
    edges_p = np.interp([start_ns, end_ns], t.astype(np.float64), p)
    times = np.concatenate(([start_ns], t[inside], [end_ns])).astype(np.float64)
    power = np.concatenate(([edges_p[0]], p[inside], [edges_p[1]]))
    return float(_trapezoid(power, times) / 1e9)


def samples_in(trace: TraceSlice, start_ns: int, end_ns: int) -> int:
    return int(((trace.t_ns >= start_ns) & (trace.t_ns <= end_ns)).sum())


def largest_gap_s(trace: TraceSlice, start_ns: int, end_ns: int) -> float:
    """The longest stretch of the window without a sample (a silent or unplugged meter)."""
    t = trace.t_ns[(trace.t_ns >= start_ns) & (trace.t_ns <= end_ns)]
    points = np.concatenate(([start_ns], t, [end_ns]))
    return float(np.diff(points).max() / 1e9)


def min_window_s(rate_hz: float, min_samples: int = MIN_SAMPLES_PER_WINDOW, margin: float = 1.25) -> float:
    """How long a window must last for a source sampling at `rate_hz` to give `min_samples`."""
    return min_samples / rate_hz * margin


@dataclass
class EnergyResult:
    energy_per_inference_mj: float | None
    energy_per_inference_above_idle_mj: float | None
    avg_power_w: float | None
    power_samples: int
    invalid_reasons: list[str]

    def columns(self, idle_power_w: float | None) -> dict:
        return {"energy_per_inference_mj": self.energy_per_inference_mj,
                "energy_per_inference_above_idle_mj": self.energy_per_inference_above_idle_mj,
                "avg_power_w": self.avg_power_w, "idle_power_w": idle_power_w,
                "power_samples": self.power_samples}


def job_energy(trace: TraceSlice, windows: list[Window], batch_size: int, idle_power_w: float | None,
               expected_period_s: float, min_samples: int = MIN_SAMPLES_PER_WINDOW) -> EnergyResult:
    """Per-window energy, then medians; every broken rule becomes a reason the energy is not valid."""
    reasons, per_inference_j, above_idle_j, power_w = [], [], [], []
    total_samples = 0
    silent_after_s = max(0.2, 10 * expected_period_s)
    for index, w in enumerate(windows):
        n = samples_in(trace, w.start_ns, w.end_ns)
        total_samples += n
        if len(trace) < 2 or trace.t_ns[0] > w.start_ns or trace.t_ns[-1] < w.end_ns:
            reasons.append(f"power: no samples cover window {index + 1} (meter silent or unplugged)")
            continue
        gap = largest_gap_s(trace, w.start_ns, w.end_ns)
        if gap > silent_after_s:
            reasons.append(f"power: no sample for {gap:.1f} s in window {index + 1} (meter silent or "
                           f"unplugged)")
            continue
        if n < min_samples:
            reasons.append(f"power: window {index + 1} holds {n} samples < {min_samples}")
        energy = window_energy_j(trace, w.start_ns, w.end_ns)
        inferences = w.n_iterations * batch_size
        per_inference_j.append(energy / inferences)
        power_w.append(energy / w.duration_s)
        if idle_power_w is not None:
            above_idle_j.append((energy - idle_power_w * w.duration_s) / inferences)
    if not per_inference_j:
        return EnergyResult(None, None, None, total_samples, reasons)
    return EnergyResult(
        energy_per_inference_mj=float(np.median(per_inference_j) * 1e3),
        energy_per_inference_above_idle_mj=float(np.median(above_idle_j) * 1e3) if above_idle_j else None,
        avg_power_w=float(np.median(power_w)), power_samples=total_samples, invalid_reasons=reasons)


def mean_power_w(trace: TraceSlice, start_ns: int, end_ns: int) -> float:
    return window_energy_j(trace, start_ns, end_ns) / ((end_ns - start_ns) / 1e9)
