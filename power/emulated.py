"""Emulated meters (emulated-ina219, emulated-um24c/25c/34c): a meter emulator started as its own process
(a 'device' on a pty) and read by the real source for that meter, so the serial path is the one real
hardware takes. `emulated = True` and an "emulated-" name label every row and report that uses them."""

from __future__ import annotations

import subprocess
import sys

from power.emulators.profile import check_profile
from power.ina219 import Ina219Source
from power.rdtech import RdtechSource

# the emulators' fault injection, as [power] keys (0: off)
FAULT_KEYS = {"garbage_every": 0, "bad_checksum_every": 0, "silent_after_s": 0.0, "unplug_after_s": 0.0}


def fault_args(options: dict) -> list:
    return [arg for key in FAULT_KEYS if options[key]
            for arg in ("--" + key.replace("_", "-"), str(options[key]))]


def start_emulator(module: str, args: list) -> tuple:
    """(process, pty path) of `python -m module args`, which prints its PORT and EPOCH_NS first."""
    process = subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    header = dict(process.stdout.readline().split(" ", 1) for _ in range(2))
    return process, header["PORT"].strip()


class EmulatedMeter:
    """Mixed into a real meter's source: closing the reader also ends its emulator."""

    emulated = True
    process = None

    @classmethod
    def check_options(cls, options: dict) -> None:
        """Values the types alone do not rule out (power.registry runs it before anything starts)."""
        check_profile(options["profile"])

    @classmethod
    def attach(cls, process, make):
        try:
            source = make()
        except BaseException:
            process.kill()
            raise
        source.process = process
        return source

    def close(self) -> None:
        super().close()
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


class EmulatedIna219(EmulatedMeter, Ina219Source):
    name = "emulated-ina219"
    DEFAULTS = {"rate_hz": 1000.0, "profile": "cpu-load", **FAULT_KEYS}

    @classmethod
    def from_options(cls, options: dict) -> EmulatedIna219:
        args = ["--rate-hz", str(options["rate_hz"]), "--profile", options["profile"]]
        process, port = start_emulator("power.emulators.ina219", args + fault_args(options))
        return cls.attach(process, lambda: cls(port, 1_000_000, options["rate_hz"], 0.1))


class EmulatedRdtech(EmulatedMeter, RdtechSource):
    DEFAULTS = {"baud": 115200, "rate_hz": 10.0, "profile": "cpu-load", **FAULT_KEYS}

    @classmethod
    def from_options(cls, options: dict) -> EmulatedRdtech:
        args = ["--model", cls.MODEL, "--baud", str(options["baud"]), "--profile", options["profile"]]
        process, port = start_emulator("power.emulators.rdtech", args + fault_args(options))
        source = cls.attach(process, lambda: cls(cls.MODEL, port, options["baud"], options["rate_hz"]))
        source.name = "emulated-" + cls.MODEL.lower()
        return source


class EmulatedUm24c(EmulatedRdtech):
    MODEL = "UM24C"


class EmulatedUm25c(EmulatedRdtech):
    MODEL = "UM25C"


class EmulatedUm34c(EmulatedRdtech):
    MODEL = "UM34C"
