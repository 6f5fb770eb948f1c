"""Faults a run must survive without corrupting itself or another run: what --resume reads back, a full
disk, two processes sharing the cache, SSH arguments ssh could take for options."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import FIXTURES

from harness.app.cli import main
from harness.core.errors import ConfigError
from harness.core.jobs import Job
from harness.core.measurement import Window
from harness.core.rundir import REJECTED_CSV, RunStore
from harness.core.schema import COLUMNS, RESULT_FORMAT_VERSION

FORMAT_1 = FIXTURES / "runs" / "format-1"
RUN_INFO = {"config_hash": "0123abcd", "request": {"suite": "tiny"}}
JOB = Job("w", "fp32", "baseline", "fp32", "cpu", "onnxruntime", 1, 1)


def ok_row(store: RunStore, job: Job = JOB) -> dict:
    """A complete ok row, as the runner writes one (with its raw file)."""
    row = {c: "" for c in COLUMNS}
    row.update(run_id=store.dir.name, job_id=job.job_id, status="ok", workload=job.workload,
               variant=job.variant, target=job.target, backend=job.backend, precision=job.precision,
               threads=job.threads, batch_size=job.batch_size, family=job.family, accuracy=0.9,
               n_eval=10, latency_mean_ms=1.0, latency_p50_ms=1.0, throughput_ips=1000.0,
               n_iterations=20, n_windows=2, valid=False, backend_info=json.dumps({"runtime": "x"}),
               finished_at="2026-11-23T10:52:29+00:00",
               raw_latency_file=store.save_latency(job.job_id, np.ones(20, np.int64), [Window(0, 10, 20)]))
    return row


@pytest.fixture
def run(tmp_path) -> RunStore:
    store = RunStore.create(tmp_path / "runs", "r1", RUN_INFO)
    store.append(ok_row(store))
    return store


# ---- what resume trusts ----

@pytest.mark.parametrize("cut", ["torch", "1000.0", "runtime", "T10:52"],
                         ids=["identity", "numbers", "in-json", "last-cell"])
def test_a_row_cut_short_and_ended_by_an_editor_runs_again(run, cut):
    second = Job("w", "fp32", "baseline", "fp32", "cpu", "torch", 1, 1)
    run.append(ok_row(run, second))
    lines = run.results_csv.read_text().splitlines(keepends=True)
    # cut just after `cut`, then saved with a newline (what an editor does)
    lines[2] = lines[2][:lines[2].index(cut) + len(cut)] + "\n"
    run.results_csv.write_text("".join(lines))
    store = RunStore.open(run.dir)
    assert store.finished_job_ids() == {JOB.job_id}
    assert len(store.notes) == 1 and "results.csv: line 3 is not a finished job's row" in store.notes[0]
    assert store.notes[0].endswith("runs again")
    # a row appended after it (the re-run) reads back whole
    store.append(ok_row(store, second))
    assert RunStore.open(run.dir).finished_job_ids() == {JOB.job_id, second.job_id}
    # the re-run's row comes last (a report keeps the last row of a job)
    assert [r["job_id"] for r in store.rows()][-1] == second.job_id


def test_every_column_is_checked_against_its_kind(run):
    row = ok_row(run)
    for column, bad in (("threads", "one"), ("latency_p50_ms", "fast"), ("valid", "maybe"),
                        ("backend_info", "{not json"), ("status", "done"), ("job_id", "w__other"),
                        ("latency_p50_ms", ""), ("finished_at", "")):
        run.append({**row, column: bad})
    store = RunStore.open(run.dir)
    assert store.finished_job_ids() == {JOB.job_id}
    assert len(store.notes) == 8
    assert "column threads = 'one', expected: integer" in store.notes[0]
    assert "line 4" in store.notes[1] and "job_id 'w__other' does not match" in store.notes[5]


def test_an_ok_row_whose_raw_file_is_missing_runs_again(run):
    (run.dir / f"raw/{JOB.job_id}.npz").unlink()
    store = RunStore.open(run.dir)
    assert store.finished_job_ids() == set() and "raw file" in store.notes[0]


def test_a_line_that_is_no_csv_row_is_moved_out_and_kept(run):
    with open(run.results_csv, "a") as fh:
        fh.write('r1,w__fp32__torch__t1__b1,ok,"unterminated\n')
    store = RunStore.open(run.dir)
    assert "moved to results.rejected.csv" in store.notes[0]
    assert (run.dir / REJECTED_CSV).read_text() == 'r1,w__fp32__torch__t1__b1,ok,"unterminated\n'
    assert store.finished_job_ids() == {JOB.job_id}


def test_the_format_1_fixture_is_trusted_whole(tmp_path):
    run_dir = Path(shutil.copytree(FORMAT_1, tmp_path / "runs" / "old"))
    store = RunStore.open(run_dir)
    assert store.notes == [] and len(store.finished_job_ids()) == 4


@pytest.mark.parametrize("text, says", [
    ("{not json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    ("[1, 2]", "a JSON object expected"),
    (json.dumps({"format_version": RESULT_FORMAT_VERSION, "request": {"suite": "tiny"}}), "key 'config_hash' missing"),
    (json.dumps({"format_version": RESULT_FORMAT_VERSION, "config_hash": 3, "request": {}}), "key 'config_hash' = 3"),
    (json.dumps({"format_version": RESULT_FORMAT_VERSION, "config_hash": "ab", "request": "tiny"}),
     "key 'request' = \"tiny\""),
])
def test_a_corrupt_run_json_is_one_line(run, capsys, text, says):
    if isinstance(text, bytes):
        run.run_json.write_bytes(text)
    else:
        run.run_json.write_text(text)
    assert main(["bench", "--resume", str(run.dir), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgebench: error: ") and str(run.run_json) in err and says in err
    assert "\n" not in err and "Traceback" not in err


def test_resume_through_latest_uses_the_real_run_id(run):
    store = RunStore.open(run.dir.parent / "latest")
    assert store.dir == run.dir.resolve() and store.dir.name == "r1"
    assert store.results_csv == run.dir.resolve() / "results.csv"


# ---- a full disk ----

def to_dev_full(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/full")


needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")


@needs_dev_full
def test_disk_full_while_appending_a_row_is_one_line_and_keeps_the_rows(run):
    kept = run.results_csv.read_bytes()
    real = run.dir / "results.real.csv"
    os.replace(run.results_csv, real)
    to_dev_full(run.results_csv)
    with pytest.raises(ConfigError) as exc:
        run.append(ok_row(run))
    message = str(exc.value)
    assert "no space left" in message and f"finished rows are kept in {run.results_csv}" in message
    assert f"edgebench bench --resume {run.dir}" in message and "\n" not in message
    run.results_csv.unlink()
    os.replace(real, run.results_csv)
    assert run.results_csv.read_bytes() == kept


@needs_dev_full
def test_disk_full_while_saving_raw_samples_leaves_no_temporary_file(run):
    tmp = run.dir / "raw" / ".j.tmp.npz"
    to_dev_full(tmp)
    with pytest.raises(ConfigError, match=r"raw/j.npz: no space left on the device .*finished rows are kept"):
        run.save_latency("j", np.ones(5, np.int64), [Window(0, 1, 5)])
    assert sorted(p.name for p in (run.dir / "raw").iterdir()) == [f"{JOB.job_id}.npz"]


@needs_dev_full
def test_disk_full_while_building_a_cache_entry_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    from workloads.cache import cached_dir

    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path / "cache"))

    def build(tmp: Path) -> None:
        to_dev_full(tmp / "train.npz")
        np.savez(tmp / "train.npz", x=np.zeros(1000))

    with pytest.raises(ConfigError, match=r"no space left on the device while building the cache entry "
                                          r"data/k1"):
        cached_dir("data", "k1", build)
    assert [p.name for p in (tmp_path / "cache" / "data").iterdir()] == [".k1.lock"]


# ---- two processes sharing the cache ----

def _build_entry(cache: str, barrier, results) -> None:
    """One process: build the same cache entry as the other, at the same moment, then read it."""
    os.environ["EDGEBENCH_CACHE"] = cache
    import time

    from workloads.cache import cached_dir

    def build(tmp: Path) -> None:
        for i in range(20):   # slow enough that the other process arrives while this one builds
            np.savez(tmp / f"part{i}.npz", x=np.full(10_000, i))
            time.sleep(0.01)
        np.savez(tmp / "train.npz", x=np.arange(100_000))

    barrier.wait()
    folder, built = cached_dir("data", "race", build)
    sums = []
    for _ in range(20):   # a reader: the entry must not go away under it
        with np.load(folder / "train.npz") as data:
            sums.append(int(data["x"].sum()))
        time.sleep(0.005)
    results.put((built, sums, sorted(p.name for p in folder.iterdir())))


def test_two_processes_building_one_cache_entry_both_get_it_whole(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    procs = [context.Process(target=_build_entry, args=(str(tmp_path), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(built for built, _, _ in got) == [False, True]   # built once, taken by the other
    expected = int(np.arange(100_000).sum())
    for _, sums, names in got:
        assert sums == [expected] * 20
        assert names == sorted([".complete", *[f"part{i}.npz" for i in range(20)], "train.npz"])
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [".race.lock", "race"]


def test_what_a_dead_builder_left_is_cleared_but_a_complete_entry_is_never_touched(tmp_path, monkeypatch):
    from workloads.cache import cached_dir

    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path))
    (tmp_path / "data" / ".k~dead1").mkdir(parents=True)
    (tmp_path / "data" / "k").mkdir()   # a half entry, without .complete
    (tmp_path / "data" / "k" / "half").write_text("")
    folder, built = cached_dir("data", "k", lambda tmp: (tmp / "whole").write_text("1"))
    assert built and sorted(p.name for p in folder.iterdir()) == [".complete", "whole"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [".k.lock", "k"]
    folder, built = cached_dir("data", "k", lambda tmp: pytest.fail("rebuilt a complete entry"))
    assert not built


@pytest.mark.parametrize("key", ["/etc", "../up", "a/b", ".hidden", ""])
def test_a_cache_key_is_one_path_component(tmp_path, monkeypatch, key):
    from workloads.cache import cached_dir

    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="not one safe path component"):
        cached_dir("data", key, lambda tmp: None)


# ---- SSH arguments ----

@pytest.mark.parametrize("field, value, says", [
    ("host", "-oProxyCommand=touch /tmp/x", "key 'host' = '-oProxyCommand=touch /tmp/x'"),
    ("host", "", "key 'host' = ''"),
    ("host", "board one", "key 'host' = 'board one'"),
    ("host", "board\n", "key 'host' = 'board\\n'"),
    ("user", "-x", "key 'user' = '-x'"),
    ("extra_options", {"Proxy Command": "x"}, "ssh option name 'Proxy Command'"),
    ("extra_options", {"ProxyJump": "a\nb"}, "ssh option ProxyJump = 'a\\nb'"),
])
def test_ssh_arguments_ssh_could_misread_are_refused(field, value, says):
    from targets.ssh import SshLink, SshSettings

    settings = SshSettings(**{"host": "board", field: value})
    with pytest.raises(ConfigError) as exc:
        SshLink(settings, "board.toml")
    message = str(exc.value)
    assert message.startswith("board.toml: ") and says in message and "accepted" in message
    assert "\n" not in message


def test_the_host_stays_after_the_end_of_options():
    from targets.ssh import SshLink, SshSettings

    link = SshLink(SshSettings(host="board", user="pi"), "board.toml")
    try:
        command = link.command(["true"])
        assert command[-3:-1] == ["board", "--"]
    finally:
        os.rmdir(link._control_dir)


def test_csv_rows_round_trip_through_append(run):
    with open(run.results_csv, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == COLUMNS and len(rows[1]) == len(COLUMNS)


def test_resume_through_latest_reruns_a_cut_row_under_the_real_run_id(tiny_files):
    runs = tiny_files["runs"]
    assert main(["bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(runs), "--quiet",
                 "--no-report"]) == 0
    run_dir = next(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    lines = (run_dir / "results.csv").read_text().splitlines(keepends=True)
    cut_job = lines[2].split(",")[1]
    lines[2] = lines[2][:len(lines[2]) // 3] + "\n"   # cut short, saved with a newline
    (run_dir / "results.csv").write_text("".join(lines))
    assert main(["bench", "--resume", str(runs / "latest"), "--quiet", "--no-report"]) == 0
    with open(run_dir / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["job_id"] for r in rows][-1] == cut_job and len(rows) == 2
    assert {r["run_id"] for r in rows} == {run_dir.name} and {r["status"] for r in rows} == {"ok"}
    assert (run_dir / REJECTED_CSV).read_text() == lines[2]


# ---- two runs measuring at once ----
HOLD_REGISTRATION = """
import sys, time
from harness.core.concurrent_runs import MeasuringRuns
with MeasuringRuns(sys.argv[1]):
    print("registered", flush=True)
    time.sleep(120)
