"""A power source over a whole run: checked before any job, an idle baseline before the first, and the
energy columns of every job from the same continuous trace."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from harness.core.errors import ConfigError
from harness.core.measurement import MeasurementProtocol, Window
from power.energy import job_energy, mean_power_w, min_window_s
from power.source import clock_ns
from power.spec import PowerSpec, make_source

FIRST_SAMPLE_TIMEOUT_S = 10.0


def windows_for_meter(protocol: MeasurementProtocol, spec: PowerSpec) -> MeasurementProtocol:
    """Windows long enough for `min_samples` at the source's rate."""
    needed = min_window_s(spec.options["rate_hz"], spec.min_samples)
    return replace(protocol, window_min_s=max(protocol.window_min_s, needed))


class PowerMonitor:
    def __init__(self, spec: PowerSpec):
        self.spec = spec
        self.source = make_source(spec)
        self.idle_power_w: float | None = None
        self._dropped_seen = 0

    @property
    def label(self) -> str:
        return self.source.name

    def check(self) -> None:
        """Open the device now: a wrong port fails before any job runs."""
        self.source.check()

    def start(self, status=lambda message: None) -> None:
        self.source.start()
        deadline = time.monotonic() + FIRST_SAMPLE_TIMEOUT_S
        while len(self.source.trace) < 2:
            if time.monotonic() > deadline:
                self.stop()
                faults = "; ".join(m for _, m in self.source.faults) or "no error reported"
                raise ConfigError(f"power: {self.label} gave no samples in {FIRST_SAMPLE_TIMEOUT_S:.0f} s "
                                  f"({faults}); check the meter is on and streaming")
            time.sleep(0.05)
        if self.spec.idle_s > 0:
            status(f"power: measuring idle for {self.spec.idle_s:g} s")
            start = clock_ns()
            time.sleep(self.spec.idle_s)
            end = clock_ns()
            self.wait_for_samples_after(end)
            try:
                self.idle_power_w = mean_power_w(self.source.trace.between(start, end), start, end)
            except ValueError:
                self.stop()
                faults = "; ".join(m for _, m in self.source.faults) or "no samples"
                raise ConfigError(f"power: {self.label} stopped sending during the idle baseline "
                                  f"({faults}); no job was run") from None
        self._dropped_seen = self.source.dropped_frames

    def wait_for_samples_after(self, t_ns: int) -> None:
        """A meter reports with a delay (buffering, polling): wait until the trace covers t_ns."""
        timeout_s = max(2.0, 3.0 / self.source.rate_hz)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            last = self.source.trace.last_t_ns()
            if last is not None and last >= t_ns:
                return
            time.sleep(0.01)

    def job_columns(self, windows: list[Window], batch_size: int, trace_path: Path) -> tuple[dict, list, list]:
        """(columns, invalid reasons, warnings) for one job's windows."""
        start, end = windows[0].start_ns, windows[-1].end_ns
        self.wait_for_samples_after(end)
        trace = self.source.trace.between(start, end)
        trace.save(trace_path)
        result = job_energy(trace, windows, batch_size, self.idle_power_w, 1.0 / self.source.rate_hz,
                            self.spec.min_samples)
        reasons = list(result.invalid_reasons)
        reasons += [f"power: {m}" for m in self.source.faults_between(start, end)]
        warnings = []
        dropped = self.source.dropped_frames - self._dropped_seen
        self._dropped_seen = self.source.dropped_frames
        if dropped:
            warnings.append(f"power: {dropped} bad or partial frames dropped (resynchronised)")
        columns = result.columns(self.idle_power_w)
        columns["energy_source"] = self.label
        return columns, reasons, warnings

    def stop(self) -> None:
        self.source.stop()

    def describe(self) -> dict:
        return {"source": self.label, "emulated": self.source.emulated, "rate_hz": self.source.rate_hz,
                "idle_s": self.spec.idle_s, "idle_power_w": self.idle_power_w,
                "min_samples_per_window": self.spec.min_samples, "options": self.spec.options}
