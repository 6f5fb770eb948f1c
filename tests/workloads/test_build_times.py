"""The build phase: what is cached is taken without a worker, the rest is built in worker processes, each
artifact timed; the run says so per artifact (a line each, run.json's build_times, the run's log.txt)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import tiny_workload_toml, write

from harness.app.progress import QuietReporter, RunLog
from harness.core.errors import ConfigError
from workloads import build_pool
from workloads.build_pool import BuildPhase, BuildTime, BuildWorkerDied, build_phase, variant_groups
from workloads.cache import NotCached, built_entries, cached_dir, cached_only
from workloads.spec import load_workload

VARIANTS = """
[[variants]]
name = "int8"
family = "quantize"
scheme = "ort-static"
calibration_samples = 50

[[variants]]
name = "student"
family = "distill"
student_arch = "small_cnn"
student_params = { width = 4 }
epochs = 1

[[variants]]
name = "exit"
family = "early_exit"
thresholds = [0.5, 1.0]
epochs = 1
"""


def test_cached_only_refuses_to_build_and_built_entries_lists_what_was_built(private_cache):
    def make(tmp):
        (tmp / "f").write_text("x")

    with cached_only(), pytest.raises(NotCached) as raised:
        cached_dir("probe", "absent", make)
    assert (raised.value.kind, raised.value.key) == ("probe", "absent")
    with cached_only():  # a cheap entry is written in place
        assert cached_dir("probe", "cheap", make, cheap=True)[1]
    with built_entries() as built:
        cached_dir("probe", "absent", make)
        cached_dir("probe", "absent", make)  # the second time from the cache
    assert built == ["probe/absent"]
    with cached_only():
        assert cached_dir("probe", "absent", make) == (private_cache / "probe" / "absent", False)
    with cached_only(write_cheap=False):  # a dry run's look: a cheap entry is named, not written
        assert cached_dir("probe", "dry-cheap", make, cheap=True) == (private_cache / "probe" / "dry-cheap", False)
        with pytest.raises(NotCached):
            cached_dir("probe", "dry-absent", make)
    assert not (private_cache / "probe" / "dry-cheap").exists()


def test_variants_a_family_expands_go_to_one_worker_and_training_first(tmp_path):
    workload = load_workload(write(tmp_path / "w.toml", tiny_workload_toml("bt-groups") + VARIANTS))
    names = {v.name for v in workload.variants}
    assert variant_groups(workload, names) == [["student"], ["exit-t0.5", "exit-t1"], ["fp32"], ["int8"]]


def test_a_parallel_build_equals_the_serial_one_and_a_second_takes_the_cache_in_process(tmp_path, monkeypatch):
    # a model no other test trains: its base model is built here
    workload = load_workload(write(tmp_path / "w.toml", tiny_workload_toml("bt-parallel", epochs=2, width=5)
                                   + VARIANTS))
    names = {v.name for v in workload.variants}
    monkeypatch.setenv(build_pool.WORKERS_ENV, "2")
    monkeypatch.setattr(build_pool, "usable_cores", lambda: 2)  # two workers of one thread, however many cores
    status, said = [], []
    first = build_phase([(workload, names)], status.append, said.append)
    assert first.workers == 2 and said == first.times  # each said as it was ready
    assert set(first.artifacts) == {("bt-parallel", n) for n in names}
    built = {t.variant for t in first.times if not t.cached}
    # the base model and every variant that has files of its own built in a worker (the baseline is the base)
    assert {None, "int8", "student", "exit-t0.5"} <= built and "fp32" not in built
    assert any(s.startswith("building in 2 processes: bt-parallel base model") for s in status)
    assert all(t.seconds >= 0 for t in first.times) and first.wall_s > 0

    monkeypatch.setattr(build_pool._Parallel, "_submit", lambda *a: pytest.fail("nothing is left to build"))
    again = build_phase([(workload, names)])
    assert all(t.cached for t in again.times) and len(again.times) == len(names) + 1
    assert again.artifacts == first.artifacts
    assert again.workers == 0 and again.describe()["workers"] == 0  # no worker started

    monkeypatch.setenv(build_pool.WORKERS_ENV, "1")  # in this process, the same artifacts
    serial = build_phase([(workload, names)])
    assert serial.workers == 0 and serial.artifacts == first.artifacts
    assert serial.describe()["artifacts"][0] == {"workload": "bt-parallel", "variant": None,
                                                 "seconds": pytest.approx(serial.times[0].seconds, abs=1e-3),
                                                 "cached": True}


def test_a_worker_failure_is_the_build_error(tmp_path, monkeypatch):
    workload = load_workload(write(tmp_path / "w.toml", tiny_workload_toml("bt-bad") + """
    [[variants]]
    name = "hint"
    family = "distill"
    student_arch = "small_cnn"
    hint = { teacher_layer = "no.such.layer", student_layer = "features.1", epochs = 1 }
    """))
    monkeypatch.setenv(build_pool.WORKERS_ENV, "2")
    monkeypatch.setattr(build_pool, "usable_cores", lambda: 2)
    said = []
    phase = BuildPhase(on_ready=said.append)  # the runner's: what was ready stays known after a failure
    with pytest.raises(Exception, match="no.such.layer"):
        build_phase([(workload, {"hint"})], phase=phase)
    # the base model (built here, or cached by another test of the session) was said before the error
    assert [t.variant for t in said] == [None] and phase.times == said and phase.wall_s > 0
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "3"])
def test_a_bad_worker_count_is_an_error_naming_the_variable(monkeypatch, value):
    monkeypatch.setattr(build_pool, "usable_cores", lambda: 2)
    monkeypatch.setenv(build_pool.WORKERS_ENV, value)
    with pytest.raises(ConfigError) as raised:
        build_phase([])
    assert str(raised.value).startswith(f"EDGEBENCH_BUILD_WORKERS={value!r}: not a number of build workers; "
                                        f"accepted: an integer from 1 to 2 (the usable cores")
    monkeypatch.setenv(build_pool.WORKERS_ENV, " 2 ")
    assert build_pool.build_workers() == 2
    monkeypatch.delenv(build_pool.WORKERS_ENV)
    assert build_pool.build_workers() == 2


# ---- stand-ins for a worker's build (run in spawned workers: module level, importable by name) ----

def _fake_base(workload, progress):
    """The parent's look into the cache: a base model is there once its stand-in build wrote the file."""
    if Path(workload.marker).exists():
        return SimpleNamespace(workload=workload)
    raise build_pool.NotCached("base", workload.name)