"""


def _bench_rows(tiny_files, tmp_path) -> list[dict]:
    code = main(["bench", "--suite", str(tiny_files["suite"]), "--backend", "onnxruntime", "--quiet",
                 "--no-report", "--runs-dir", str(tmp_path / "runs")])
    assert code == 0
    with open(tmp_path / "runs" / "latest" / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_run_measuring_beside_another_says_so_in_its_rows(tiny_files, tmp_path, monkeypatch):
    """A second edgebench process that is measuring (a real process holding its registration) is named
    in every row measured while it ran; once it is gone (its file left behind), rows are quiet again."""
    import subprocess
    import sys

    monkeypatch.setenv("EDGEBENCH_LOCK_DIR", str(tmp_path / "locks"))
    other = subprocess.Popen([sys.executable, "-c", HOLD_REGISTRATION, "runs/the-other-run"],
                             stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert other.stdout.readline().strip() == "registered"
        rows = _bench_rows(tiny_files, tmp_path / "beside")
        assert rows and all("another edgebench run measured on this machine at the same time "
                            "(runs/the-other-run" in r["warnings"] for r in rows)
    finally:
        other.kill()
        other.wait()
    assert list((tmp_path / "locks").glob("*.lock"))  # the killed run's file stays: its lock does not
    rows = _bench_rows(tiny_files, tmp_path / "alone")
    assert not any("another edgebench run" in r["warnings"] for r in rows)


# ---- a hostile user's run directory: resume, report and compare trust only what edgebench writes ----

HOLD_RUN = """
import sys, time
from harness.core.rundir import RunStore
store = RunStore.open(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


def test_a_run_resumed_by_another_process_is_refused_in_one_line(run, capsys):
    import subprocess
    import sys

    # this process's stores of one run share its lock
    RunStore.open(run.dir).close()
    run.close()
    other = subprocess.Popen([sys.executable, "-c", HOLD_RUN, str(run.dir)], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=rf"is in use by another edgebench process \(pid {other.pid}\)"):
            RunStore.open(run.dir)
        assert main(["bench", "--resume", str(run.dir), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("edgebench: error: ") and "in use by another edgebench process" in err
        assert "\n" not in err
    finally:
        other.kill()
        other.wait()
    RunStore.open(run.dir).close()   # its lock went with it


@pytest.mark.parametrize("column, bad", [("accuracy", "nan"), ("accuracy", "2.5"), ("latency_p50_ms", "-1"),
                                         ("latency_p50_ms", "inf"), ("weight_sparsity", "-0.1"),
                                         ("n_iterations", "-3"), ("threads", "0")])
def test_an_impossible_number_is_not_trusted(tmp_path, column, bad):
    store = RunStore.create(tmp_path / "runs", "r1", RUN_INFO)
    row = ok_row(store)
    store.append({**row, column: bad})
    store.close()
    reopened = RunStore.open(store.dir)
    assert reopened.finished_job_ids() == set()
    assert len(reopened.notes) == 1 and f"column {column} = {bad!r}" in reopened.notes[0]
    assert "runs again" in reopened.notes[0]


def test_two_finished_rows_of_one_job_are_not_trusted_but_a_retry_is(run, tmp_path):
    from reports.load import load_run

    run.append({**ok_row(run), "accuracy": 0.1})   # a second ok row: tampering
    with pytest.raises(ConfigError, match=r"lines 2 and 3 are both finished rows of job"):
        load_run(run.dir)
    store = RunStore.open(run.dir)
    assert store.finished_job_ids() == set()
    assert "lines 2 and 3 are each a finished row of job" in store.notes[0]
    assert f"moved to {REJECTED_CSV}" in store.notes[0]
    assert len((run.dir / REJECTED_CSV).read_text().splitlines()) == 2
    store.append(ok_row(store))                     # the re-run
    assert RunStore.open(run.dir).finished_job_ids() == {JOB.job_id}
    assert load_run(run.dir)[1]["accuracy"].tolist() == [0.9]
    # failed, then ok (a normal --resume retry): accepted, the last row wins
    retry = RunStore.create(tmp_path / "runs", "r2", RUN_INFO)
    retry.append({**ok_row(retry), "status": "failed", "reason": "boom"})
    retry.append(ok_row(retry))
    assert RunStore.open(retry.dir).finished_job_ids() == {JOB.job_id}
    assert RunStore.open(retry.dir).notes == []
    assert load_run(retry.dir)[1]["status"].tolist() == ["ok"]


def test_a_row_of_another_run_is_not_trusted(run):
    other = Job("w", "fp32", "baseline", "fp32", "cpu", "torch", 1, 1)
    run.append({**ok_row(run, other), "run_id": "someone-elses-run"})
    store = RunStore.open(run.dir)
    assert store.finished_job_ids() == {JOB.job_id}
    assert "run_id 'someone-elses-run' is not this run's ('r1')" in store.notes[0]


@pytest.mark.parametrize("make, says", [
    (lambda p: p.write_bytes(b"\x93NUMPY garbage" * 10), "not readable as an .npz archive"),
    (lambda p: np.savez(p, latency_ns=np.ones(5), windows=np.array([[0, 1, 5]])), "latency_ns is float64"),
    (lambda p: np.savez(p, latency_ns=np.ones(5, np.int64), windows=np.zeros((0, 3), np.int64)),
     "windows is int64 of shape (0, 3)"),
    (lambda p: np.savez(p, latency_ns=np.ones(5, np.int64)), "no windows array"),
    (lambda p: np.save(p.with_suffix(".npy"), np.array([{"a": 1}], dtype=object)) or
     os.replace(p.with_suffix(".npy"), p), "not"),
])
def test_a_broken_raw_file_is_not_trusted_and_a_report_says_which(run, capsys, make, says):
    raw = run.dir / f"raw/{JOB.job_id}.npz"
    raw.unlink()
    make(raw)
    run.close()
    for argv in (["report", str(run.dir)], ["compare", str(run.dir), str(run.dir)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"edgebench: error: {raw}: ") and says in err and "\n" not in err
    store = RunStore.open(run.dir)
    assert store.finished_job_ids() == set() and says in store.notes[0]


def test_disk_full_while_creating_a_run_leaves_nothing(tmp_path, monkeypatch):
    import errno

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(ConfigError) as exc:
        RunStore.create(tmp_path / "runs", "r1", RUN_INFO)
    message = str(exc.value)
    assert "nothing was measured; free some space and start the run again" in message
    assert "resume" not in message and "finished rows" not in message
    assert not (tmp_path / "runs" / "r1").exists()


@pytest.mark.parametrize("name", ["results.csv", "run.json"])
def test_a_byte_that_is_not_utf8_is_one_line_naming_the_file(run, capsys, name):
    path = run.dir / name
    path.write_bytes(path.read_bytes().replace(b"w__fp32", b"w\xff_fp32", 1).replace(b'"0123', b'"\xff123'))
    run.close()
    for argv in (["bench", "--resume", str(run.dir), "--quiet"], ["report", str(run.dir)],
                 ["compare", str(run.dir), str(run.dir)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"edgebench: error: {path.resolve() if argv[0] == 'bench' else path}: not UTF-8")
        assert "\n" not in err


def test_raw_that_is_no_directory_is_refused_before_any_job(run):
    shutil.rmtree(run.dir / "raw")
    (run.dir / "raw").write_text("")
    with pytest.raises(ConfigError, match=r"raw: not a directory"):
        RunStore.open(run.dir)


def test_a_header_in_another_order_says_so(run):
    lines = run.results_csv.read_text().splitlines(keepends=True)
    header = COLUMNS[:]
    header[3], header[4] = header[4], header[3]
    lines[0] = ",".join(header) + "\n"
    run.results_csv.write_text("".join(lines))
    with pytest.raises(ConfigError, match=r"the same columns in another order: column 4 is workload, "
                                          r"expected reason"):
        RunStore.open(run.dir)
