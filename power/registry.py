"""Power sources by name, from a target's [power] table or `--power name:key=value,...`.

    [power]
    source = "um25c"          # a name in the edgebench.power_sources entry-point group (`edgebench list power`)
    port = "/dev/rfcomm0"     # the source's own keys (port, baud, rate_hz, ...)
    idle_s = 5.0              # idle baseline measured before the first job
    min_samples = 20          # per window; windows are lengthened for slow meters
    strict = false            # stop the run (cleanly) when the meter fails mid-job

A source is a class (a power.source.PowerSource) with DEFAULTS (its keys; None = required), ON_DEVICE
and `from_options(options)`; a separate package adds one through the entry-point group. The host resolves
the name once, in `power_spec`: the spec (power.spec.PowerSpec) carries the source's import reference, so
a board-side agent (no package metadata there) creates it with power.spec.make_source all the same.
Host-side only (entry points, tomllib): a board gets power.spec, never this module.
"""

from __future__ import annotations

import math

from harness.core.errors import ConfigError, suggest, unknown_name
from harness.core.plugins import find, registry
from power.energy import MIN_SAMPLES_PER_WINDOW
from power.spec import PowerSpec

GROUP = "edgebench.power_sources"
COMMON_KEYS = {"idle_s": 5.0, "min_samples": MIN_SAMPLES_PER_WINDOW, "strict": False}


def names() -> tuple:
    return ("none", *registry(GROUP))


def source_class(name: str, where: str = ""):
    """The source's class, checked for the plug-in shape; errors name the plug-in and its distribution."""
    plugin = find(GROUP, name, where)
    cls = plugin.load(where)
    defaults = getattr(cls, "DEFAULTS", None)
    label = f"{where + ': ' if where else ''}power source '{name}' ({plugin.ref}, from {plugin.origin})"
    if not isinstance(defaults, dict) or not callable(getattr(cls, "from_options", None)):
        raise ConfigError(f"{label} is not a power source: it needs DEFAULTS (a dict of its keys) and "
                          f"a classmethod from_options(options) (see power.source.PowerSource)")
    if "rate_hz" not in defaults:
        raise ConfigError(f"{label}: DEFAULTS has no 'rate_hz' (its sampling rate; windows are sized "
                          f"from it)")
    return cls


def _check_common(common: dict, where: str) -> None:
    """idle_s: a finite number >= 0; min_samples: an integer >= 1; strict: true or false."""
    idle, samples, strict = common["idle_s"], common["min_samples"], common["strict"]
    if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not math.isfinite(idle) or not 0 <= idle <= 3600:
        raise ConfigError(f"{where}: power 'idle_s' = {idle!r}: accepted: a number of seconds from 0 to 3600")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"{where}: power 'min_samples' = {samples!r}: accepted: an integer >= 1")
    if not isinstance(strict, bool):
        raise ConfigError(f"{where}: power 'strict' = {strict!r}: accepted: true or false")


def _check_option(key: str, value, default, where: str) -> None:
    """A source's own key against the type of its default: numbers finite, > 0 (>= 0 where the default
    is 0: fault injection off), strings non-empty."""
    if default is None:  # required, of any type the source takes (a port is a string)
        ok, accepted = isinstance(value, str) and bool(value.strip()), "a non-empty string"
    elif isinstance(default, bool):
        ok, accepted = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        kinds = (int,) if isinstance(default, int) else (int, float)
        low = 0 if default == 0 else None
        ok = (isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
              and (value >= 0 if low == 0 else value > 0))
        accepted = (f"{'an integer' if kinds == (int,) else 'a finite number'} "
                    f"{'>= 0 (0: off)' if low == 0 else '> 0'}")
    elif isinstance(default, str):
        ok, accepted = isinstance(value, str) and bool(value.strip()), "a non-empty string"
    else:
        ok, accepted = isinstance(value, type(default)), type(default).__name__
    if not ok:
        raise ConfigError(f"{where}: power '{key}' = {value!r}: accepted: {accepted}")


def power_spec(values: dict, where: str) -> PowerSpec:
    """Validate a [power] table (or the parsed --power string): every key, its type and range, before
    anything is opened."""
    values = dict(values)
    source = values.pop("source", "none")
    if not isinstance(source, str):
        raise ConfigError(f"{where}: power 'source' = {source!r}: accepted: a power source's name; known: "
                          f"{', '.join(names())}")
    if source != "none" and source not in registry(GROUP):
        raise unknown_name("power source", source, names(), where)
    common = {k: values.pop(k, default) for k, default in COMMON_KEYS.items()}
    _check_common(common, where)
    cls = source_class(source, where) if source != "none" else None
    defaults = cls.DEFAULTS if cls is not None else {}
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
        _check_option(key, options[key], default, where)
    check = getattr(cls, "check_options", None)  # a source's own rules (allowed values), if it has any
    if check is not None:
        try:
            check(options)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    ref = find(GROUP, source).ref if cls is not None else ""
    return PowerSpec(source, options, float(common["idle_s"]), common["min_samples"],
                     bool(common["strict"]), where, ref, bool(cls is not None and cls.ON_DEVICE))


def parse_cli(text: str) -> PowerSpec:
    """`--power um25c:port=/dev/rfcomm0,baud=9600` (values read as TOML scalars when they parse)."""
    import tomllib

    name, _, rest = text.partition(":")
    values: dict = {"source": name.strip()}
    for item in filter(None, rest.split(",")):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--power {text}: '{item}' is not key=value")
        if key in values:
            raise ConfigError(f"--power {text}: '{key}' is given twice")
        try:
            values[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            values[key] = raw  # a bare word: a string (a port, a profile); type checks say the rest
    return power_spec(values, f"--power {text}")


def _on_device() -> dict:
    """name -> import reference of the sources that run inside the agent on a board. A plug-in that does
    not import is left out: choosing it fails in power_spec with its own error, and leaving it out here
    keeps it from breaking runs that do not use it."""
    found = {}
    for name, plugin in registry(GROUP).items():
        try:
            if source_class(name).ON_DEVICE:
                found[name] = plugin.ref
        except ConfigError:
            pass
    return found


def board_side_refs() -> list:
    """Import references of the sources that run inside the agent on a board (shipped in its bundle)."""
    return list(_on_device().values())
