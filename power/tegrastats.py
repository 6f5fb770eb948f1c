"""NVIDIA Jetson rails from tegrastats lines, every generation in the reference captures.

    Nano (JP4):   POM_5V_IN 933/933 POM_5V_GPU 0/0 ...            (mW, current/average)
    TX2:          VDD_SYS_GPU 153/158 ... VDD_IN 3140/3208 ...
    AGX Xavier:   GPU 463/463 CPU 618/618 SOC 2936/2936 ...        (no VDD_IN: rails are summed)
    Orin (JP6):   VDD_IN 17946mW/15710mW VDD_CPU_GPU_CV 8896mW/7585mW ...
    JetPack 7:    VDD_GPU_SOC 5139mW/5139mW/5139mW                 (three values)

The first value is the instantaneous one; the others are running averages. Runs on the board (agent):
standard library only, Python 3.8 syntax.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from power.rails import UNCONNECTED, total_power_w
from power.source import PowerSource, clock_ns

# NAME cur[mW]/avg[mW][/x[mW]] — "RAM 4321/62801MB" and friends do not match (unit MB, kB)
_RAIL = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/(\d+)(?:mW)?)?(?=\s|$)")


def parse_rails_mw(line: str) -> dict:
    """Instantaneous power of every rail in the line, in mW (unconnected 'NC' rails left out)."""
    return {name: int(current) for name, current, _avg, _third in _RAIL.findall(line)
            if name not in UNCONNECTED}


def parse_total_w(line: str) -> float | None:
    rails = parse_rails_mw(line)
    if not rails:
        return None
    return total_power_w({k: v / 1000.0 for k, v in rails.items()})


class TegrastatsSource(PowerSource):
    """Runs `tegrastats --interval <ms>` (root on Orin, or power fields are absent) and reads its lines."""

    name = "tegrastats"
    DEFAULTS = {"rate_hz": 10.0, "command": "tegrastats"}
    ON_DEVICE = True  # reads the device itself: on a board it runs inside the agent

    def __init__(self, rate_hz: float = 10.0, command: str = "tegrastats"):
        super().__init__(rate_hz)
        self.command = [command, "--interval", str(max(1, int(1000 / rate_hz)))]
        self.process = None

    def check(self) -> None:
        from harness.core.errors import ConfigError

        if shutil.which(self.command[0]) is None:
            raise ConfigError(f"power: cannot run {self.command[0]} (not found or not executable); "
                              f"tegrastats ships with JetPack (L4T) and needs root for power fields on Orin")

    def run(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, bufsize=1)
        try:
            for line in self.process.stdout:
                if self._stop.is_set():
                    break
                total = parse_total_w(line)
                if total is None:
                    self.dropped_frames += 1
                    continue
                self.trace.append(clock_ns(), float("nan"), float("nan"), total)
        finally:
            self.process.terminate()
            self.process.wait(timeout=5)
