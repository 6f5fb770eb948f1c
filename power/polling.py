"""Sources read by polling (sysfs files, a command): one `read()` per period on a background thread."""

from __future__ import annotations

from abc import abstractmethod

from power.source import PowerSource, clock_ns


class PollingSource(PowerSource):
    @abstractmethod
    def read(self) -> tuple[float, float, float] | None:
        """(voltage_v, current_a, power_w) now (NaN where unknown), or None when nothing is readable."""

    def check(self) -> None:
        from harness.core.errors import ConfigError

        try:
            if self.read() is None:
                raise ConfigError(f"power: {self.name} gave no reading; {self.where()}")
        except OSError as exc:
            raise ConfigError(f"power: {self.name}: {exc}; {self.where()}") from None

    def where(self) -> str:
        return "check that the device exists and is readable (root for some sysfs files)"

    def run(self) -> None:
        period_ns = int(1e9 / self.rate_hz)
        next_read = clock_ns()
        failing = False
        while not self._stop.is_set():
            t = clock_ns()
            try:
                sample = self.read()
            except OSError as exc:
                sample = None
                if not failing:
                    self.fault(f"{self.name}: {exc}")
            failing = sample is None
            if sample is None:
                self.dropped_frames += 1
            else:
                self.trace.append(t, *sample)
            next_read += period_ns
            self._stop.wait(max(0.0, (next_read - clock_ns()) / 1e9))
