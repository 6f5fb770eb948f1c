"""A new run whose build phase stops (Ctrl-C, a build worker killed, a build error that is no bad input) keeps
a run directory: its log.txt holds every build line printed before the stop and the error, run.json the
artifacts that were ready, and --resume finishes the run. Bad input found by the build leaves none."""

from __future__ import annotations

import csv
import json
import os
import signal

from helpers import tiny_suite_toml, tiny_workload_toml, write

from harness.app.cli import main
from harness.app.progress import QuietReporter
from workloads import build_pool
from workloads.build import build_base
from workloads.spec import load_workload

BUILD_LINE = ("built ", "cached ")


def bench_files(tmp_path, name: str, variant: str = "") -> tuple:
    """A workload `name` (the tiny model: cached once trained) with fp32 and an int8 variant of its own, and
    a suite that measures it on onnxruntime in milliseconds."""
    workload = write(tmp_path / f"{name}.toml", tiny_workload_toml(name) + (variant or """
    [[variants]]
    name = "int8"
    family = "quantize"
    scheme = "ort-static"
    calibration_samples = 20
    """))
    suite = write(tmp_path / "suite.toml", tiny_suite_toml(["onnxruntime"], workloads=[str(workload)], name="stops"))
    return workload, suite, tmp_path / "runs"


def run_dirs(runs):
    return [p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()] if runs.exists() else []


def stopped_run(runs, err: list[str]):
    """The one run directory, checked: every build line printed is in its log, which ends with the error
    line printed last; results.csv has no row."""
    (run_dir,) = run_dirs(runs)
    log = (run_dir / "log.txt").read_text().splitlines()
    printed = [line for line in err if line.startswith(BUILD_LINE)]
    assert printed and [line for line in log if line.startswith(BUILD_LINE)] == printed
    assert err[-1].startswith("edgebench: error: ") and log[-1] == err[-1]
    with open(run_dir / "results.csv", newline="") as fh:
        assert len(list(csv.reader(fh))) == 1  # the header
    return run_dir, log


def ready(run_dir, session: int = 0) -> list:
    info = json.loads((run_dir / "run.json").read_text())
    return [(a["workload"], a["variant"]) for a in info["build_times"][session]["artifacts"]]


