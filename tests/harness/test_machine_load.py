"""The machine's load around each job: others' CPU time and steal from two /proc/stat snapshots, the
figures on the wire and in the row, a busy job's warning, and the report's banners."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import pandas as pd
import pytest

from harness.app import rows, runner
from harness.app.cli import main
from harness.core.jobs import Job
from reports.load import load_run
from reports.noise import (
    BUSY_OTHER_CORES,
    BUSY_STEAL_PCT,
    BUSY_WARNING,
    CONCURRENT_WARNING,
    busy_banner,
    busy_warning,
    concurrent_banner,
)
from targets.agent import machine_load as ml
from targets.agent import wire

# /proc/stat of this project's 2-core build VM, read 2.0004 s apart while another process spun one core
# (the interrupt lines, thousands of numbers, left out). Between them: user +194, system +6, idle +197,
# steal +1 jiffies; this process used 0.25 ms.
STAT_BEFORE = """\
cpu  1488090 30818 182592 2216595 11527 0 4299 646 0 0
cpu0 541822 14595 65896 1339950 2166 0 1536 306 0 0
cpu1 946267 16222 116695 876645 9360 0 2763 340 0 0
ctxt 28747839
btime 1795430291
processes 735244
procs_running 2
procs_blocked 0
"""
STAT_AFTER = """\
cpu  1488284 30818 182598 2216792 11527 0 4299 647 0 0
cpu0 541826 14595 65898 1340142 2166 0 1536 307 0 0
cpu1 946458 16222 116700 876649 9361 0 2763 340 0 0
ctxt 28748386
btime 1795430291
processes 735244
procs_running 2
procs_blocked 0
"""


def snap(t_s: float, own_cpu_s: float, stat_text: str | None, load: float | None = 1.0) -> ml.Snapshot:
    return ml.Snapshot(t_s, own_cpu_s, None if stat_text is None else ml.parse_cpu_line(stat_text), load)


def cpu_line(user, nice, system, idle, iowait, irq, softirq, steal, guest=0) -> str:
    return f"cpu  {user} {nice} {system} {idle} {iowait} {irq} {softirq} {steal} {guest} 0\n"


def test_the_recorded_pair_shows_the_other_process_on_one_core():
    load = ml.machine_load(snap(0.0, 0.0, STAT_BEFORE, 1.17), snap(2.0004, 0.00025, STAT_AFTER, 1.21), user_hz=100)
    # busy = 398 total - 197 idle - 0 iowait - 1 steal = 200 jiffies = 2.0 s, ours 0.25 ms, over 2.0004 s
    assert load["other_cpu_cores"] == pytest.approx((2.0 - 0.00025) / 2.0004)
    assert load["cpu_steal_pct"] == pytest.approx(100 * 1 / 398)
    assert load["load_avg_1m"] == 1.21  # the larger of before and after
    assert busy_warning(**load).startswith(BUSY_WARNING + ": other processes used 1.00 cores")


def test_a_hand_made_busy_pair_counts_steal_apart_and_guest_inside_user():
    # 4 CPUs for 1 s: this process used 1.0 s of the 2.8 s busy; the hypervisor stole 40 of 400 jiffies.
    # guest (+50) is already inside user: counting it again would make 3.3 s busy.
    before = snap(10.0, 5.0, cpu_line(1000, 0, 500, 9000, 100, 0, 0, 0, guest=7))
    after = snap(11.0, 6.0, cpu_line(1250, 0, 530, 9070, 110, 0, 0, 40, guest=57))
    load = ml.machine_load(before, after, user_hz=100)
    assert load["other_cpu_cores"] == pytest.approx(1.8)
    assert load["cpu_steal_pct"] == pytest.approx(10.0)
    warning = busy_warning(**load)
    assert warning == (f"{BUSY_WARNING}: other processes used 1.80 cores, the hypervisor stole 10.0 % of the CPU "
                       f"time (load average 1.0); latencies may be inflated")


def test_a_quiet_machine_is_the_agent_alone_and_says_nothing():
    # our 1.0 s was charged as 99 whole ticks: others clamp at 0, never below
    before = snap(0.0, 0.0, cpu_line(100, 0, 0, 900, 0, 0, 0, 0))
    after = snap(1.0, 1.0, cpu_line(199, 0, 0, 1001, 0, 0, 0, 0))
    load = ml.machine_load(before, after, user_hz=100)
    assert load == {"load_avg_1m": 1.0, "other_cpu_cores": 0.0, "cpu_steal_pct": 0.0}
    assert busy_warning(**load) == ""


def test_unknown_figures_are_none_and_never_stop_a_job(tmp_path, monkeypatch):
    def no_load():
        raise OSError("hidden")

    monkeypatch.setattr(ml.os, "getloadavg", no_load)
    hidden = ml.snapshot(str(tmp_path / "no-proc-stat"))  # macOS, a container that hides /proc
    assert hidden.cpu is None and hidden.load_avg_1m is None and hidden.own_cpu_s >= 0
    nothing = {"load_avg_1m": None, "other_cpu_cores": None, "cpu_steal_pct": None}
    assert ml.machine_load(hidden, ml.snapshot(str(tmp_path / "no-proc-stat"))) == nothing
    assert busy_warning(**nothing) == ""
    # no cpu line; a counter that went back (a CPU taken offline); no USER_HZ; no time passed
    assert ml.parse_cpu_line("intr 1 2 3\n") is None
    went_back = ml.machine_load(snap(0, 0, cpu_line(100, 0, 0, 900, 0, 0, 0, 0)),
                                snap(1, 0, cpu_line(90, 0, 0, 1000, 0, 0, 0, 0)), user_hz=100)
    assert went_back["other_cpu_cores"] is None and went_back["cpu_steal_pct"] is None
    assert ml.machine_load(snap(0, 0, STAT_BEFORE), snap(1, 0, STAT_AFTER), user_hz=None)["other_cpu_cores"] is None
    assert ml.machine_load(snap(1, 0, STAT_BEFORE), snap(1, 0, STAT_AFTER), user_hz=100)["other_cpu_cores"] is None


def test_a_kernel_without_steal_reads_it_as_zero():
    assert ml.parse_cpu_line("cpu  1 2 3 4 5 6 7\n") == ml.CpuTimes(1, 2, 3, 4, 5, 6, 7, 0)


def test_this_machine_is_readable_where_it_runs_linux():
    first = ml.snapshot()
    load = ml.machine_load(first, ml.snapshot())
    assert set(load) == set(wire.MACHINE_LOAD_KEYS)
    if sys.platform.startswith("linux"):
        assert first.cpu is not None and ml.USER_HZ


def result(**extra) -> wire.JobResult:
    return wire.JobResult(0.9, 90, 100, [[1, 2, 3]], 10, 0.5, 80.0, {}, latency_ns_b64="AAAA", **extra)


def test_the_result_carries_the_figures_and_refuses_others():
    sent = result(machine_load={"load_avg_1m": 4.8, "other_cpu_cores": 1.3, "cpu_steal_pct": None})
    assert wire.decode(wire.encode(sent), wire.AGENT_TO_HOST) == sent
    for bad, reason in [({"load_avg_1m": 1.0}, "expected the keys"),
                        ({"load_avg_1m": 1.0, "other_cpu_cores": -1, "cpu_steal_pct": 0}, "other_cpu_cores -1")]:
        with pytest.raises(wire.WireError, match=reason):
            wire.decode(wire.encode(result(machine_load=bad)), wire.AGENT_TO_HOST)


def job(link: str = "", threads: int = 1) -> Job:
    return Job("w", "v", "split" if link else "baseline", "fp32", "cpu", "onnxruntime", threads, 1, link)


def row_with(figures: dict, of: Job, warnings: str = "stdev 12% of the mean") -> dict:
    row = {"warnings": warnings}
    rows.add_machine_load(row, of, figures)
    return row


def figures(others: float | None, steal: float | None = 0.0, load: float | None = 2.0) -> dict:
    return {"load_avg_1m": load, "other_cpu_cores": others, "cpu_steal_pct": steal}


def test_the_row_carries_the_figures_and_a_busy_job_says_what_was_seen():
    quiet = row_with(figures(0.04), job())
    assert quiet == {"warnings": "stdev 12% of the mean", **figures(0.04)}
    busy = row_with(figures(1.3456, load=4.8), job())
    assert busy["other_cpu_cores"] == 1.346
    assert busy["warnings"] == ("stdev 12% of the mean; machine busy during the timed windows: other processes "
                                "used 1.35 cores (load average 4.8); latencies may be inflated")
    assert BUSY_WARNING in row_with(figures(0.0, steal=BUSY_STEAL_PCT), job())["warnings"]
    # the load average alone is no verdict: it lags a minute and counts the agent
    assert row_with(figures(0.0, load=9.0), job(), warnings="")["warnings"] == ""
    # an agent that did not look leaves the columns empty
    assert row_with(None, job(), warnings="") == {"warnings": ""}


def test_a_split_jobs_own_server_on_this_machine_is_not_held_against_it():
    # over loopback or namespaces the server agent is one of the "others": up to `threads` cores of it
    assert row_with(figures(1.1), job("loopback"), warnings="")["warnings"] == ""
    assert row_with(figures(2.1), job("10mbit-5ms", threads=2), warnings="")["warnings"] == ""
    crowded = row_with(figures(1.1 + BUSY_OTHER_CORES), job("loopback"), warnings="")["warnings"]
    assert "other processes used 1.35 cores, this job's server agent (up to 1 core) among them" in crowded
    # over the real network the server is another machine: every other core counts
    apart = row_with(figures(0.5), job("network"), warnings="")["warnings"]
    assert apart.startswith(BUSY_WARNING) and "server agent" not in apart


def ok_rows(*rows_: dict) -> pd.DataFrame:
    base = {"warnings": "", "other_cpu_cores": float("nan"), "cpu_steal_pct": float("nan")}
    return pd.DataFrame([{**base, **r} for r in rows_])


def test_the_busy_banner_counts_the_busy_jobs_and_the_most_others_used():
    busy = busy_warning(4.8, 1.8, 0.1)
    frame = ok_rows({"warnings": "stdev 12% of the mean; " + busy, "other_cpu_cores": 1.8},
                    {"warnings": busy_warning(3.0, 0.9, 0.0), "other_cpu_cores": 0.9},
                    {"other_cpu_cores": 0.02}, {"other_cpu_cores": 0.01})
    assert busy_banner(frame) == ("2 of 4 jobs were measured while the machine was busy (others used up to 1.8 "
                                  "cores): their latencies may be inflated; see 'Validity and warnings'.")
    stolen = ok_rows({"warnings": busy_warning(1.0, 0.0, 5.0), "other_cpu_cores": 0.0, "cpu_steal_pct": 5.0})
    assert busy_banner(stolen).startswith("1 of 1 job was measured while the machine was busy (the hypervisor "
                                          "stole up to 5.0 %)")
    assert busy_banner(ok_rows({"other_cpu_cores": 0.02})) == ""


def test_the_banners_read_runs_of_older_formats():
    # migrated runs: the load columns all empty (NaN), no busy warning; a frame without the columns at all
    old = ok_rows({"warnings": "stdev 12% of the mean"}, {})
    assert busy_banner(old) == "" and concurrent_banner(old) == ""
    bare = pd.DataFrame({"job_id": ["a"]})
    assert busy_banner(bare) == "" and concurrent_banner(bare) == ""


def test_the_concurrent_banner_matches_the_runners_warning():
    # the runner writes the warning from the same constant the banner counts by
    assert "CONCURRENT_WARNING" in inspect.getsource(runner.Bench._measure_job)
    warning = f"{CONCURRENT_WARNING} (runs/other): each disturbs the other's latencies"
    frame = ok_rows({"warnings": warning}, {"warnings": "stdev 12% of the mean; " + warning}, {})
    assert concurrent_banner(frame) == ("This run overlapped with another edgebench run on the same machine for "
                                        "2 of 3 jobs: each disturbed the other's latencies; see 'Validity and "
                                        "warnings'.")


def test_a_job_measured_while_both_cores_spin_says_the_machine_was_busy(user_model):
    runs = user_model["dir"] / "runs"
    suite = user_model["dir"] / "s.toml"
    # two windows of half a second: long enough for /proc/stat's 10 ms ticks, short enough for a test
    suite.write_text('[suite]\nworkloads = ["unused"]\n[protocol]\nn_windows = 2\nwindow_min_s = 0.5\n'
                     'window_min_iterations = 10\nwarmup_min_s = 0.0\n')
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        code = main(["bench", "--model", str(user_model["model"]), "--data", str(user_model["data"]),
                     "--backend", "onnxruntime", "--suite", str(suite), "--runs-dir", str(runs), "--quiet",
                     "--no-report"])
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert code == 0
    _, table = load_run(runs / "latest")
    ok = table[table["status"] == "ok"]
    assert len(ok) == 1
    row = ok.iloc[0]
    # two spinners and the agent share two cores: the spinners get about 1.3 of them
    assert row["other_cpu_cores"] > 0.5, row["other_cpu_cores"]
    assert not math.isnan(row["load_avg_1m"]) and not math.isnan(row["cpu_steal_pct"])
    assert BUSY_WARNING in row["warnings"]
    assert busy_banner(ok).startswith("1 of 1 job was measured while the machine was busy")
    # ... and the run's report says so above its numbers, and in the job's row
    from reports.report import write_report

    _, md_path = write_report(runs / "latest")
    report = md_path.read_text()
    assert "1 of 1 job was measured while the machine was busy" in report and BUSY_WARNING in report
