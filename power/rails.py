"""Board power rails: which reading is the board's total. Shared by tegrastats, INA3221 and the Pi PMIC.

Standard library only, Python 3.8 syntax: these sources run inside the agent on a board.
"""

from __future__ import annotations

# Rails that measure the whole module's input: when one is present it is the total, else rails are summed.
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
UNCONNECTED = ("NC",)


def total_power_w(rails_w: dict) -> float:
    """The board's total from named rail powers (W)."""
    for name in TOTAL_RAILS:
        if name in rails_w:
            return rails_w[name]
    return sum(w for name, w in rails_w.items() if name not in UNCONNECTED)
