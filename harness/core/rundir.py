"""The run directory: runs/<run-id>/ with run.json, results.csv (one row per job, appended as each job
finishes) and raw/<job-id>.npz (every iteration's latency and the windows). Crash-safe and resumable."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from harness.core.errors import ConfigError
from harness.core.measurement import Window
from harness.core.migrations import check_header, migrate_in_place, read_info
from harness.core.schema import COLUMNS, RESULT_FORMAT_VERSION

# A job with one of these statuses is not run again by --resume; "failed" ones are.
FINAL_STATUSES = ("ok", "skipped")


class RunStore:
    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        self.results_csv = self.dir / "results.csv"
        self.run_json = self.dir / "run.json"
        # set by open() when it brought an older run to the current format: a line for the user
        self.migration_note: str | None = None

    @staticmethod
    def check_writable(runs_dir: Path) -> None:
        """Fail before any work when the run could not be stored."""
        try:
            Path(runs_dir).mkdir(parents=True, exist_ok=True)
            probe = Path(runs_dir) / ".write-probe"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"{runs_dir}: cannot write the run directory ({exc.strerror}); "
                              f"choose another with --runs-dir") from None

    @classmethod
    def create(cls, runs_dir: Path, run_id: str, run_info: dict) -> RunStore:
        """A new run directory; run.json gets `run_info` under this code's format_version."""
        if run_info.get("format_version", RESULT_FORMAT_VERSION) != RESULT_FORMAT_VERSION:
            raise ValueError(f"run_info format_version {run_info['format_version']!r}: a new run is "
                             f"written in format {RESULT_FORMAT_VERSION}")
        run_info = {"format_version": RESULT_FORMAT_VERSION, **run_info}
        store = cls(Path(runs_dir) / run_id)
        try:
            (store.dir / "raw").mkdir(parents=True, exist_ok=False)
            store.write_run_info(run_info)
            with open(store.results_csv, "w", newline="") as fh:
                csv.writer(fh).writerow(COLUMNS)
        except FileExistsError:
            raise ConfigError(f"{store.dir}: run directory exists already; resume it with "
                              f"--resume {store.dir}") from None
        except OSError as exc:
            raise ConfigError(f"{runs_dir}: cannot write the run directory ({exc.strerror}); "
                              f"choose another with --runs-dir") from None
        latest = Path(runs_dir) / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(run_id, target_is_directory=True)
        except OSError:
            pass  # a filesystem without symlinks still gets a complete run
        return store

    @classmethod
    def open(cls, run_dir: Path) -> RunStore:
        """An existing run, to resume: a run of an older result format is migrated in place first (the
        originals are kept beside it, see migration_note); a newer one is refused."""
        store = cls(run_dir)
        if not store.run_json.is_file() or not store.results_csv.is_file():
            raise ConfigError(f"{run_dir}: not an edgebench run directory (run.json and results.csv "
                              f"expected)")
        store.migration_note = migrate_in_place(store.dir)
        store._drop_partial_row()
        with open(store.results_csv, newline="") as fh:
            header = next(csv.reader(fh), [])
        check_header(RESULT_FORMAT_VERSION, header, store.results_csv)
        return store

    def _drop_partial_row(self) -> None:
        """A crash mid-write can leave a last line without its newline: it is not a finished job."""
        data = self.results_csv.read_bytes()
        if data and not data.endswith(b"\n"):
            self.results_csv.write_bytes(data[:data.rfind(b"\n") + 1])

    def run_info(self) -> dict:
        return read_info(self.run_json)

    def write_run_info(self, info: dict) -> None:
        tmp = self.run_json.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, indent=2, default=str))
        os.replace(tmp, self.run_json)

    def rows(self) -> list[dict]:
        with open(self.results_csv, newline="") as fh:
            return list(csv.DictReader(fh))

    def finished_job_ids(self) -> set[str]:
        return {r["job_id"] for r in self.rows() if r["status"] in FINAL_STATUSES}

    def append(self, row: dict) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown result columns: {sorted(unknown)}")
        with open(self.results_csv, "a", newline="") as fh:
            csv.writer(fh).writerow(["" if row.get(c) is None else row.get(c) for c in COLUMNS])
            fh.flush()
            os.fsync(fh.fileno())

    def save_latency(self, job_id: str, latency_ns: np.ndarray, windows: list[Window]) -> str:
        relative = f"raw/{job_id}.npz"
        tmp = self.dir / f"raw/.{job_id}.tmp.npz"
        np.savez_compressed(tmp, latency_ns=np.asarray(latency_ns, dtype=np.int64),
                            windows=np.array([[w.start_ns, w.end_ns, w.n_iterations] for w in windows],
                                             dtype=np.int64))
        os.replace(tmp, self.dir / relative)
        return relative


def load_latency(run_dir: Path, relative: str) -> tuple[np.ndarray, list[Window]]:
    with np.load(Path(run_dir) / relative, allow_pickle=False) as data:
        return data["latency_ns"], [Window(*map(int, w)) for w in data["windows"]]
