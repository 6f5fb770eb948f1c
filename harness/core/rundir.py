"""The run directory: runs/<run-id>/ with run.json, results.csv (one row per job, appended as each job
finishes) and raw/<job-id>.npz (every iteration's latency and the windows). Crash-safe and resumable.

Resume trusts a row only when it parses completely against the schema (`complete_row_problem`): every
column present, every value of its column's kind, the job's identity filled in and matching its job id,
and for an `ok` row its numbers and raw file. Any other row's job runs again, with a note naming its line;
a record that is no row at all (cut short, unreadable) is moved out of results.csv into
results.rejected.csv, so that the rows appended after it read back whole."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np

from harness.core.errors import ConfigError
from harness.core.jobs import Job
from harness.core.measurement import Window
from harness.core.migrations import IDENTITY_COLUMNS, check_header, migrate_in_place, read_info
from harness.core.schema import BY_NAME, COLUMNS, RESULT_FORMAT_VERSION, parse_cell

# A job with one of these statuses is not run again by --resume; "failed" ones are.
FINAL_STATUSES = ("ok", "skipped")
STATUSES = ("ok", "skipped", "failed")
# what every row has, and what an ok row has besides (a measured job)
REQUIRED = (*IDENTITY_COLUMNS[:3], *IDENTITY_COLUMNS[4:], "finished_at")
REQUIRED_OK = ("n_iterations", "n_windows", "latency_mean_ms", "latency_p50_ms", "throughput_ips",
               "raw_latency_file")
# run.json keys a resume needs: (key, type, what is accepted)
RESUME_KEYS = (("config_hash", str, "the hash edgebench wrote when the run started"),
               ("request", dict, "the request (a JSON object) edgebench wrote when the run started"))
REJECTED_CSV = "results.rejected.csv"
# "no space left" and "quota exceeded"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def complete_row_problem(values: list[str], run_dir: Path | None = None) -> str | None:
    """None when `values` (one CSV record, current format) is a finished job's row; else what is wrong."""
    if len(values) != len(COLUMNS):
        return f"{len(values)} of {len(COLUMNS)} columns"
    row = dict(zip(COLUMNS, values))
    typed = {}
    for name, text in row.items():
        try:
            typed[name] = parse_cell(name, text)
        except ValueError:
            return f"column {name} = {text[:40]!r}, expected: {COLUMN_KINDS[name]}"
    empty = [c for c in REQUIRED if typed[c] is None]
    if empty:
        return f"empty {', '.join(empty)}"
    try:  # the last column: a row cut inside it still has every column
        if datetime.fromisoformat(typed["finished_at"]).tzinfo is None:
            raise ValueError
    except ValueError:
        return f"finished_at = {typed['finished_at']!r} is not an ISO 8601 time with its UTC offset"
    if typed["status"] not in STATUSES:
        return f"status {typed['status']!r} (accepted: {', '.join(STATUSES)})"
    job = Job(*(typed[c] for c in ("workload", "variant", "family", "precision", "target", "backend",
                                   "threads", "batch_size")))
    if job.job_id != typed["job_id"]:
        return f"job_id {typed['job_id']!r} does not match its key columns ({job.job_id!r})"
    if typed["status"] == "ok":
        empty = [c for c in REQUIRED_OK if typed[c] is None]
        if empty:
            return f"an ok row with empty {', '.join(empty)}"
        if typed["raw_latency_file"] != f"raw/{job.job_id}.npz":
            return f"raw_latency_file = {typed['raw_latency_file']!r}, expected: 'raw/{job.job_id}.npz'"
        if run_dir is not None and not (Path(run_dir) / typed["raw_latency_file"]).is_file():
            return f"its raw file {typed['raw_latency_file']} is missing"
    return None


def _column_kinds() -> dict[str, str]:
    names = {"int": "integer", "float": "number", "bool": "True or False", "json": "JSON value"}
    return {c: names.get(BY_NAME[c].kind, BY_NAME[c].kind) for c in COLUMNS}


COLUMN_KINDS = _column_kinds()


def read_records(path: Path) -> tuple[list[str], list[tuple[int, list[str] | None, str]]]:
    """results.csv's header and records: (first line number, values or None when unparsable, raw text)."""
    with open(path, newline="") as fh:
        lines = fh.readlines()
    reader = csv.reader(iter(lines))
    header = next(reader, [])
    records, done = [], reader.line_num
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error:  # a NUL byte, ...: nothing from here on is trusted
            records.append((done + 1, None, "".join(lines[done:])))
            break
        records.append((done + 1, values, "".join(lines[done:reader.line_num])))
        done = reader.line_num
    return header, records


def disk_full_error(path: Path, exc: OSError, store: RunStore) -> ConfigError:
    return ConfigError(f"{path}: no space left on the device ({exc.strerror}); the finished rows are kept in "
                       f"{store.results_csv}; free some space and resume with: edgebench bench --resume "
                       f"{store.dir}")


