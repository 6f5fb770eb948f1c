"""Emulates an RDTech UM24C / UM25C / UM34C: answers each 0xF0 with a 130-byte frame, sent at the pace
of the configured baud rate (a pty does not enforce it), values quantised to the meter's resolution.

    python -m power.emulators.rdtech --model UM25C --baud 115200 --profile steps
"""

from __future__ import annotations

import os
import select
import time

from power.emulators.base import Faults, PtyEmulator, emulator_main
from power.rdtech import encode

BITS_PER_BYTE = 10  # 8N1


class RdtechEmulator(PtyEmulator):
    def __init__(self, model: str = "UM25C", baud: int = 9600, profile: str = "steps",
                 faults: Faults | None = None, update_hz: float = 0.0):
        super().__init__(profile, faults)
        self.model = model.upper()
        self.baud = baud
        self.update_hz = update_hz  # 0: values as of the poll; else held between internal updates

    def frame_at(self, t_ns: int) -> bytes:
        if self.update_hz:
            tick_ns = int(1e9 / self.update_hz)
            t_ns = self.epoch_ns + (t_ns - self.epoch_ns) // tick_ns * tick_ns
        volts, amps = self.sample(t_ns)
        frame = bytearray(encode(self.model, volts, amps))
        if self.faults.bad_checksum_every and self.messages % self.faults.bad_checksum_every == 0:
            frame[129] ^= 0x5A  # the checksum (UM34C) or the end marker (UM24C/UM25C)
        return bytes(frame)

    def serve(self) -> None:
        while True:
            if self.should_unplug():
                self.unplug()
                return
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            for byte in os.read(self.master, 64):
                if byte != 0xF0 or self.silent():
                    continue
                self.messages += 1
                payload = self.frame_at(time.monotonic_ns())
                if self.garbage_due():
                    payload = b"\x0d\x4c\x00garbage" + payload[:40] + payload
                time.sleep(len(payload) * BITS_PER_BYTE / self.baud)
                self.write(payload)


def main(argv=None) -> None:
    def extra(parser):
        parser.add_argument("--model", default="UM25C", choices=["UM24C", "UM25C", "UM34C"])
        parser.add_argument("--baud", type=int, default=9600)
        parser.add_argument("--update-hz", type=float, default=0.0)

    emulator_main(lambda a, f: RdtechEmulator(a.model, a.baud, a.profile, f, a.update_hz), argv, extra)


if __name__ == "__main__":
    main()
