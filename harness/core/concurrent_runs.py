"""Other edgebench runs measuring on this machine at the same time: they share its cores, caches and
memory bandwidth, so each disturbs the other's latencies. A measuring run holds an exclusive lock on a file
of its own in one directory per machine; a file whose lock can be taken belongs to a run that is gone."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path

# The start of the warning a row carries when another run measured at the same time (the reports count it)
CONCURRENT_WARNING = "another edgebench run measured on this machine at the same time"


def registry_dir() -> Path:
    """$EDGEBENCH_LOCK_DIR, else edgebench-measuring/ in the system's temporary directory."""
    return Path(os.environ.get("EDGEBENCH_LOCK_DIR") or Path(tempfile.gettempdir()) / "edgebench-measuring")


class MeasuringRuns:
    """This run's registration (while it measures) and a look at the others'."""

    def __init__(self, run_dir: Path):
        self.dir = registry_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{os.getpid()}.lock"
        self._fh = open(self.path, "w")
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        self._fh.write(json.dumps({"pid": os.getpid(), "run": str(run_dir)}))
        self._fh.flush()

    def others(self) -> list[str]:
        """The run directories of the other runs measuring now."""
        found = []
        for path in sorted(self.dir.glob("*.lock")):
            if path == self.path:
                continue
            try:
                with open(path) as fh:
                    try:
                        fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    except BlockingIOError:  # held: that run is alive and measuring
                        found.append(_describe(fh.read(), path))
            except OSError:
                continue  # it ended while we looked
        return found

    def close(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
        self._fh.close()  # releases the lock

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _describe(text: str, path: Path) -> str:
    try:
        info = json.loads(text)
        return f"{info['run']} (pid {info['pid']})"
    except (ValueError, KeyError, TypeError):
        return f"pid {path.stem}"