def _fake_task(workload, names):
    Path(workload.marker + ".pid").write_text(str(os.getpid()))
    if workload.name == "quick":
        Path(workload.marker).write_text("built")
        return [BuildTime(workload.name, None, 0.25, cached=False)], {}
    if workload.name == "dies":
        time.sleep(1.0)  # after "quick" is done
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer does
    if workload.name == "tick":
        time.sleep(1.0)  # both builds under way
        build_pool._worker_progress("tick")
    time.sleep(120)  # a long build: the phase does not wait for it
    return [], {}


@pytest.fixture
def fake_builds(tmp_path, monkeypatch):
    monkeypatch.setenv(build_pool.WORKERS_ENV, "3")
    monkeypatch.setattr(build_pool, "usable_cores", lambda: 3)
    monkeypatch.setattr(build_pool, "build_base", _fake_base)
    monkeypatch.setattr(build_pool._Parallel, "worker_task", staticmethod(_fake_task))

    def workloads(*names):
        return [(SimpleNamespace(name=name, variants=[], marker=str(tmp_path / name)), set()) for name in names]

    def gone(names):
        """No worker process is left (joined, and their pids are no process)."""
        assert multiprocessing.active_children() == []
        for name in names:
            pid = int((tmp_path / f"{name}.pid").read_text())
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        return True

    return workloads, gone


def test_a_worker_killed_mid_build_fails_the_build_at_once_naming_what_it_built(fake_builds):
    workloads, gone = fake_builds
    said = []
    start = time.monotonic()
    with pytest.raises(BuildWorkerDied) as raised:
        build_phase(workloads("quick", "dies", "slow"), on_ready=said.append)
    assert time.monotonic() - start < 15  # not the slow build's 120 s, nor forever
    message = str(raised.value)
    assert message.startswith("a build worker process died (killed by SIGKILL) while building ")
    assert "dies base model" in message and "slow base model" in message and "quick" not in message
    assert f"try {build_pool.WORKERS_ENV}=1" in message and "\n" not in message
    assert [(t.workload, t.cached) for t in said] == [("quick", False)]  # said before the error
    assert gone(["quick", "dies", "slow"])


def test_ctrl_c_during_a_parallel_build_ends_it_at_once_leaving_no_worker(fake_builds):
    workloads, gone = fake_builds

    pressed = []

    def progress(message):
        if message == "tick":  # a worker is building: the user presses Ctrl-C
            pressed.append(time.monotonic())
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_phase(workloads("tick", "slow"), progress)
    assert time.monotonic() - pressed[0] < 3  # the workers are ended, not waited for
    assert gone(["tick", "slow"])


def test_build_lines_are_printed_and_kept_in_the_run_log(tmp_path, capsys):
    reporter = QuietReporter()
    reporter.build_finished(BuildTime("w", None, 12.345, cached=False))
    reporter.build_finished(BuildTime("w", "int8", 0.04, cached=True))
    reporter.keep_log(tmp_path / "log.txt")  # what was said before the run directory existed
    reporter.note("run [x]: 2 of 2 jobs to run")
    err = capsys.readouterr().err.splitlines()
    assert err == ["built    w base model: 12.3 s", "cached   w/int8: 0.0 s", "run [x]: 2 of 2 jobs to run"]
    assert (tmp_path / "log.txt").read_text().splitlines() == err
    log = RunLog()
    log.write("a")
    assert log.waiting == ["a"]


def test_a_run_records_its_build_times(tiny_files, capsys):
    from harness.app.cli import main

    runs = tiny_files["runs"]
    assert main(["bench", "--suite", str(tiny_files["suite"]), "--runs-dir", str(runs), "--quiet"]) == 0
    run_dir = next(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    info = json.loads((run_dir / "run.json").read_text())
    (session,) = info["build_times"]
    assert [(a["workload"], a["variant"]) for a in session["artifacts"]] == [("tiny-digits", None),
                                                                              ("tiny-digits", "fp32")]
    assert session["wall_s"] >= 0
    lines = (run_dir / "log.txt").read_text().splitlines()
    assert any(line.endswith(" s") and "tiny-digits base model" in line for line in lines)
    assert any(line.startswith("ok ") and "tiny-digits/fp32 onnxruntime" in line for line in lines)
    assert "tiny-digits/fp32" in capsys.readouterr().err
    if all(a["cached"] for a in session["artifacts"]):  # no worker was started, and none is said
        assert session["workers"] == 0
        assert any(line.startswith("build: 0 artifacts built, 2 cached, in ") and line.endswith(
            " s (no worker started)") for line in lines)

    # a resumed run with nothing left to run builds nothing: no session of the build phase is added
    assert main(["bench", "--resume", str(run_dir), "--quiet", "--no-report"]) == 0
    assert json.loads((run_dir / "run.json").read_text())["build_times"] == info["build_times"]
    assert not any(line.startswith("build: ") for line in capsys.readouterr().err.splitlines())
