"""PMBus power rails of PYNQ boards that have them (ZCU104, ZCU102, ...), through pynq's sensor API:
`pynq.get_rails()` -> {name: rail} with `rail.power.value` in watts. Total = the chosen rails' sum.
Runs on the board (agent): Python 3.8 syntax; pynq is imported only here.
"""

from __future__ import annotations

from power.polling import PollingSource


class PynqPmbusSource(PollingSource):
    name = "pynq-pmbus"
    DEFAULTS = {"rate_hz": 10.0, "rails": "all"}
    ON_DEVICE = True  # reads the device itself: on a board it runs inside the agent

    def __init__(self, rate_hz: float = 10.0, rails: str = "all", get_rails=None):
        super().__init__(rate_hz)
        self.wanted = None if rails == "all" else [r.strip() for r in rails.split(",") if r.strip()]
        self._get_rails = get_rails

    def where(self) -> str:
        return "PMBus rails exist on boards such as the ZCU104 (not the PYNQ-Z2: use a host-side meter)"

    def _rails(self):
        if self._get_rails is None:
            import pynq
            self._get_rails = pynq.get_rails
        rails = self._get_rails()
        if self.wanted is None:
            return rails
        missing = [r for r in self.wanted if r not in rails]
        if missing:
            raise OSError("no rail(s) {}; the board has {}".format(", ".join(missing), ", ".join(sorted(rails))))
        return {name: rails[name] for name in self.wanted}

    def read(self):
        powers = [rail.power.value for rail in self._rails().values() if getattr(rail, "power", None) is not None]
        if not powers:
            return None
        return float("nan"), float("nan"), float(sum(powers))
