"""Raspberry Pi over SSH: LiteRT (XNNPACK) and onnxruntime on the Pi's CPU.

Extra [target] keys:
    pin_cpus = "2-3"   run the agent under `taskset -c` on these CPUs (fewer interruptions, less variance)
The agent records model, governors, frequencies, throttling (vcgencmd get_throttled) and temperatures.
"""

from __future__ import annotations

import re

from harness.core.config import Table
from harness.core.errors import ConfigError
from targets.board import BoardSession, BoardTarget


class RpiSession(BoardSession):
    board_kind = "rpi"

    def configure(self, table: Table) -> None:
        self.pin_cpus = table.take("pin_cpus", str, None)
        if self.pin_cpus is not None and not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", self.pin_cpus):
            raise ConfigError(f"{table.where('pin_cpus')} = {self.pin_cpus!r}: a CPU list as taskset takes "
                              f"it, e.g. \"3\", \"2-3\" or \"0,2\"")

    def agent_prefix(self, job) -> list[str]:
        return ["taskset", "-c", self.pin_cpus] if self.pin_cpus else []


class RpiTarget(BoardTarget):
    session_class = RpiSession
