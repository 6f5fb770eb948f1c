"""The run directory: runs/<run-id>/ with run.json, results.csv (one row per job, appended as each job
finishes) and raw/<job-id>.npz (every iteration's latency and the windows). Crash-safe and resumable.

Resume trusts a row only when it parses completely against the schema (`complete_row_problem`): every
column present, every value of its column's kind, the job's identity filled in and matching its job id,
and for an `ok` row its numbers and raw file. Any other row's job runs again, with a note naming its line;
a record that is no row at all (cut short, unreadable) is moved out of results.csv into
results.rejected.csv, so that the rows appended after it read back whole; so are two finished rows of one
job (edgebench writes one), and that job runs again.

A RunStore holds an exclusive lock on <run_dir>/.lock for as long as it lives (close() or the end of the
process releases it): a second edgebench process resuming the same run is refused instead of running every
pending job twice."""

from __future__ import annotations

import csv
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import threading
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np

from harness.core.errors import ConfigError
from harness.core.jobs import Job
from harness.core.measurement import Window
from harness.core.migrations import (
    IDENTITY_COLUMNS,
    check_header,
    format_version,
    migrate_in_place,
    read_info,
    read_text,
)
from harness.core.schema import BY_NAME, COLUMNS, RESULT_FORMAT_VERSION, parse_cell

# A job with one of these statuses is not run again by --resume; "failed" ones are.
FINAL_STATUSES = ("ok", "skipped")
STATUSES = ("ok", "skipped", "failed")
# what every row has, and what an ok row has besides (a measured job)
REQUIRED = (*(c for c in IDENTITY_COLUMNS if c != "reason"), "finished_at")
REQUIRED_OK = ("n_iterations", "n_windows", "latency_mean_ms", "latency_p50_ms", "throughput_ips",
               "raw_latency_file")
# run.json keys a resume needs: (key, type, what is accepted)
RESUME_KEYS = (("config_hash", str, "the hash edgebench wrote when the run started"),
               ("request", dict, "the request (a JSON object) edgebench wrote when the run started"))
REJECTED_CSV = "results.rejected.csv"
# "no space left" and "quota exceeded"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
LOCK_FILE = ".lock"
# What the run printed worth keeping (notes, each artifact's build time, each finished job), as a CI log shows
# it; a resumed session appends to it.
LOG_FILE = "log.txt"
# the run directories this process holds the lock of: realpath -> [lock file, stores holding it]
_HELD: dict[str, list] = {}
# A farm run with `replicate = true` measures each job on every board: each board's row is its own job,
# `<job id>__on-<place>`, so raw files, resume and reports keep one row per job and board.
REPLICA_MARK = "__on-"


def replica_job_id(job_id: str, place: str) -> str:
    """The job id of `job_id` measured on the farm place `place` (file-name safe, like every job id). A
    place name that had to be changed to be safe gets a digest of the real name, so that `rpi4_1` and
    `rpi4-1` stay two ids."""
    safe = re.sub(r"[^A-Za-z0-9.-]+", "-", place).strip("-") or "place"
    if safe != place:
        safe += "-" + hashlib.sha256(place.encode()).hexdigest()[:8]
    return f"{job_id}{REPLICA_MARK}{safe}"


def place_of(board: str) -> str:
    """The place of a `board` column value (`place/hostname`)."""
    return board.split("/", 1)[0]


def raw_file_problem(path: Path) -> str | None:
    """None when `path` is a raw latency file as save_latency writes it; else what is wrong."""
    try:
        _read_raw(path)
    except ValueError as exc:
        return str(exc)
    return None


