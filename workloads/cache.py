"""A content-addressed cache on the host: prepared data, trained models and built variants.

Entries are directories named by a hash of everything that determines them; they are built in a temporary
directory and renamed into place, so an interrupted build never leaves a half entry behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.core.environment import PROJECT_ROOT


def cache_root() -> Path:
    """$EDGEBENCH_CACHE, else .cache/ in a source checkout, else ~/.cache/edgebench."""
    if os.environ.get("EDGEBENCH_CACHE"):
        return Path(os.environ["EDGEBENCH_CACHE"])
    if (PROJECT_ROOT / "pyproject.toml").exists() and os.access(PROJECT_ROOT, os.W_OK):
        return PROJECT_ROOT / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgebench"


def cached_dir(kind: str, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """The cache entry `kind/key`, built by `build(tmp_dir)` if absent. Returns (path, was_built)."""
    final = cache_root() / kind / key
    if (final / ".complete").exists():
        return final, False
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text("")
        if final.exists():  # a stale entry without .complete
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final, True
