"""NVIDIA Jetson over SSH: onnxruntime (CUDA / TensorRT providers where the board's build has them),
TensorRT and PyTorch CUDA backends where installed, on the board.

Extra [target] keys:
    lock_clocks = true          pin clocks at their maximum for the run with jetson_clocks, after storing
                                the current settings; they are restored when the run ends, also on errors
                                and Ctrl-C
    jetson_clocks = "jetson_clocks"   the tool's path on the board
    sudo = true                 run jetson_clocks through `sudo -n` (passwordless sudo for it is needed)
The agent records the L4T release, nvpmodel mode, CPU and GPU frequencies and temperatures.
"""

from __future__ import annotations

from harness.core.config import Table
from harness.core.errors import ConfigError
from targets.board import BoardSession, BoardTarget

STORE_FILE = "edgebench-jetson-clocks.conf"


class JetsonSession(BoardSession):
    board_kind = "jetson"

    def configure(self, table: Table) -> None:
        self.lock_clocks = table.take("lock_clocks", bool, False)
        self.tool = table.take("jetson_clocks", str, "jetson_clocks")
        self.sudo = table.take("sudo", bool, True)
        self._locked = False

    def _clocks(self, *args: str) -> None:
        argv = (["sudo", "-n"] if self.sudo else []) + [self.tool, *args]
        done = self.link.run(argv, what="jetson_clocks")
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
            raise ConfigError(f"{self.spec.file}: `{' '.join(argv)}` failed on the board ({said}); allow it "
                              f"in sudoers (NOPASSWD) or set lock_clocks = false")

    def info(self) -> dict:
        facts = super().info()
        if self.lock_clocks and not self._locked:
            self._clocks("--store", self.stager.remote_path(STORE_FILE))
            self._locked = True
            self._clocks()
            facts["clocks_locked"] = True
        return facts

    def close(self) -> None:
        try:
            if self._locked:
                self._clocks("--restore", self.stager.remote_path(STORE_FILE))
                self._locked = False
        finally:
            super().close()


class JetsonTarget(BoardTarget):
    session_class = JetsonSession
