"""NVIDIA Jetson on-module rails through the INA3221 sysfs trees.

    JetPack 4 (iio, ina3221x):  .../iio:device0/rail_name_<k>, in_voltage<k>_input (mV),
                                in_current<k>_input (mA), in_power<k>_input (mW)
    JetPack 5/6 (hwmon):        .../hwmon/hwmon*/in<k>_label, in<k>_input (mV), curr<k>_input (mA)

Runs on the board (agent): standard library only, Python 3.8 syntax. `root` is the seam tests use to
point at a fake tree.
"""

from __future__ import annotations

import glob
import os

from power.polling import PollingSource
from power.rails import UNCONNECTED, total_power_w

JP4_GLOB = "sys/bus/i2c/drivers/ina3221x/*/iio:device*"
JP5_GLOB = "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"


def _read_int(path: str) -> int:
    with open(path) as fh:
        return int(fh.read().strip())


def _read_text(path: str) -> str:
    with open(path) as fh:
        return fh.read().strip()


def read_jp4(device: str) -> dict:
    """rail -> (volts, amps, watts) from one iio device."""
    rails = {}
    for name_file in sorted(glob.glob(os.path.join(device, "rail_name_*"))):
        k = name_file.rsplit("_", 1)[1]
        name = _read_text(name_file)
        if name in UNCONNECTED:
            continue
        volts = _read_int(os.path.join(device, "in_voltage%s_input" % k)) / 1000.0
        amps = _read_int(os.path.join(device, "in_current%s_input" % k)) / 1000.0
        power_file = os.path.join(device, "in_power%s_input" % k)
        watts = _read_int(power_file) / 1000.0 if os.path.exists(power_file) else volts * amps
        rails[name] = (volts, amps, watts)
    return rails


def read_jp5(device: str) -> dict:
    """rail -> (volts, amps, watts) from one hwmon device (no power file: P = V * I)."""
    rails = {}
    for label_file in sorted(glob.glob(os.path.join(device, "in*_label"))):
        k = os.path.basename(label_file)[2:-len("_label")]
        name = _read_text(label_file)
        if name in UNCONNECTED:
            continue
        volts = _read_int(os.path.join(device, "in%s_input" % k)) / 1000.0
        amps = _read_int(os.path.join(device, "curr%s_input" % k)) / 1000.0
        rails[name] = (volts, amps, volts * amps)
    return rails


def find_devices(root: str = "/") -> list:
    """(reader, device directory) for every INA3221 found under `root`."""
    found = [(read_jp4, d) for d in sorted(glob.glob(os.path.join(root, JP4_GLOB)))]
    found += [(read_jp5, d) for d in sorted(glob.glob(os.path.join(root, JP5_GLOB)))]
    return found


def read_rails(root: str = "/") -> dict:
    rails = {}
    for reader, device in find_devices(root):
        rails.update(reader(device))
    return rails


class Ina3221Source(PollingSource):
    name = "ina3221"
    DEFAULTS = {"rate_hz": 20.0, "root": "/"}
    ON_DEVICE = True  # reads the device itself: on a board it runs inside the agent

    def __init__(self, rate_hz: float = 20.0, root: str = "/"):
        super().__init__(rate_hz)
        self.root = root

    def where(self) -> str:
        return (f"no INA3221 under {self.root} ({JP4_GLOB} or {JP5_GLOB}); this source is for Jetson boards")

    def read(self):
        rails = read_rails(self.root)
        if not rails:
            return None
        watts = {name: w for name, (_v, _a, w) in rails.items()}
        total = total_power_w(watts)
        for name in ("VDD_IN", "POM_5V_IN"):
            if name in rails:
                volts, amps, _ = rails[name]
                return volts, amps, total
        return float("nan"), float("nan"), total
