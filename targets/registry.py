"""Targets by name: the `edgebench.targets` entry-point group, so a separate package can add one."""

from __future__ import annotations

from harness.core.plugins import load, registry
from targets.base import Target

GROUP = "edgebench.targets"


def adapters() -> dict:
    """name -> harness.core.plugins.Plugin (its import reference and the distribution that declared it)."""
    return registry(GROUP)


def load_adapter(name: str, where: str = ""):
    return load(GROUP, name, where, base=Target)
