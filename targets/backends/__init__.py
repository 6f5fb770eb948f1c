"""Runtime backends that run an artifact on a device: the `edgebench.backends` entry-point group, so a
separate package can add one. Imported lazily: a board has only some runtimes.

The host resolves a backend's name to its import reference and puts that in each job request; the agent
imports it by that reference (a shipped agent has no package metadata). Stays on the standard library and
Python 3.8 syntax: the agent imports this package on boards (where BACKENDS is never read).
"""

from collections.abc import Mapping

from harness.core.plugins import find, registry

GROUP = "edgebench.backends"


class _Backends(Mapping):
    """name -> "module:Class", read from the entry points when first used."""

    def __getitem__(self, name):
        return registry(GROUP)[name].ref

    def __iter__(self):
        return iter(registry(GROUP))

    def __len__(self):
        return len(registry(GROUP))

    def __repr__(self):
        return "BACKENDS({!r})".format(dict(self))


BACKENDS = _Backends()


def check_backend_list(backends, where):
    """A target's or a suite's `backends`: a non-empty list of known backend names, each once."""
    from harness.core.errors import ConfigError, unknown_name

    if not backends:
        raise ConfigError("{} = []: expected a non-empty list of backend names".format(where))
    for name in backends:
        if not isinstance(name, str):
            raise ConfigError("{}: {!r} is not a backend name (a string); known: {}".format(
                where, name, ", ".join(sorted(BACKENDS))))
        if name not in BACKENDS:
            raise unknown_name("backend", name, BACKENDS, where)
        if backends.count(name) > 1:
            raise ConfigError("{}: '{}' is listed twice".format(where, name))
    return list(backends)


def backend_ref(name, where=""):
    """The backend's import reference ("module:Class"), which the agent loads. Imported here first, so a
    broken plug-in fails naming itself and its distribution instead of as a traceback from the agent
    (backend modules import their runtime lazily, so this needs no runtime on the host)."""
    from targets.backends.base import Backend

    plugin = find(GROUP, name, where)
    plugin.load(where, base=Backend)
    return plugin.ref
