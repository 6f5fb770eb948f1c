"""What `--resume` checks before it continues a run, shared by the runner and `--dry-run --resume` so that both
refuse the same runs with the same words."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from harness.core.errors import ConfigError
from harness.core.hashing import content_hash


class Snapshotted(Protocol):
    def snapshot(self) -> dict: ...


def check_unchanged(run_dir: Path, run: Snapshotted, config_hash: str) -> None:
    """Refuse a run whose configuration, resolved again from its recorded request, no longer hashes to the
    config_hash it started with (run.json)."""
    if content_hash(run.snapshot()) != config_hash:
        raise ConfigError(f"{run_dir}: the target, suite or workload files (or a user's model and data "
                          f"files) changed since this run started; start a new run instead of resuming")