def resume_finishes(run_dir, log: list[str], capsys) -> None:
    """--resume builds what is missing and measures every job; the stopped session's lines stay in the log."""
    assert main(["bench", "--resume", str(run_dir), "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    with open(run_dir / "results.csv", newline="") as fh:
        assert sorted((r["variant"], r["status"]) for r in csv.DictReader(fh)) == [("fp32", "ok"), ("int8", "ok")]
    again = (run_dir / "log.txt").read_text().splitlines()
    assert again[:len(log)] == log and any(line.startswith("ok ") for line in again[len(log):])


def test_ctrl_c_in_a_new_runs_build_keeps_its_lines_in_the_run_log_and_resume_goes_on(tmp_path, monkeypatch,
                                                                                       capsys):
    workload, suite, runs = bench_files(tmp_path, "stops-ctrl-c")
    monkeypatch.setenv(build_pool.WORKERS_ENV, "1")  # built in this process, one artifact after another

    def status(self, message: str) -> None:
        if message == "building stops-ctrl-c/int8":  # the base model and fp32 are ready: Ctrl-C
            raise KeyboardInterrupt

    monkeypatch.setattr(QuietReporter, "status", status)
    assert main(["bench", "--suite", str(suite), "--runs-dir", str(runs), "--quiet", "--no-report"]) == 130
    err = capsys.readouterr().err.splitlines()
    run_dir, log = stopped_run(runs, err)
    assert [line.split(":")[0].split()[-1] for line in log if line.startswith(BUILD_LINE)] == [
        "model", "stops-ctrl-c/fp32"]
    assert err[-1] == (f"edgebench: error: interrupted while building artifacts, before any job of this session "
                       f"ran; those ready are in the cache and {run_dir / 'log.txt'}; resume with: edgebench "
                       f"bench --resume {run_dir}")
    assert ready(run_dir) == [("stops-ctrl-c", None), ("stops-ctrl-c", "fp32")]

    monkeypatch.setattr(QuietReporter, "status", lambda self, message: None)
    resume_finishes(run_dir, log, capsys)
    assert ready(run_dir, 1)[-1] == ("stops-ctrl-c", "int8")  # the resumed session's build


def _killed(workload, names):
    """A build worker's task that the OOM killer ends (run in a spawned worker: module level)."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_build_worker_killed_in_a_new_run_leaves_a_run_saying_what_was_ready_and_why(tmp_path, monkeypatch,
                                                                                       capsys):
    workload, suite, runs = bench_files(tmp_path, "stops-killed")
    build_base(load_workload(workload))  # cached: taken in this process, the int8 variant goes to a worker
    monkeypatch.setenv(build_pool.WORKERS_ENV, "2")
    monkeypatch.setattr(build_pool, "usable_cores", lambda: 2)
    monkeypatch.setattr(build_pool._Parallel, "worker_task", staticmethod(_killed))
    assert main(["bench", "--suite", str(suite), "--runs-dir", str(runs), "--quiet", "--no-report"]) == 1
    err = capsys.readouterr().err.splitlines()
    run_dir, log = stopped_run(runs, err)
    assert ready(run_dir) == [("stops-killed", None), ("stops-killed", "fp32")]
    assert err[-1].startswith("edgebench: error: a build worker process died (killed by SIGKILL) while building "
                              "stops-killed/int8")
    note = (f"run {run_dir}: the build stopped before any job of this session ran; the artifacts said above are "
            f"ready, in the cache; resume with: edgebench bench --resume {run_dir}")
    assert err[-2] == note and log[-2] == note
    assert (runs / "latest").resolve() == run_dir.resolve()

    monkeypatch.setenv(build_pool.WORKERS_ENV, "1")
    monkeypatch.setattr(build_pool._Parallel, "worker_task", staticmethod(build_pool._worker_task))
    resume_finishes(run_dir, log, capsys)


def test_bad_input_found_by_a_new_runs_build_leaves_no_run_directory(tmp_path, monkeypatch, capsys):
    workload, suite, runs = bench_files(tmp_path, "stops-bad", """
    [[variants]]
    name = "tfl"
    family = "tflite"
    quantization = "dynamic"
    """)
    monkeypatch.setenv(build_pool.WORKERS_ENV, "1")
    assert main(["bench", "--suite", str(suite), "--runs-dir", str(runs), "--quiet", "--no-report"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith(BUILD_LINE) for line in err)  # the base model was ready: said, as ever
    assert "quantization = \"dynamic\" is TensorFlow's converter's" in err[-1]
    # a fixed workload file is a new configuration, which --resume would refuse: nothing to keep
    assert run_dirs(runs) == [] and not (runs / "latest").exists()


def test_ctrl_c_between_the_build_and_the_first_job_is_a_clean_stop(tmp_path, monkeypatch, capsys):
    """Ctrl-C while the run directory is being made (no directory yet) and right after (the directory
    exists): exit 130, one line, no traceback; the second says how to resume, and the resume finishes."""
    from harness.app.runner import Bench
    from harness.core.rundir import RunStore

    workload, suite, runs = bench_files(tmp_path, "stops-between")
    argv = ["bench", "--suite", str(suite), "--runs-dir", str(runs), "--quiet", "--no-report"]

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Bench, "_create_store", ctrl_c)
        assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edgebench: interrupted;") and "Traceback" not in "\n".join(err)
    assert run_dirs(runs) == []
    with monkeypatch.context() as patch:
        patch.setattr(RunStore, "run_info", ctrl_c)  # first read once the directory exists
        assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    (run_dir,) = run_dirs(runs)
    assert err[-1] == f"edgebench: error: interrupted: every finished job is kept in {run_dir / 'results.csv'}; " \
                      f"resume with: edgebench bench --resume {run_dir}"
    assert main(["bench", "--resume", str(run_dir), "--quiet", "--no-report"]) == 0
    with open(run_dir / "results.csv", newline="") as fh:
        assert sorted((r["variant"], r["status"]) for r in csv.DictReader(fh)) == [("fp32", "ok"), ("int8", "ok")]
