"""The build phase: what is cached is taken without a worker, the rest is built in worker processes, each
artifact timed; the run says so per artifact (a line each, run.json's build_times, the run's log.txt)."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_workload_toml, write

from harness.app.progress import QuietReporter, RunLog
from workloads import build_pool
from workloads.build_pool import BuildTime, build_phase, variant_groups
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
    status = []
    first = build_phase([(workload, names)], status.append)
    assert first.workers == 2
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

    monkeypatch.setenv(build_pool.WORKERS_ENV, "1")  # in this process, the same artifacts
    serial = build_phase([(workload, names)])
    assert serial.workers == 1 and serial.artifacts == first.artifacts
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
    with pytest.raises(Exception, match="no.such.layer"):
        build_phase([(workload, {"hint"})])


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
    assert session["wall_s"] >= 0 and session["workers"] >= 1
    lines = (run_dir / "log.txt").read_text().splitlines()
    assert any(line.endswith(" s") and "tiny-digits base model" in line for line in lines)
    assert any(line.startswith("ok ") and "tiny-digits/fp32 onnxruntime" in line for line in lines)
    assert "tiny-digits/fp32" in capsys.readouterr().err
