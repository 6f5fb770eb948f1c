"""Targets by name: the `edgebench.targets` entry-point group, so a separate package can add one."""

from __future__ import annotations

from importlib.metadata import entry_points

from harness.core.errors import ConfigError, unknown_name

GROUP = "edgebench.targets"


def adapters() -> dict:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_adapter(name: str, where: str = ""):
    found = adapters()
    if name not in found:
        raise unknown_name("target adapter", name, found, where)
    try:
        return found[name].load()
    except Exception as exc:  # a broken plug-in must not look like an edgebench bug
        raise ConfigError(f"{where}: target adapter '{name}' ({found[name].value}) failed to import: "
                          f"{type(exc).__name__}: {exc}") from None
