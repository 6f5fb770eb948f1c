"""Plug-ins: objects named by an import reference ("module:attribute"). Board-side too (Python 3.8): the
agent imports a backend or a power source by the reference the host resolved, since a shipped agent has
no package metadata to look entry points up in."""

from __future__ import annotations

import importlib
import os


def load_source_file(path: str):
    """A module from a Python file that is not on the path (a model definition shipped with an
    artifact), under a name derived from the file so that two files never share a module."""
    import hashlib
    import importlib.util
    import sys

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
