"""The code of a variant family, part of its cache key: changing how a variant is built rebuilds it."""

from __future__ import annotations

import importlib
import inspect


def family_code(name: str) -> str:
    return inspect.getsource(importlib.import_module(f"workloads.variants.{name}"))