def _read_raw(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """latency_ns (int64, 1-D, not empty) and windows (int64, n x 3, n >= 1); ValueError saying what is
    wrong otherwise."""
    unreadable = (OSError, EOFError, ValueError, zipfile.BadZipFile)  # pickled data is a ValueError
    try:
        data = np.load(path, allow_pickle=False)
    except unreadable as exc:
        raise ValueError(f"not readable as an .npz archive ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # a lone .npy array
        raise ValueError("not an .npz archive")
    with data:
        missing = [k for k in ("latency_ns", "windows") if k not in data.files]
        if missing:
            raise ValueError(f"no {' or '.join(missing)} array in it")
        try:
            latency_ns, windows = data["latency_ns"], data["windows"]
        except unreadable as exc:
            raise ValueError(f"not readable as an .npz archive ({exc})") from None
    if latency_ns.dtype != np.int64 or latency_ns.ndim != 1 or latency_ns.size == 0:
        raise ValueError(f"latency_ns is {latency_ns.dtype} of shape {latency_ns.shape}; expected: int64 "
                         f"nanoseconds, one or more")
    if windows.dtype != np.int64 or windows.ndim != 2 or windows.shape[1:] != (3,) or windows.shape[0] < 1:
        raise ValueError(f"windows is {windows.dtype} of shape {windows.shape}; expected: int64 of shape "
                         f"(n, 3), n >= 1")
    return latency_ns, windows


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
            return f"column {name} = {text[:40]!r}, expected: {BY_NAME[name].accepted()}"
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
    job_id = job.job_id
    if typed["job_id"] != job_id and typed.get("board") and REPLICA_MARK in typed["job_id"]:
        job_id = replica_job_id(job_id, place_of(typed["board"]))  # a replicated farm job's row
    if job_id != typed["job_id"]:
        return f"job_id {typed['job_id']!r} does not match its key columns ({job_id!r})"
    if typed["status"] == "ok":
        empty = [c for c in REQUIRED_OK if typed[c] is None]
        if empty:
            return f"an ok row with empty {', '.join(empty)}"
        if typed["raw_latency_file"] != f"raw/{job_id}.npz":
            return f"raw_latency_file = {typed['raw_latency_file']!r}, expected: 'raw/{job_id}.npz'"
        if run_dir is not None:
            raw = Path(run_dir) / typed["raw_latency_file"]
            if not raw.is_file():
                return f"its raw file {typed['raw_latency_file']} is missing"
            problem = raw_file_problem(raw)
            if problem:
                return f"its raw file {typed['raw_latency_file']}: {problem}"
    return None


def judge_records(records: list, run_dir: Path | None, run_id: str | None
                  ) -> tuple[set[str], list[tuple[int, str, str]], set[int]]:
    """What resume makes of results.csv's records: (the finished job ids, (line, job, problem) for each
    record not trusted, the lines of finished rows that must leave results.csv). A finished row is an ok
    or skipped row that is complete, of this run; two of one job make the job untrusted (both leave)."""
    problems: list[tuple[int, str, str]] = []
    finals: dict[str, list[int]] = {}
    for line, values, _ in records:
        job = values[1] if values and len(values) > 1 and values[1] else "unknown"
        if values is None:
            problems.append((line, job, "not readable as CSV"))
            continue
        if values[2:3] == ["failed"] and len(values) == len(COLUMNS):
            continue  # runs again in any case
        problem = complete_row_problem(values, run_dir)
        if problem is None and run_id is not None and values[0] != run_id:
            problem = f"run_id {values[0][:60]!r} is not this run's ({run_id!r})"
        if problem:
            problems.append((line, job, problem))
        elif values[2] in FINAL_STATUSES:
            finals.setdefault(job, []).append(line)
    moved: set[int] = set()
    for job, lines in finals.items():
        if len(lines) > 1:
            shown = ", ".join(map(str, lines[:-1])) + f" and {lines[-1]}"
            problems.append((lines[-1], job, f"lines {shown} are each a finished row of job {job}, which "
                                             f"edgebench writes once: none is trusted"))
            moved.update(lines)
    finished = {job for job, lines in finals.items() if len(lines) == 1}
    return finished, problems, moved


def read_records(path: Path) -> tuple[list[str], list[tuple[int, list[str] | None, str]]]:
    """results.csv's header and records: (first line number, values or None when unparsable, raw text)."""
    lines = read_text(path, "a results.csv").splitlines(keepends=True)
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


def _lock(run_dir: Path):
    """This process's hold on `run_dir`'s lock: taken (non-blocking) or shared with this process's other
    stores of the same run; ConfigError naming the process that holds it."""
    key = os.path.realpath(run_dir)
    path = Path(key) / LOCK_FILE
    held = _HELD.get(key)
    if held is not None:
        try:
            same = os.path.samestat(os.fstat(held[0].fileno()), os.stat(path))
        except OSError:
            same = False
        if same:
            held[1] += 1
            return key
        held[0].close()   # the directory was removed and made again: its old lock is no lock
        del _HELD[key]
    fh = open(path, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        pid = fh.read(20).strip() or "unknown"
        fh.close()
        raise ConfigError(f"{run_dir} is in use by another edgebench process (pid {pid}); wait for it or "
                          f"stop it, then resume with: edgebench bench --resume {run_dir}") from None
    except OSError:
        fh.close()
        raise
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    _HELD[key] = [fh, 1]
    return key


def _unlock(key: str) -> None:
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] <= 0:
        held[0].close()
        del _HELD[key]


def disk_full_error(path: Path, exc: OSError, store: RunStore) -> ConfigError:
    return ConfigError(f"{path}: no space left on the device ({exc.strerror}); the finished rows are kept in "
                       f"{store.results_csv}; free some space and resume with: edgebench bench --resume "
                       f"{store.dir}")


class RunStore:
    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        self.results_csv = self.dir / "results.csv"
        self.run_json = self.dir / "run.json"
        self.log_path = self.dir / LOG_FILE
        # set by open() when it brought an older run to the current format: a line for the user
        self.migration_note: str | None = None
        # set by open(): a line for the user per row it did not trust (the job runs again)
        self.notes: list[str] = []
        self._lock_key: str | None = None
        self._finished: set[str] | None = None   # what open() judged finished, until a row is appended
        # a farm's boards append rows and update run.json from threads of their own: one at a time
        self._writing = threading.RLock()

    def close(self) -> None:
        """Let go of the run's lock (the end of the process does too)."""
        if self._lock_key is not None:
            _unlock(self._lock_key)
            self._lock_key = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
            store.dir.mkdir(parents=True, exist_ok=True)   # new_run_id may have reserved it (empty)
            (store.dir / "raw").mkdir()
        except FileExistsError:
            raise ConfigError(f"{store.dir}: run directory exists already; resume it with "
                              f"--resume {store.dir}") from None
        except OSError as exc:
            raise ConfigError(f"{runs_dir}: cannot write the run directory ({exc.strerror}); "
                              f"choose another with --runs-dir") from None
        try:  # nothing is measured yet: a directory that could not be made whole is removed
            store._lock_key = _lock(store.dir)
            store._write_run_info(run_info)
            with open(store.results_csv, "w", newline="") as fh:
                csv.writer(fh).writerow(COLUMNS)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            store.close()
            shutil.rmtree(store.dir, ignore_errors=True)
            if exc.errno in DISK_FULL:
                raise ConfigError(f"{store.dir}: no space left on the device ({exc.strerror}) while creating "
                                  f"the run directory (removed again); nothing was measured; free some "
                                  f"space and start the run again") from None
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
        # read-only checks first: a run this code cannot resume is refused without a trace left in it
        format_version(read_info(store.run_json), store.run_json)
        try:
            store._lock_key = _lock(store.dir)
        except OSError as exc:
            raise ConfigError(f"{store.dir / LOCK_FILE}: cannot lock the run ({exc.strerror}); a run is "
                              f"resumed from a directory edgebench can write") from None
        try:
            store.migration_note = migrate_in_place(store.dir)
            store._check_resumable(read_info(store.run_json))
            store._drop_partial_row()
            header, _ = read_records(store.results_csv)
            check_header(RESULT_FORMAT_VERSION, header, store.results_csv)
            raw = store.dir / "raw"
            if raw.exists() and not raw.is_dir():
                raise ConfigError(f"{raw}: not a directory; a run directory keeps its raw samples in the "
                                  f"directory raw/ (move this file away and resume again)")
            raw.mkdir(exist_ok=True)   # a run whose jobs all failed may have lost an empty one
            store._reject_incomplete_rows()
        except BaseException:
            store.close()
            raise
        return store

    def _run_id(self) -> str:
        """The run id its rows carry: run.json's, else the directory's name."""
        try:
            run_id = read_info(self.run_json).get("run_id")
        except ConfigError:
            run_id = None
        return run_id if isinstance(run_id, str) and run_id else self.dir.name

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
        that is no row at all (cut short, unreadable CSV), and two finished rows of one job, are moved to
        results.rejected.csv and results.csv rewritten without them, so that rows appended after them read
        back whole and a report reads one row per job."""
        header, records = read_records(self.results_csv)
        self._finished, problems, moved = judge_records(records, self.dir, self._run_id())
        whole = {line for line, values, _ in records if values is not None and len(values) == len(COLUMNS)}
        good = [values for line, values, _ in records if line in whole and line not in moved]
        bad = [raw for line, _, raw in records if line not in whole or line in moved]
        for line, job, problem in problems:
            if line in moved:
                self.notes.append(f"{self.results_csv}: {problem}; moved to {REJECTED_CSV}, job {job} runs "
                                  f"again")
                continue
            where = "" if line in whole else f"moved to {REJECTED_CSV}, "
            self.notes.append(f"{self.results_csv}: line {line} is not a finished job's row ({problem}); "
                              f"{where}job {job} runs again")
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

    def _write_run_info(self, info: dict) -> None:
        tmp = self.run_json.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
            os.replace(tmp, self.run_json)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def write_run_info(self, info: dict) -> None:
        try:
            with self._writing:
                self._write_run_info(info)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise disk_full_error(self.run_json, exc, self) from None
            raise

    def update_run_info(self, update) -> None:
        """run.json read, changed by `update(info)` and written back, with no other thread in between."""
        with self._writing:
            info = self.run_info()
            update(info)
            self.write_run_info(info)

    def rows(self) -> list[dict]:
        """The rows of results.csv (open() has moved out those that are no finished job's)."""
        return list(csv.DictReader(io.StringIO(read_text(self.results_csv, "a results.csv"), newline="")))

    def finished_job_ids(self) -> set[str]:
        """The jobs --resume skips: those with a complete row, ok or skipped (checked again here)."""
        if self._finished is None:  # every raw file is loaded to judge a row: once per open()
            _, records = read_records(self.results_csv)
            self._finished = judge_records(records, self.dir, self._run_id())[0]
        return set(self._finished)

    def append(self, row: dict) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown result columns: {sorted(unknown)}")
        text = io.StringIO(newline="")
        csv.writer(text).writerow(["" if row.get(c) is None else row.get(c) for c in COLUMNS])
        with self._writing:  # a truncation after a failed write must not cut another thread's row
            self._finished = None
            self._append_text(text.getvalue())

    def _append_text(self, text: str) -> None:
        fd = os.open(self.results_csv, os.O_WRONLY | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            try:
                data = text.encode()
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
    """A job's raw file; ConfigError naming it when it is missing or not as save_latency writes it."""
    path = Path(run_dir) / relative
    if not path.is_file():
        raise ConfigError(f"{path}: the raw latency file of a row in results.csv is missing")
    try:
        latency_ns, windows = _read_raw(path)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}; a raw latency file as edgebench writes it expected (resume the "
                          f"run to measure the job again)") from None
    return latency_ns, [Window(*map(int, w)) for w in windows]
