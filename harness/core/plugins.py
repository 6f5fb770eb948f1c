"""Plug-ins: objects named by an import reference ("module:attribute").

On the host the four kinds (target adapters, runtime backends, power sources, variant families) are
entry-point groups, so a separate distribution can add any of them, and each entry remembers which
distribution declared it. Board-side too (Python 3.8): a shipped agent has no package metadata, so it
imports a backend or a power source by the reference the host resolved (`load_ref`).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass

from harness.core.errors import ConfigError, unknown_name

# entry-point group -> what its entries are called in messages
GROUPS = {
    "edgebench.targets": "target adapter",
    "edgebench.backends": "backend",
    "edgebench.power_sources": "power source",
    "edgebench.variants": "variant family",
}


def load_source_file(path: str):
    """A module from a Python file that is not on the path (a model definition shipped with an
    artifact), under a name derived from the file so that two files never share a module."""
    import hashlib
    import importlib.util

    name = "edgebench_code_" + hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def load_ref(ref: str):
    """The object `ref` = "package.module:Attribute" names."""
    module_name, sep, attribute = ref.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError("{!r} is not an import reference (module:attribute)".format(ref))
    obj = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Plugin:
    """One entry of a group: its name, import reference ("module:attr", or a module) and origin."""

    group: str
    name: str
    ref: str
    distribution: str
    version: str
    rivals: tuple = ()  # origins of other distributions that declare the same name

    @property
    def kind(self) -> str:
        return GROUPS.get(self.group, self.group)

    @property
    def origin(self) -> str:
        return "{} {}".format(self.distribution, self.version)

    @property
    def module(self) -> str:
        return self.ref.split("[")[0].partition(":")[0].strip()  # entry points may carry [extras]

    def load(self, where: str = "", base: type = None):
        """The object, imported; with `base`, it must be a subclass of it (the plug-in's kind)."""
        place = where + ": " if where else ""
        label = "{} '{}' ({}, from {})".format(self.kind, self.name, self.ref, self.origin)
        if self.rivals:  # which one wins would depend on sys.path order: make the user choose
            raise ConfigError("{}{} is also declared by {}; uninstall one of them".format(
                place, label, ", ".join(self.rivals)))
        try:
            if ":" in self.ref:
                obj = load_ref(self.ref.split("[")[0].strip())
            else:
                obj = importlib.import_module(self.module)
        except Exception as exc:  # a broken plug-in must not look like an edgebench bug
            raise ConfigError("{}{} failed to import: {}: {}".format(
                place, label, type(exc).__name__, exc)) from None
        if base is not None and not (isinstance(obj, type) and issubclass(obj, base)):
            raise ConfigError("{}{} is not a {}.{} subclass".format(place, label, base.__module__, base.__qualname__))
        return obj


_SCANNED = {}


def registry(group: str) -> dict:
    """name -> Plugin for every entry point of `group` in the installed distributions (read again when
    sys.path changes)."""
    key = (group, tuple(sys.path))
    if key not in _SCANNED:
        _SCANNED[key] = _scan(group)
    return dict(_SCANNED[key])


def _scan(group: str) -> dict:
    from importlib import metadata

    found = {}
    seen = set()
    for dist in metadata.distributions():  # in sys.path order, as imports resolve
        name = dist.metadata["Name"]
        if not name:
            continue
        normalized = re.sub(r"[-_.]+", "-", name).lower()
        if normalized in seen:  # a shadowed copy of a distribution already read (e.g. a stale egg-info)
            continue
        seen.add(normalized)
        for ep in dist.entry_points:
            if ep.group != group:
                continue
            plugin = Plugin(group, ep.name, ep.value, name, dist.version)
            if ep.name in found:
                first = found[ep.name]
                found[ep.name] = Plugin(group, ep.name, first.ref, first.distribution, first.version,
                                        first.rivals + (plugin.origin,))
            else:
                found[ep.name] = plugin
    return found


def find(group: str, name: str, where: str = "") -> Plugin:
    """The entry `name` of `group`, or an error listing the known names (with "did you mean")."""
    found = registry(group)
    if name not in found:
        raise unknown_name(GROUPS.get(group, group), name, found, where)
    return found[name]


def load(group: str, name: str, where: str = "", base: type = None):
    """The object entry `name` of `group` names, imported (and checked to subclass `base`); errors name
    the plug-in and its distribution."""
    return find(group, name, where).load(where, base)
