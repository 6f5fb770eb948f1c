"""A content-addressed cache on the host: prepared data, trained models and built variants.

Entries are directories named by a hash of everything that determines them; they are built in a temporary
directory and renamed into place, so an interrupted build never leaves a half entry behind.

Several edgebench processes may share one cache: an entry is built under an exclusive lock on its lock
file (`<kind>/.<key>.lock`, fcntl.flock), so a second process waits and then takes the finished entry;
an entry marked complete is never deleted or replaced, so nothing is removed under a reader. Only what a
builder that died left behind (a temporary directory `.<key>~*`, an entry without `.complete`) is cleared,
under the lock.

A build can first ask only for what is cached (`cached_only()`: an absent entry raises NotCached instead
of being built), so that the entries that do need building can be handed to worker processes
(workloads/build_pool.py), or a dry run can say what would be built (`cached_only(write_cheap=False)`:
nothing written at all); `built_entries()` lists the entries a block built, to say whether an artifact was
built or taken from the cache.
"""

from __future__ import annotations

import contextvars
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

# None: build what is absent; else inside cached_only(), whether its absent cheap entries are written
_CACHED_ONLY = contextvars.ContextVar("edgebench_cached_only", default=None)
_BUILT = contextvars.ContextVar("edgebench_built_entries", default=None)


class NotCached(Exception):
    """Raised inside `cached_only()` for an entry that is not in the cache."""

    def __init__(self, kind: str, key: str):
        super().__init__(f"{kind}/{key}")
        self.kind, self.key = kind, key

    def __reduce__(self):
        return NotCached, (self.kind, self.key)


@contextmanager
def cached_only(write_cheap: bool = True) -> Iterator[None]:
    """In this block cached_dir returns complete entries and raises NotCached for absent ones, except
    `cheap` ones: built in place, or with `write_cheap=False` (a dry run, which only looks at what the
    block returns) not written, their path returned as if they were."""
    token = _CACHED_ONLY.set(write_cheap)
    try:
        yield
    finally:
        _CACHED_ONLY.reset(token)


@contextmanager
def built_entries() -> Iterator[list[str]]:
    """A list that fills with `kind/key` of every entry this block built (not those found complete, nor
    `cheap` ones)."""
    built: list[str] = []
    token = _BUILT.set(built)
    try:
        yield built
    finally:
        _BUILT.reset(token)


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


def cached_dir(kind: str, key: str, build: Callable[[Path], None], cheap: bool = False) -> tuple[Path, bool]:
    """The cache entry `kind/key`, built by `build(tmp_dir)` if absent. Returns (path, was_built).
    Safe for several processes at once (see the module's docstring). `cheap`: built even inside
    cached_only() (writing it costs less than handing it to a worker)."""
    for part in (kind, key):
        if not _COMPONENT.fullmatch(part):
            raise ValueError(f"cache entry {kind}/{key}: {part!r} is not one safe path component")
    final = cache_root() / kind / key
    if (final / ".complete").exists():
        return final, False
    write_cheap = _CACHED_ONLY.get()
    if write_cheap is not None and not cheap:
        raise NotCached(kind, key)
    if write_cheap is False:
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
                if not cheap and (built := _BUILT.get()) is not None:
                    built.append(f"{kind}/{key}")
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
