"""Intel/AMD RAPL through powercap: energy counters (uJ) that wrap at max_energy_range_uj.

Power is the counter's difference over each poll period. Only top-level domains are summed
(intel-rapl:N, not intel-rapl:N:M), since nested domains are already part of their parent.
"""

from __future__ import annotations

import glob
import os
import re

from power.polling import PollingSource
from power.source import clock_ns

TOP_LEVEL = re.compile(r"intel-rapl:\d+$")


def find_domains(root: str = "/") -> list:
    pattern = os.path.join(root, "sys/class/powercap/intel-rapl/intel-rapl:*")
    return [d for d in sorted(glob.glob(pattern)) if TOP_LEVEL.search(d)]


def read_counter_uj(domain: str) -> tuple:
    with open(os.path.join(domain, "energy_uj")) as fh:
        energy = int(fh.read().strip())
    with open(os.path.join(domain, "max_energy_range_uj")) as fh:
        wrap = int(fh.read().strip())
    return energy, wrap


def energy_delta_uj(previous: int, current: int, wrap: int) -> int:
    """Counter difference, adding the range back when the counter wrapped."""
    return current - previous if current >= previous else current + wrap - previous


class RaplSource(PollingSource):
    name = "rapl"
    DEFAULTS = {"rate_hz": 20.0, "root": "/"}
    ON_DEVICE = True  # reads the device itself: on a board it runs inside the agent

    def __init__(self, rate_hz: float = 20.0, root: str = "/"):
        super().__init__(rate_hz)
        self.root = root
        self.last = None  # (t_ns, {domain: energy_uj})

    def where(self) -> str:
        return (f"no powercap domains under {self.root}sys/class/powercap/intel-rapl (energy_uj is root-only "
                f"on recent kernels; AMD needs Linux >= 5.8)")

    def read(self):
        domains = find_domains(self.root)
        if not domains:
            return None
        now = clock_ns()
        counters = {d: read_counter_uj(d) for d in domains}
        previous, self.last = self.last, (now, {d: e for d, (e, _w) in counters.items()})
        if previous is None:
            return float("nan"), float("nan"), float("nan")  # the first read only starts the counters
        t0, energies = previous
        joules = sum(energy_delta_uj(energies[d], e, w) for d, (e, w) in counters.items() if d in energies)
        return float("nan"), float("nan"), joules / 1e6 / ((now - t0) / 1e9)
