"""INA219 read over serial through a microcontroller bridge.

The bridge (power/firmware/ina219_bridge) prints one line per sample at a fixed rate:

    <micros>,<bus_register>,<shunt_register>        e.g.  "1000123,10008,1530"

raw register values (bus: bits 15..3 in 4 mV steps, bit 1 CNVR, bit 0 OVF; shunt: signed, 10 uV steps)
stamped with the microcontroller's clock; lines starting with '#' are replies to commands
(`start`, `stop`, `mark <n>`, `info`). The host does the scaling with the shunt resistance it is given.
Also read: the Adafruit example sketch's blocks ("Bus Voltage: ...", every 2 s) and the five-column
space-separated format of yeokm1/power_measure_tool; neither carries a timestamp, so samples are stamped
on arrival.
"""

from __future__ import annotations

import re

from power.source import SerialSource, clock_ns

MICROS_WRAP = 1 << 32


# --- register decoding (datasheet section 8.6) ---------------------------------------------------------

def bus_voltage_v(register: int) -> float:
    return (register >> 3) * 4e-3


def bus_overflow(register: int) -> bool:
    """OVF: the power or current calculation overflowed; the sample is not usable."""
    return bool(register & 0x1)


def conversion_ready(register: int) -> bool:
    return bool(register & 0x2)


def shunt_voltage_v(register: int) -> float:
    if register >= 0x8000:  # two's complement when given as an unsigned 16-bit word
        register -= 0x10000
    return register * 10e-6


# --- clock mapping ---------------------------------------------------------------------------------------

class ClockMapper:
    """Maps the microcontroller's microsecond clock onto the host's monotonic ns clock.

    The offset is the smallest (host arrival - device time) seen over the last `window_s` seconds: the
    least-delayed sample bounds the transport delay, and the sliding window follows crystal drift.
    """

    def __init__(self, window_s: float = 10.0):
        self.window_ns = int(window_s * 1e9)
        self.epoch_us = 0
        self.last_us: int | None = None
        self.buckets: dict[int, int] = {}  # host second -> min offset in it

    def unwrap(self, micros: int) -> int:
        if self.last_us is not None and micros < self.last_us - MICROS_WRAP // 2:
            self.epoch_us += MICROS_WRAP
        self.last_us = micros
        return self.epoch_us + micros

    def observe(self, device_us: int, host_ns: int) -> None:
        offset = host_ns - device_us * 1000
        bucket = host_ns // 1_000_000_000
        if offset < self.buckets.get(bucket, offset + 1):
            self.buckets[bucket] = offset
        oldest = bucket - self.window_ns // 1_000_000_000
        for key in [k for k in self.buckets if k < oldest]:
            del self.buckets[key]

    def to_host_ns(self, device_us: int) -> int:
        return device_us * 1000 + min(self.buckets.values())


# --- line formats ----------------------------------------------------------------------------------------

def parse_bridge_line(line: str) -> tuple[int, int, int] | None:
    """(micros, bus_register, shunt_register), or None for a line that is not a sample."""
    parts = line.split(",")
    if len(parts) != 3:
        return None
    try:
        micros, bus, shunt = int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return None
    if not (0 <= micros < MICROS_WRAP and 0 <= bus <= 0xFFFF and -0x8000 <= shunt <= 0xFFFF):
        return None
    return micros, bus, shunt


def parse_space_separated(line: str) -> tuple[float, float, float] | None:
    """yeokm1/power_measure_tool: "power_W out_voltage_V current_A shunt_voltage_V input_voltage_V"
    -> (voltage_v, current_a, power_w)."""
    parts = line.split()
    if len(parts) != 5:
        return None
    try:
        power_w, voltage_v, current_a = float(parts[0]), float(parts[1]), float(parts[2])
    except ValueError:
        return None
    return voltage_v, current_a, power_w


_ADAFRUIT = re.compile(r"^(Bus Voltage|Shunt Voltage|Load Voltage|Current|Power):\s*(-?[\d.]+)\s*(V|mV|mA|mW)\s*$")


class AdafruitBlockParser:
    """Collects one block of the Adafruit getcurrent example into (voltage_v, current_a, power_w)."""

    def __init__(self):
        self.fields: dict[str, float] = {}

    def feed(self, line: str) -> tuple[float, float, float] | None:
        match = _ADAFRUIT.match(line.strip())
        if match:
            self.fields[match.group(1)] = float(match.group(2))
            return None
        if line.strip() or not self.fields:
            return None
        block, self.fields = self.fields, {}
        if "Current" not in block or not ({"Load Voltage", "Bus Voltage"} & set(block)):
            return None
        # Adafruit's "Load Voltage" is bus + shunt (mV / 1000), the supply side; the load sees the bus
        # voltage, so a block that lost its first line gets it back from the other two
        voltage = block.get("Bus Voltage")
        if voltage is None:
            voltage = block["Load Voltage"] - block.get("Shunt Voltage", 0.0) / 1000.0
        current = block["Current"] / 1000.0
        power = block["Power"] / 1000.0 if "Power" in block else voltage * current
        return voltage, current, power


# --- the source ------------------------------------------------------------------------------------------

class Ina219Source(SerialSource):
    """Reads the bridge protocol (or the Adafruit/space-separated formats, stamped on arrival)."""

    name = "ina219"
    DEFAULTS = {"port": None, "baud": 1_000_000, "rate_hz": 1000.0, "shunt_ohm": 0.1}

    def __init__(self, port: str, baud: int = 1_000_000, rate_hz: float = 1000.0, shunt_ohm: float = 0.1):
        super().__init__(port, baud, rate_hz)
        self.shunt_ohm = shunt_ohm
        self.clock = ClockMapper()
        self.adafruit = AdafruitBlockParser()
        self.bad_lines = 0

    def on_reopen(self) -> None:
        self.clock = ClockMapper()  # a replugged bridge restarts its clock

    def session(self, port) -> None:
        port.reset_input_buffer()
        port.write(b"start\n")
        pending = b""
        first = True
        while not self._stop.is_set():
            chunk = port.read(port.in_waiting or 1)  # bulk reads: readline() tops out near 6k lines/s
            if not chunk:
                continue
            arrived = clock_ns()
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            if first:  # the first line may be cut mid-way by the reset above
                lines, first = lines[1:], False
            self.ingest(lines, arrived)
        try:
            port.write(b"stop\n")
        except OSError:
            pass

    def ingest(self, lines: list[bytes], arrived_ns: int) -> None:
        samples = []
        for raw in lines:
            line = raw.decode("ascii", "replace").strip("\r")
            if line.startswith("#"):
                continue
            sample = parse_bridge_line(line)
            if sample is not None:
                micros, bus, shunt = sample
                if bus_overflow(bus):
                    self.dropped_frames += 1
                    continue
                device_us = self.clock.unwrap(micros)
                self.clock.observe(device_us, arrived_ns)
                samples.append((device_us, bus, shunt))
                continue
            other = parse_space_separated(line) or self.adafruit.feed(line)
            if other is not None:
                self.trace.append(arrived_ns, *other)
            elif any(c.isdigit() for c in line) and not _ADAFRUIT.match(line.strip()):
                self.dropped_frames += 1  # a damaged sample; banners like "Hello!" are not samples
        if samples:
            t, v, i, p = [], [], [], []
            for device_us, bus, shunt in samples:
                voltage = bus_voltage_v(bus)
                current = shunt_voltage_v(shunt) / self.shunt_ohm
                t.append(self.clock.to_host_ns(device_us))
                v.append(voltage)
                i.append(current)
                p.append(voltage * current)
            self.trace.extend(t, v, i, p)
