"""The code of a variant family, part of its cache key: changing how a variant is built rebuilds it."""

from __future__ import annotations

import importlib
import inspect

from harness.core.plugins import find


def family_code(name: str) -> str:
    """The source of the module that family `name`'s entry point names (a plug-in's too)."""
    return inspect.getsource(importlib.import_module(find("edgebench.variants", name).module))
