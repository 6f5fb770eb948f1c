"""What every emulator shares: a raw pty pair, fault injection, and running as its own process.

Run as a process it prints `PORT <slave path>` and `EPOCH_NS <monotonic ns of profile time zero>` and
serves until its stdin closes, like a meter that stays plugged in until the harness is done with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import tty
from dataclasses import dataclass

from power.emulators.profile import SUPPLY_V, make_profile


@dataclass
class Faults:
    garbage_every: int = 0         # insert junk bytes before every Nth message
    bad_checksum_every: int = 0    # corrupt every Nth frame (meters with a checksum)
    silent_after_s: float = 0.0    # stop answering after this long (port stays open)
    unplug_after_s: float = 0.0    # close the port after this long (the reader sees EIO)


class PtyEmulator:
    """Subclasses implement `serve()`; `self.master` is the meter's end of the pty."""

    def __init__(self, profile: str = "steps", faults: Faults | None = None):
        self.profile = make_profile(profile)
        self.faults = faults or Faults()
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass as they are
        tty.setraw(self.master)
        self.port = os.ttyname(self._slave)
        self.epoch_ns = time.monotonic_ns()
        self.messages = 0
        self.stopped = threading.Event()

    def profile_time_s(self, t_ns: int) -> float:
        return (t_ns - self.epoch_ns) / 1e9

    def sample(self, t_ns: int) -> tuple[float, float]:
        """(volts, amps) the meter sees at monotonic time t_ns."""
        watts = self.profile.power_w(self.profile_time_s(t_ns))
        return SUPPLY_V, watts / SUPPLY_V

    def elapsed_s(self) -> float:
        return (time.monotonic_ns() - self.epoch_ns) / 1e9

    def silent(self) -> bool:
        return bool(self.faults.silent_after_s) and self.elapsed_s() > self.faults.silent_after_s

    def should_unplug(self) -> bool:
        return bool(self.faults.unplug_after_s) and self.elapsed_s() > self.faults.unplug_after_s

    def garbage_due(self) -> bool:
        return bool(self.faults.garbage_every) and self.messages % self.faults.garbage_every == 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.master, view)
            view = view[written:]

    def start(self) -> "PtyEmulator":
        threading.Thread(target=self._serve_guarded, daemon=True).start()
        return self

    def _serve_guarded(self) -> None:
        try:
            self.serve()
        except OSError:
            pass  # the reader went away, or we unplugged ourselves
        finally:
            self.stopped.set()

    def unplug(self) -> None:
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def serve(self) -> None:
        raise NotImplementedError


def emulator_main(make, argv=None, extra_args=lambda parser: None) -> None:
    """`python -m power.emulators.<meter> [--profile ...] [fault flags]`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="steps")
    parser.add_argument("--garbage-every", type=int, default=0)
    parser.add_argument("--bad-checksum-every", type=int, default=0)
    parser.add_argument("--silent-after-s", type=float, default=0.0)
    parser.add_argument("--unplug-after-s", type=float, default=0.0)
    extra_args(parser)
    args = parser.parse_args(argv)
    faults = Faults(args.garbage_every, args.bad_checksum_every, args.silent_after_s, args.unplug_after_s)
    emulator = make(args, faults).start()
    print(f"PORT {emulator.port}\nEPOCH_NS {emulator.epoch_ns}", flush=True)
    sys.stdin.read()  # serve until the harness closes our stdin (or kills us)
    emulator.unplug()
