"""How exactly does the serial path measure energy, and does ingestion keep up? Prints a table.

1. INA219 bridge emulator at 1 kHz, a steps-and-ramps profile, 3 windows of 10 s: energy error vs the
   profile's exact integral (target <= 1%).
2. UM25C emulator polled at 10 Hz over 115200 baud, the same profile and windows (target <= 3%).
3. INA219 bridge emulator at 10 kHz (10x the firmware's rate) for 10 s: samples received vs sent, and
   gaps in the device clock (target: no drop).

Everything here is emulated: the numbers describe edgebench's serial path and energy accounting, not a
meter's analogue accuracy.

    .venv/bin/python benchmarks/power_accuracy.py [--window-s 10] [--windows 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from power.emulators.ina219 import Ina219Emulator
from power.emulators.rdtech import RdtechEmulator
from power.energy import window_energy_j
from power.ina219 import Ina219Source
from power.rdtech import RdtechSource
from power.source import clock_ns


def energy_errors(emulator, source, n_windows: int, window_s: float) -> list[float]:
    source.check()
    source.start()
    time.sleep(0.5)
    windows = []
    for _ in range(n_windows):
        start = clock_ns()
        time.sleep(window_s)
        windows.append((start, clock_ns()))
    time.sleep(0.5)
    source.stop()
    errors = []
    for start, end in windows:
        measured = window_energy_j(source.trace.between(start, end), start, end)
        exact = emulator.profile.energy_j(emulator.profile_time_s(start), emulator.profile_time_s(end))
        errors.append((measured - exact) / exact * 100)
    return errors


def ingestion(rate_hz: float, seconds: float) -> tuple[int, int, int]:
    """(sent, received, gaps in the device clock) for the bridge protocol at `rate_hz`."""
    emulator = Ina219Emulator(rate_hz=rate_hz).start()
    source = Ina219Source(emulator.port, rate_hz=rate_hz)
    source.check()
    source.start()
    time.sleep(seconds)
    source.port.write(b"stop\n")  # stop the stream, then let the reader drain what is in flight
    time.sleep(0.5)
    source.stop()
    sent = emulator.messages
    t = source.trace.between(0, 2**62).t_ns
    period_ns = 1e9 / rate_hz
    gaps = int((np.diff(t) > 1.5 * period_ns).sum())
    return sent, len(t), gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--ingest-hz", type=float, default=10_000.0)
    parser.add_argument("--ingest-s", type=float, default=10.0)
    args = parser.parse_args()

    print(f"{'path (EMULATED meters)':40s} {'windows':>8s} {'error % per window':>30s} {'worst |error| %':>16s}")
    ina = Ina219Emulator(rate_hz=1000)
    errors = energy_errors(ina.start(), Ina219Source(ina.port), args.windows, args.window_s)
    print(f"{'INA219 bridge, 1 kHz':40s} {args.windows:8d} {' '.join(f'{e:+.3f}' for e in errors):>30s} "
          f"{max(map(abs, errors)):16.3f}")
    um = RdtechEmulator("UM25C", baud=115200)
    errors = energy_errors(um.start(), RdtechSource("UM25C", um.port, 115200, rate_hz=10),
                           args.windows, args.window_s)
    print(f"{'UM25C, polled at 10 Hz, 115200 baud':40s} {args.windows:8d} "
          f"{' '.join(f'{e:+.3f}' for e in errors):>30s} {max(map(abs, errors)):16.3f}")
    sent, received, gaps = ingestion(args.ingest_hz, args.ingest_s)
    print(f"\ningestion at {args.ingest_hz:,.0f} samples/s for {args.ingest_s:g} s: sent {sent:,}, "
          f"received {received:,}, dropped {sent - received:,}, gaps in the device clock {gaps}")


if __name__ == "__main__":
    main()
