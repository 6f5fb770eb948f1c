"""A content-addressed cache on the host: prepared data, trained models and built variants.

Entries are directories named by a hash of everything that determines them; they are built in a temporary
directory and renamed into place, so an interrupted build never leaves a half entry behind.

Several edgebench processes may share one cache: an entry is built under an exclusive lock on its lock
file (`<kind>/.<key>.lock`, fcntl.flock), so a second process waits and then takes the finished entry;
an entry marked complete is never deleted or replaced, so nothing is removed under a reader. Only what a
builder that died left behind (a temporary directory `.<key>~*`, an entry without `.complete`) is cleared,
under the lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.core.environment import PROJECT_ROOT
from harness.core.errors import ConfigError

# kinds and keys are single path components inside the cache (they are built from safe names and hashes)
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# "no space left" and "quota exceeded": the disk, not the input
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def cache_root() -> Path:
    """$EDGEBENCH_CACHE, else .cache/ in a source checkout, else ~/.cache/edgebench."""
    if os.environ.get("EDGEBENCH_CACHE"):
        return Path(os.environ["EDGEBENCH_CACHE"])
    if (PROJECT_ROOT / "pyproject.toml").exists() and os.access(PROJECT_ROOT, os.W_OK):
        return PROJECT_ROOT / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgebench"


@contextmanager
def entry_lock(parent: Path, key: str) -> Iterator[None]:
    """The exclusive lock of the entry `parent/key`, held for the block (released if the process dies)."""
    fd = os.open(parent / f".{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _clear_leftovers(parent: Path, key: str, final: Path) -> None:
    """Under the entry's lock: what a builder that died left (its temporary directories, an entry
    without .complete). No one else builds this entry now, and no one reads an incomplete one."""
    for stale in parent.glob(f".{key}~*"):
        shutil.rmtree(stale, ignore_errors=True)
    if final.exists() and not (final / ".complete").exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{key}~stale-", dir=parent))
        os.replace(final, aside / "entry")
        shutil.rmtree(aside, ignore_errors=True)


def cached_dir(kind: str, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """The cache entry `kind/key`, built by `build(tmp_dir)` if absent. Returns (path, was_built).
    Safe for several processes at once (see the module's docstring)."""
    for part in (kind, key):
        if not _COMPONENT.fullmatch(part):
            raise ValueError(f"cache entry {kind}/{key}: {part!r} is not one safe path component")
    final = cache_root() / kind / key
    if (final / ".complete").exists():
        return final, False
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with entry_lock(parent, key):
            if (final / ".complete").exists():  # another process built it while this one waited
                return final, False
            _clear_leftovers(parent, key, final)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}~", dir=parent))
            try:
                build(tmp)
                (tmp / ".complete").write_text("")
                os.replace(tmp, final)  # final is absent: cleared above, and only lock holders create it
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise ConfigError(f"{parent}: no space left on the device while building the cache entry "
                              f"{kind}/{key} (its temporary files are removed); free some space or set "
                              f"EDGEBENCH_CACHE to a larger disk, then run again") from None
        raise
    return final, True
