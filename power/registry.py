"""Power sources by name, from a target's [power] table or `--power name:key=value,...`.

    [power]
    source = "um25c"          # see SOURCES
    port = "/dev/rfcomm0"     # the source's own keys (port, baud, rate_hz, ...)
    idle_s = 5.0              # idle baseline measured before the first job
    min_samples = 20          # per window; windows are lengthened for slow meters
    strict = false            # stop the run (cleanly) when the meter fails mid-job
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable

from harness.core.errors import ConfigError, suggest, unknown_name
from power.energy import MIN_SAMPLES_PER_WINDOW
from power.source import PowerSource

COMMON_KEYS = {"idle_s": 5.0, "min_samples": MIN_SAMPLES_PER_WINDOW, "strict": False}


@dataclass(frozen=True)
class PowerSpec:
    source: str = "none"
    options: dict = field(default_factory=dict)
    idle_s: float = 5.0
    min_samples: int = MIN_SAMPLES_PER_WINDOW
    strict: bool = False
    where: str = ""


def _ina219(o):
    from power.ina219 import Ina219Source
    return Ina219Source(o["port"], o["baud"], o["rate_hz"], o["shunt_ohm"])


def _rdtech(model):
    def make(o):
        from power.rdtech import RdtechSource
        return RdtechSource(model, o["port"], o["baud"], o["rate_hz"])
    return make


def _tegrastats(o):
    from power.tegrastats import TegrastatsSource
    return TegrastatsSource(o["rate_hz"], o["command"])


def _ina3221(o):
    from power.ina3221 import Ina3221Source
    return Ina3221Source(o["rate_hz"], o["root"])


def _hwmon(o):
    from power.hwmon import HwmonSource
    return HwmonSource(o["rate_hz"], o["root"])


def _rapl(o):
    from power.rapl import RaplSource
    return RaplSource(o["rate_hz"], o["root"])


def _pynq_pmbus(o):
    from power.pynq_pmbus import PynqPmbusSource
    return PynqPmbusSource(o["rate_hz"], o["rails"])


def _pmic(o):
    from power.rpi_pmic import RpiPmicSource
    return RpiPmicSource(o["rate_hz"], o["command"])


class EmulatedSource:
    """Starts a meter emulator as its own process (a 'device' on a pty) and reads it with the real
    source for that meter: the serial path is the one real hardware takes."""

    def __init__(self, module: str, args: list[str], make_reader: Callable[[str], PowerSource], name: str):
        self.process = subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, start_new_session=True)
        header = dict(self.process.stdout.readline().split(" ", 1) for _ in range(2))
        self.port = header["PORT"].strip()
        self.epoch_ns = int(header["EPOCH_NS"])
        self.reader = make_reader(self.port)
        self.reader.name = name
        self.reader.emulated = True
        self.reader.close = self._closing(self.reader.close)

    def _closing(self, close_reader):
        def close():
            close_reader()
            if self.process.poll() is None:
                self.process.stdin.close()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
        return close


def _emulated_ina219(o):
    from power.ina219 import Ina219Source
    args = ["--rate-hz", str(o["rate_hz"]), "--profile", o["profile"]]
    return EmulatedSource("power.emulators.ina219", args + _fault_args(o),
                          lambda port: Ina219Source(port, 1_000_000, o["rate_hz"], 0.1),
                          "emulated-ina219").reader


def _emulated_rdtech(model):
    def make(o):
        from power.rdtech import RdtechSource
        args = ["--model", model, "--baud", str(o["baud"]), "--profile", o["profile"]]
        return EmulatedSource("power.emulators.rdtech", args + _fault_args(o),
                              lambda port: RdtechSource(model, port, o["baud"], o["rate_hz"]),
                              f"emulated-{model.lower()}").reader
    return make


FAULT_KEYS = {"garbage_every": 0, "bad_checksum_every": 0, "silent_after_s": 0.0, "unplug_after_s": 0.0}


def _fault_args(o) -> list[str]:
    return [arg for key in FAULT_KEYS if o[key] for arg in (f"--{key.replace('_', '-')}", str(o[key]))]


SERIAL = {"port": None}
# name -> (factory, {key: default}); a default of None means the key is required
SOURCES: dict[str, tuple[Callable, dict]] = {
    "ina219": (_ina219, {**SERIAL, "baud": 1_000_000, "rate_hz": 1000.0, "shunt_ohm": 0.1}),
    "um24c": (_rdtech("UM24C"), {**SERIAL, "baud": 9600, "rate_hz": 2.0}),
    "um25c": (_rdtech("UM25C"), {**SERIAL, "baud": 9600, "rate_hz": 2.0}),
    "um34c": (_rdtech("UM34C"), {**SERIAL, "baud": 9600, "rate_hz": 2.0}),
    "tegrastats": (_tegrastats, {"rate_hz": 10.0, "command": "tegrastats"}),
    "ina3221": (_ina3221, {"rate_hz": 20.0, "root": "/"}),
    "hwmon": (_hwmon, {"rate_hz": 50.0, "root": "/"}),
    "rapl": (_rapl, {"rate_hz": 20.0, "root": "/"}),
    "rpi-pmic": (_pmic, {"rate_hz": 5.0, "command": "vcgencmd"}),
    "pynq-pmbus": (_pynq_pmbus, {"rate_hz": 10.0, "rails": "all"}),
    "emulated-ina219": (_emulated_ina219, {"rate_hz": 1000.0, "profile": "cpu-load", **FAULT_KEYS}),
    "emulated-um24c": (_emulated_rdtech("UM24C"), {"baud": 115200, "rate_hz": 10.0, "profile": "cpu-load",
                                                    **FAULT_KEYS}),
    "emulated-um25c": (_emulated_rdtech("UM25C"), {"baud": 115200, "rate_hz": 10.0, "profile": "cpu-load",
                                                    **FAULT_KEYS}),
    "emulated-um34c": (_emulated_rdtech("UM34C"), {"baud": 115200, "rate_hz": 10.0, "profile": "cpu-load",
                                                    **FAULT_KEYS}),
}
NAMES = ("none", *SOURCES)
# Sources that read the device itself: on a board target they run inside the agent, on the board's clock.
ON_DEVICE = ("tegrastats", "ina3221", "hwmon", "rapl", "rpi-pmic", "pynq-pmbus")


def power_spec(values: dict, where: str) -> PowerSpec:
    """Validate a [power] table (or the parsed --power string)."""
    values = dict(values)
    source = values.pop("source", "none")
    if source not in NAMES:
        raise unknown_name("power source", source, NAMES, where)
    common = {k: values.pop(k, default) for k, default in COMMON_KEYS.items()}
    defaults = SOURCES[source][1] if source != "none" else {}
    for key in values:
        if key not in defaults:
            raise ConfigError(f"{where}: '{key}' is not a key of power source '{source}'"
                              f"{suggest(key, [*defaults, *COMMON_KEYS])}; known: "
                              f"{', '.join([*defaults, *COMMON_KEYS])}")
    options = {k: values.get(k, default) for k, default in defaults.items()}
    missing = [k for k, v in options.items() if v is None]
    if missing:
        raise ConfigError(f"{where}: power source '{source}' needs {', '.join(missing)} "
                          f"(e.g. port = \"/dev/ttyUSB0\")")
    for key, default in defaults.items():
        if default is not None and not isinstance(options[key], type(default)) and not (
                isinstance(default, float) and isinstance(options[key], int)):
            raise ConfigError(f"{where}: power '{key}' = {options[key]!r}: expected "
                              f"{type(default).__name__}")
    if "rate_hz" in options and not options["rate_hz"] > 0:
        raise ConfigError(f"{where}: power 'rate_hz' must be > 0")
    return PowerSpec(source, options, float(common["idle_s"]), int(common["min_samples"]),
                     bool(common["strict"]), where)


def parse_cli(text: str) -> PowerSpec:
    """`--power um25c:port=/dev/rfcomm0,baud=9600` (values read as TOML scalars when they parse)."""
    import tomllib

    name, _, rest = text.partition(":")
    values: dict = {"source": name}
    for item in filter(None, rest.split(",")):
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--power {text}: '{item}' is not key=value")
        try:
            values[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            values[key.strip()] = raw
    return power_spec(values, f"--power {text}")


def make_source(spec: PowerSpec) -> PowerSource:
    return SOURCES[spec.source][0](spec.options)


def board_side_refs() -> list[str]:
    """Import references of the sources that run inside the agent on a board (shipped in its bundle)."""
    return ["power.tegrastats:TegrastatsSource", "power.ina3221:Ina3221Source", "power.hwmon:HwmonSource",
            "power.rapl:RaplSource", "power.rpi_pmic:RpiPmicSource", "power.pynq_pmbus:PynqPmbusSource"]
