"""The power-source interface, and the serial plumbing every serial meter shares.

A source records into a `PowerTrace` from `start()` to `stop()` on a background thread; `check()` opens
its device before any job runs, so a wrong port fails with a clear message instead of a silent row.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

from harness.core.errors import ConfigError
from power.trace import PowerTrace

clock_ns = time.monotonic_ns  # the clock of the timing windows on this machine


class PowerSource(ABC):
    """`name` goes into energy_source; `emulated` sources are labelled so in results and reports."""

    name = ""
    emulated = False
    # As a plug-in (entry-point group edgebench.power_sources): the [power] keys it takes and their defaults
    # (None: required; rate_hz is needed, windows are sized from it); ON_DEVICE: it reads the device
    # itself, so on a board it runs inside the agent, on the board's clock.
    DEFAULTS: dict = {}
    ON_DEVICE = False

    @classmethod
    def from_options(cls, options: dict) -> PowerSource:
        """The source for a validated [power] table's own keys (DEFAULTS filled in)."""
        return cls(**options)

    def __init__(self, rate_hz: float):
        self.rate_hz = float(rate_hz)
        self.trace = PowerTrace()
        self.dropped_frames = 0
        self.faults: list[tuple[int, str]] = []   # (monotonic ns, what happened)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """Open the device (or read it once) and fail with what to check."""

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._guarded_run, name=f"power-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.close()

    def close(self) -> None:
        pass

    def fault(self, message: str) -> None:
        self.faults.append((clock_ns(), message))

    def faults_between(self, start_ns: int, end_ns: int) -> list[str]:
        return [m for t, m in self.faults if start_ns <= t <= end_ns]

    def _guarded_run(self) -> None:
        try:
            self.run()
        except Exception as exc:  # a dying reader must leave a reason, not a silent trace
            self.fault(f"reader stopped: {type(exc).__name__}: {exc}")

    @abstractmethod
    def run(self) -> None:
        """Record samples until `self._stop` is set."""


def open_serial(port: str, baud: int, timeout_s: float = 0.05):
    """pyserial port opened exclusively, with errors that say what to check."""
    import serial

    try:
        return serial.Serial(port, baud, timeout=timeout_s, exclusive=True)
    except serial.SerialException as exc:
        text = str(exc)
        if "No such file" in text or "could not open port" in text and "Errno 2" in text:
            hint = ("it does not exist: check the cable and `ls /dev/tty*`; a Bluetooth meter needs "
                    "`rfcomm bind 0 <MAC>` first")
        elif "Permission denied" in text or "Errno 13" in text:
            hint = "it is not readable: add your user to the 'dialout' group (then log in again)"
        elif "lock" in text.lower() or "busy" in text.lower() or "Errno 16" in text:
            hint = "it is busy: another program holds it open (a serial monitor, ModemManager)"
        else:
            hint = f"it cannot be opened ({text})"
        raise ConfigError(f"power: serial port {port}: {hint}") from None


class SerialSource(PowerSource):
    """A meter on a serial port; a vanished port is recorded as a fault and reopened when it returns."""

    reopen_interval_s = 0.5

    def __init__(self, port: str, baud: int, rate_hz: float):
        super().__init__(rate_hz)
        self.port_name = port
        self.baud = baud
        self.port = None

    def check(self) -> None:
        self.port = open_serial(self.port_name, self.baud)

    def close(self) -> None:
        if self.port is not None:
            try:
                self.port.close()
            except OSError:
                pass
            self.port = None

    def run(self) -> None:
        import serial

        while not self._stop.is_set():
            try:
                if self.port is None:
                    self.port = open_serial(self.port_name, self.baud)
                    self.on_reopen()
                self.session(self.port)
            except (serial.SerialException, OSError, ConfigError) as exc:
                if self.port is not None:
                    self.fault(f"serial port {self.port_name} lost: {exc}")
                self.close()
                self._stop.wait(self.reopen_interval_s)

    def on_reopen(self) -> None:
        """Called after the port came back (e.g. to send the start command again)."""

    @abstractmethod
    def session(self, port) -> None:
        """Read (or poll) until `self._stop` is set; raise SerialException when the port goes away."""
