"""PYNQ FPGA boards over SSH: FINN dataflow accelerators (backend `finn`) through PYNQ overlays, with
the board's own Python (PYNQ images ship 3.10 with pynq installed).

The agent records the board (BOARD), the pynq version, CPU state and temperatures; the finn backend
records the bitfile, data types and clock. Power: PMBus rails where the board has them, else a
host-side meter in [power].
"""

from __future__ import annotations

from targets.board import BoardSession, BoardTarget


class PynqSession(BoardSession):
    board_kind = "pynq"


class PynqTarget(BoardTarget):
    session_class = PynqSession
