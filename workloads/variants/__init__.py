"""Variant families: each turns a workload's base model into one artifact.

A family is a module (or any object) with `parse(table) -> params` (validates the variant's keys in the
workload file, naming file and key), `precision(params)` (known before building, for planning),
`build(base, variant) -> Artifact` (cached by the base model, the family, its parameters and its code)
and optionally `expand(name, params) -> [(name, params), ...]` (one entry -> several variants) and
`STRATEGY` (split computing: "offload", "split" or "bottleneck"; such variants run once per link setting,
head on the device and tail on a server; default "local": whole on the device). Families
are the `edgebench.variants` entry-point group, so a separate package can add one; they are imported when
first used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, NamedTuple

from harness.core.errors import ConfigError
from harness.core.jobs import LOCAL
from harness.core.plugins import find, registry

GROUP = "edgebench.variants"


def single(name: str, params: dict) -> list[tuple[str, dict]]:
    return [(name, params)]


class Family(NamedTuple):
    parse: Callable
    precision: Callable[[dict], str]
    build: Callable
    expand: Callable[[str, dict], list[tuple[str, dict]]] = single  # one entry -> several variants
    strategy: str = LOCAL


def load_family(name: str, where: str = "") -> Family:
    """Family `name`; errors name the plug-in and its distribution (unknown names: "did you mean")."""
    plugin = find(GROUP, name, where)
    obj = plugin.load(where)
    missing = [attr for attr in ("parse", "precision", "build") if not callable(getattr(obj, attr, None))]
    if missing:
        raise ConfigError(f"{where + ': ' if where else ''}variant family '{name}' ({plugin.ref}, from "
                          f"{plugin.origin}) has no {', '.join(missing)}: a family provides parse, "
                          f"precision, build and optionally expand")
    return Family(obj.parse, obj.precision, obj.build, getattr(obj, "expand", single),
                  getattr(obj, "STRATEGY", LOCAL))


class _Families(Mapping):
    """name -> Family over the entry points; a family is imported on first lookup."""

    def __getitem__(self, name: str) -> Family:
        if name not in registry(GROUP):
            raise KeyError(name)
        return load_family(name)

    def __contains__(self, name) -> bool:  # without importing the family
        return name in registry(GROUP)

    def __iter__(self):
        return iter(registry(GROUP))

    def __len__(self) -> int:
        return len(registry(GROUP))

    def __repr__(self) -> str:
        return f"FAMILIES({', '.join(self)})"


FAMILIES: Mapping[str, Family] = _Families()
