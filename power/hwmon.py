"""Linux hwmon `ina2xx` driver: in1_input bus mV, curr1_input mA, power1_input uW.

`root` is the seam tests use to point at a fake sysfs tree.
"""

from __future__ import annotations

import glob
import os

from power.polling import PollingSource

INA2XX_NAMES = ("ina209", "ina219", "ina220", "ina226", "ina230", "ina231", "ina238", "ina260")


def find_ina2xx(root: str = "/") -> list:
    found = []
    for device in sorted(glob.glob(os.path.join(root, "sys/class/hwmon/hwmon*"))):
        try:
            with open(os.path.join(device, "name")) as fh:
                if fh.read().strip() in INA2XX_NAMES:
                    found.append(device)
        except OSError:
            continue
    return found


def read_ina2xx(device: str) -> tuple:
    def value(name):
        with open(os.path.join(device, name)) as fh:
            return int(fh.read().strip())

    volts = value("in1_input") / 1000.0
    amps = value("curr1_input") / 1000.0
    power_file = os.path.join(device, "power1_input")
    watts = value("power1_input") / 1e6 if os.path.exists(power_file) else volts * amps
    return volts, amps, watts


class HwmonSource(PollingSource):
    name = "hwmon"
    DEFAULTS = {"rate_hz": 50.0, "root": "/"}
    ON_DEVICE = True  # reads the device itself: on a board it runs inside the agent

    def __init__(self, rate_hz: float = 50.0, root: str = "/", device: str | None = None):
        super().__init__(rate_hz)
        self.root = root
        self.device = device

    def where(self) -> str:
        return f"no ina2xx hwmon device under {self.root}sys/class/hwmon (is the ina2xx driver bound?)"

    def read(self):
        if self.device is None:
            devices = find_ina2xx(self.root)
            if not devices:
                return None
            self.device = devices[0]
        return read_ina2xx(self.device)