class RunStore:
    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        self.results_csv = self.dir / "results.csv"
        self.run_json = self.dir / "run.json"
        # set by open() when it brought an older run to the current format: a line for the user
        self.migration_note: str | None = None
        # set by open(): a line for the user per row it did not trust (the job runs again)
        self.notes: list[str] = []

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
        originals are kept beside it, see migration_note); a newer one is refused. `runs/latest` is the
        directory it points to (the run id is the real directory's name). `notes`: a line per row it does
        not trust (see _reject_incomplete_rows)."""
        store = cls(Path(run_dir).resolve())
        if not store.run_json.is_file() or not store.results_csv.is_file():
            raise ConfigError(f"{run_dir}: not an edgebench run directory (run.json and results.csv "
                              f"expected)")
        store.migration_note = migrate_in_place(store.dir)
        store._check_resumable(read_info(store.run_json))
        store._drop_partial_row()
        with open(store.results_csv, newline="") as fh:
            header = next(csv.reader(fh), [])
        check_header(RESULT_FORMAT_VERSION, header, store.results_csv)
        store._reject_incomplete_rows()
        return store

    def _check_resumable(self, info: dict) -> None:
        for key, kind, accepted in RESUME_KEYS:
            value = info.get(key)
            if not isinstance(value, kind) or not value:
                shown = "missing" if key not in info else f"= {json.dumps(value)[:60]}"
                raise ConfigError(f"{self.run_json}: key '{key}' {shown}; accepted: {accepted} (this run "
                                  f"cannot be resumed, start a new one)")

    def _drop_partial_row(self) -> None:
        """A crash mid-write can leave a last line without its newline: it is not a finished job."""
        data = self.results_csv.read_bytes()
        if data and not data.endswith(b"\n"):
            self.results_csv.write_bytes(data[:data.rfind(b"\n") + 1])

    def _reject_incomplete_rows(self) -> None:
        """A note for every row that says ok or skipped but is not complete (its job runs again); a record
        that is no row at all (cut short, unreadable CSV) is moved to results.rejected.csv and results.csv
        rewritten without it, so that rows appended after it read back whole."""
        header, records = read_records(self.results_csv)
        good, bad = [], []
        for line, values, raw in records:
            if values is None:
                problem = "not readable as CSV"
            elif values[2:3] == ["failed"] and len(values) == len(COLUMNS):
                problem = None  # runs again in any case
            else:
                problem = complete_row_problem(values, self.dir)
            job = values[1] if values and len(values) > 1 and values[1] else "unknown"
            if values is not None and len(values) == len(COLUMNS):
                good.append(values)
                if problem:
                    self.notes.append(f"{self.results_csv}: line {line} is not a finished job's row "
                                      f"({problem}); job {job} runs again")
                continue
            bad.append(raw)
            self.notes.append(f"{self.results_csv}: line {line} is not a finished job's row ({problem}); "
                              f"moved to {REJECTED_CSV}, job {job} runs again")
        if not bad:
            return
        rejected = self.dir / REJECTED_CSV
        tmp = self.dir / f".{self.results_csv.name}.tmp"
        try:
            with open(rejected, "a", newline="") as fh:
                fh.writelines(r if r.endswith("\n") else r + "\n" for r in bad)
            with open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                writer.writerows(good)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.results_csv)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in DISK_FULL:
                raise disk_full_error(tmp, exc, self) from None
            raise

    def run_info(self) -> dict:
        return read_info(self.run_json)

    def write_run_info(self, info: dict) -> None:
        tmp = self.run_json.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(info, indent=2, default=str))
            os.replace(tmp, self.run_json)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in DISK_FULL:
                raise disk_full_error(self.run_json, exc, self) from None
            raise

    def rows(self) -> list[dict]:
        """The rows of results.csv (open() has moved out those that are no finished job's)."""
        with open(self.results_csv, newline="") as fh:
            return list(csv.DictReader(fh))

    def finished_job_ids(self) -> set[str]:
        """The jobs --resume skips: those with a complete row, ok or skipped (checked again here)."""
        _, records = read_records(self.results_csv)
        return {values[1] for _, values, _ in records
                if values is not None and complete_row_problem(values, self.dir) is None
                and values[2] in FINAL_STATUSES}

    def append(self, row: dict) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown result columns: {sorted(unknown)}")
        text = io.StringIO(newline="")
        csv.writer(text).writerow(["" if row.get(c) is None else row.get(c) for c in COLUMNS])
        fd = os.open(self.results_csv, os.O_WRONLY | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            try:
                data = text.getvalue().encode()
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            except OSError as exc:
                try:  # no half row left behind
                    os.ftruncate(fd, size)
                except OSError:
                    pass  # open() drops a last line without its newline
                if exc.errno in DISK_FULL:
                    raise disk_full_error(self.results_csv, exc, self) from None
                raise
        finally:
            os.close(fd)

    def save_latency(self, job_id: str, latency_ns: np.ndarray, windows: list[Window]) -> str:
        relative = f"raw/{job_id}.npz"
        tmp = self.dir / f"raw/.{job_id}.tmp.npz"
        try:
            np.savez_compressed(tmp, latency_ns=np.asarray(latency_ns, dtype=np.int64),
                                windows=np.array([[w.start_ns, w.end_ns, w.n_iterations] for w in windows],
                                                 dtype=np.int64))
            os.replace(tmp, self.dir / relative)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in DISK_FULL:
                raise disk_full_error(self.dir / relative, exc, self) from None
            raise
        return relative


def load_latency(run_dir: Path, relative: str) -> tuple[np.ndarray, list[Window]]:
    with np.load(Path(run_dir) / relative, allow_pickle=False) as data:
        return data["latency_ns"], [Window(*map(int, w)) for w in data["windows"]]
