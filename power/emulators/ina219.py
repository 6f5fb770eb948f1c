"""Emulates the edgebench INA219 bridge (power/firmware/ina219_bridge): after `start` it prints
`<micros>,<bus_register>,<shunt_register>` lines at a fixed rate, stamped with its own microsecond
clock, and answers `stop`, `mark <n>` and `info` like the firmware. With `--adafruit` it prints the
blocks of Adafruit's getcurrent example sketch instead, every 2 s, as a board flashed with it would.

    python -m power.emulators.ina219 --rate-hz 1000 --profile steps
"""

from __future__ import annotations

import os
import select
import time

from power.emulators.base import Faults, PtyEmulator, emulator_main

SHUNT_LSB_V = 10e-6
BUS_LSB_V = 4e-3


class Ina219Emulator(PtyEmulator):
    def __init__(self, rate_hz: float = 1000.0, shunt_ohm: float = 0.1, profile: str = "steps",
                 faults: Faults | None = None, micros_start: int = 0, adafruit: bool = False):
        super().__init__(profile, faults)
        self.adafruit = adafruit  # print Adafruit's getcurrent example blocks instead (no start needed)
        self.rate_hz = 0.5 if adafruit else rate_hz
        self.shunt_ohm = shunt_ohm
        self.boot_ns = self.epoch_ns - micros_start * 1000  # the device clock reads micros_start at epoch

    def registers(self, t_ns: int) -> tuple[int, int]:
        volts, amps = self.sample(t_ns)
        bus = (round(volts / BUS_LSB_V) << 3) | 0x2   # CNVR set: a fresh conversion
        shunt = round(amps * self.shunt_ohm / SHUNT_LSB_V)
        return bus, max(-0x8000, min(0x7FFF, shunt))

    def micros(self, t_ns: int) -> int:
        return ((t_ns - self.boot_ns) // 1000) % (1 << 32)

    def handle(self, command: str) -> bool | None:
        """True/False to start/stop streaming, None for anything else."""
        now = time.monotonic_ns()
        if command == "start":
            return True
        if command == "stop":
            return False
        if command.startswith("mark"):
            self.write(f"#mark,{command[4:].strip()},{self.micros(now)}\n".encode())
        elif command == "info":
            self.write(f"#info,edgebench-ina219,1,{self.rate_hz:g},{self.shunt_ohm * 1000:g}\n".encode())
        return None

    def adafruit_block(self, t_ns: int) -> str:
        """What adafruit/Adafruit_INA219 examples/getcurrent prints (floats with two decimals)."""
        bus, shunt = self.registers(t_ns)
        bus_v = (bus >> 3) * BUS_LSB_V
        shunt_mv = shunt * SHUNT_LSB_V * 1000
        current_ma = shunt_mv / self.shunt_ohm
        return (f"Bus Voltage:   {bus_v:.2f} V\nShunt Voltage: {shunt_mv:.2f} mV\n"
                f"Load Voltage:  {bus_v + shunt_mv / 1000:.2f} V\nCurrent:       {current_ma:.2f} mA\n"
                f"Power:         {bus_v * current_ma:.2f} mW\n\n")

    def serve(self) -> None:
        period_ns = 1e9 / self.rate_hz
        streaming, started_ns, k = self.adafruit, self.epoch_ns, 0
        if self.adafruit:
            self.write(b"Hello!\nMeasuring voltage and current with INA219 ...\n")
        commands = b""
        while True:
            if self.should_unplug():
                self.unplug()
                return
            ready, _, _ = select.select([self.master], [], [], 0.0005 if streaming else 0.05)
            if ready:
                commands += os.read(self.master, 1024)
                *lines, commands = commands.split(b"\n")
                for line in lines:
                    state = self.handle(line.decode(errors="replace").strip())
                    if state is True and not streaming:
                        streaming, started_ns, k = True, time.monotonic_ns(), 0
                    elif state is False:
                        streaming = False
            if not streaming or self.silent():
                continue
            due = int((time.monotonic_ns() - started_ns) / period_ns) + 1
            out = []
            while k < due:
                t_k = started_ns + int(k * period_ns)
                if self.garbage_due():
                    out.append("\x07\xfe#?garbage,,\n" if k % 2 else "12x,zz\n")
                if self.adafruit:
                    out.append(self.adafruit_block(t_k))
                else:
                    bus, shunt = self.registers(t_k)
                    out.append(f"{self.micros(t_k)},{bus},{shunt}\n")
                self.messages += 1
                k += 1
            if out:
                self.write("".join(out).encode("latin-1"))


def main(argv=None) -> None:
    def extra(parser):
        parser.add_argument("--rate-hz", type=float, default=1000.0)
        parser.add_argument("--shunt-ohm", type=float, default=0.1)
        parser.add_argument("--micros-start", type=int, default=0)
        parser.add_argument("--adafruit", action="store_true", help="print Adafruit's example blocks")

    emulator_main(lambda a, f: Ina219Emulator(a.rate_hz, a.shunt_ohm, a.profile, f, a.micros_start,
                                              a.adafruit), argv, extra)


if __name__ == "__main__":
    main()
