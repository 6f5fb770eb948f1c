"""Raspberry Pi 5 PMIC rails from `vcgencmd pmic_read_adc`.

Lines look like `  VDD_CORE_A current(7)=6.22421000A` and `  VDD_CORE_V volt(15)=0.86173300V`; rails are
paired by name (not by index); EXT5V_V and BATT_V have no current. Total = sum of V * I over paired rails.
Runs on the board (agent): standard library only, Python 3.8 syntax.
"""

from __future__ import annotations

import re
import subprocess

from power.polling import PollingSource

_LINE = re.compile(r"^\s*(\S+)_([AV]) (?:current|volt)\(\d+\)=([-\d.]+)[AV]\s*$")


def parse_pmic(text: str) -> dict:
    """rail -> (volts, amps, watts) for every rail with both a voltage and a current."""
    volts, amps = {}, {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            rail, kind, value = match.group(1), match.group(2), float(match.group(3))
            (amps if kind == "A" else volts)[rail] = value
    return {rail: (volts[rail], amps[rail], volts[rail] * amps[rail]) for rail in amps if rail in volts}


class RpiPmicSource(PollingSource):
    name = "rpi-pmic"
    DEFAULTS = {"rate_hz": 5.0, "command": "vcgencmd"}
    ON_DEVICE = True  # reads the device itself: on a board it runs inside the agent

    def __init__(self, rate_hz: float = 5.0, command: str = "vcgencmd"):
        super().__init__(rate_hz)
        self.command = [command, "pmic_read_adc"]

    def where(self) -> str:
        return "vcgencmd pmic_read_adc works on a Raspberry Pi 5 only"

    def read(self):
        output = subprocess.run(self.command, capture_output=True, text=True, timeout=5).stdout
        rails = parse_pmic(output)
        if not rails:
            return None
        return float("nan"), float("nan"), sum(w for _v, _a, w in rails.values())
