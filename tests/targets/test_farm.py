"""A board farm through a real labgrid coordinator and exporter on 127.0.0.1 (tests/farm_lab.py): every
board runs jobs and its rows name it, a board killed mid-run loses its job to another board (and is
power-cycled and rejoins, or is dropped), the places are released however the run ends, and two runs share
the boards without ever using one twice."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from farm_lab import missing, start_lab
from helpers import PROJECT_ROOT, TINY_PROTOCOL, tiny_workload_toml, write

from harness.app.cli import main

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")
JOBS = 6   # batch sizes 1..32: enough jobs for three boards


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = start_lab(tmp_path_factory.mktemp("lab"), 3)
    yield lab
    lab.stop()


@pytest.fixture(autouse=True)
def boards_on(request):
    """Every board powered and every place free again after a test (the next one starts from a clean lab)."""
    yield
    if "lab" in request.fixturenames:
        lab = request.getfixturevalue("lab")
        for board in lab.boards:
            board.power_on()


def suite_file(tmp_path: Path, window_min_s: float = 0.05, batches=(1, 2, 4, 8, 16, 32)) -> Path:
    workload = write(tmp_path / "tiny.toml", tiny_workload_toml())
    return write(tmp_path / "suite.toml", f"""
    [suite]
    name = "tiny"
    workloads = ["{workload}"]
    {TINY_PROTOCOL.replace("window_min_s = 0.05", f"window_min_s = {window_min_s}")}
    [matrix]
    backends = ["onnxruntime"]
    threads = [1]
    batch_sizes = {list(batches)}
    """)


def bench_args(target: Path, suite: Path, runs: Path) -> list[str]:
    return ["bench", "--target", str(target), "--suite", str(suite), "--runs-dir", str(runs), "--quiet"]


def rows_of(run_dir: Path) -> list[dict]:
    with open(run_dir / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def last_rows(run_dir: Path) -> dict[str, dict]:
    return {r["job_id"]: r for r in rows_of(run_dir)}


def run_dir_of(runs: Path) -> Path:
    return next(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())


def assert_released(lab) -> None:
    """The coordinator holds no place for anyone and no reservation."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        places = lab.places()
        if all(holder is None and reservation is None for holder, reservation in places.values()):
            break
        time.sleep(0.2)
    assert places == {b.name: (None, None) for b in lab.boards}
    assert "Reservation '" not in lab.reservations()


def board_python(tmp_path: Path, script: str) -> Path:
    """The boards' python (the target's `python`): `script` (sh, with $EDGEBENCH_BOARD and $HOME of the board
    it runs on) before each agent; probes and transfers run as they are."""
    path = tmp_path / "board-python"
    path.write_text(f"""#!/bin/sh
case "$1" in
  *.pyz) {script} ;;
esac
exec {sys.executable} "$@"
""")
    path.chmod(0o755)
    return path


def test_a_run_uses_every_board_names_each_row_s_board_and_releases_the_places(lab, tmp_path, capsys):
    suite = suite_file(tmp_path, window_min_s=0.3)   # jobs long enough for the boards' fan-out to show
    warm = write(tmp_path / "warm.toml", lab.target_toml(boards=1))   # the model trained outside the timings
    assert main(bench_args(warm, suite_file(tmp_path / "warm", batches=(1,)), tmp_path / "warm-runs")) == 0
    walls = {}
    for boards in (1, 3):
        target = write(tmp_path / f"lab{boards}.toml", lab.target_toml(boards=boards))
        started = time.monotonic()
        assert main(bench_args(target, suite, tmp_path / f"runs{boards}")) == 0
        walls[boards] = time.monotonic() - started
        assert_released(lab)
    with capsys.disabled():
        print(f"\nfarm wall time, {JOBS} jobs: 1 board {walls[1]:.1f} s, 3 boards {walls[3]:.1f} s")
    run_dir = run_dir_of(tmp_path / "runs3")
    rows = rows_of(run_dir)
    assert len(rows) == JOBS and {r["status"] for r in rows} == {"ok"}
    hostname = os.uname().nodename
    assert {r["board"] for r in rows} == {f"{b.name}/{hostname}" for b in lab.boards}   # every board ran jobs
    info = json.loads((run_dir / "run.json").read_text())
    assert sorted(info["boards"]) == sorted(f"{b.name}/{hostname}" for b in lab.boards)
    assert info["device"]["farm"]["tags"] == {"board": "loop"}
    # the boards' agents shipped to each board's own home, as on separate machines
    assert all(list((b.home / ".cache/edgebench").glob("*-edgebench-agent-*.pyz")) for b in lab.boards)
    assert "loop" in (run_dir / "report.md").read_text() or (run_dir / "report.md").is_file()


def test_a_board_killed_mid_job_loses_the_job_to_another_board_is_power_cycled_and_rejoins(lab, tmp_path):
    # board-1's second agent (its first job; the first gives the session's facts) cuts board-1's power 1 s in
    count = tmp_path / "board-1-agents"
    off = f"http://127.0.0.1:{lab.power_server.server_port}/board-1/0"
    python = board_python(tmp_path, f"""if [ "$EDGEBENCH_BOARD" = board-1 ]; then
           echo x >> {count}
           if [ "$(wc -l < {count})" -eq 2 ]; then
             (sleep 1; {sys.executable} -c "import urllib.request; urllib.request.urlopen('{off}')") &
           fi
         fi""")
    target = write(tmp_path / "lab.toml", lab.target_toml(python=str(python)))
    code = main(bench_args(target, suite_file(tmp_path, window_min_s=0.5), tmp_path / "runs"))
    assert code == 0
    run_dir = run_dir_of(tmp_path / "runs")
    rows = rows_of(run_dir)
    lost = [r for r in rows if r["status"] == "failed"]
    assert len(lost) == 1 and lost[0]["board"].startswith("board-1/")
    assert "board board-1/" in lost[0]["reason"] and "the job goes to another board" in lost[0]["reason"]
    retried = [r for r in rows if r["job_id"] == lost[0]["job_id"] and r["status"] == "ok"]
    assert len(retried) == 1 and not retried[0]["board"].startswith("board-1/")   # finished elsewhere
    assert {r["status"] for r in last_rows(run_dir).values()} == {"ok"} and len(last_rows(run_dir)) == JOBS
    assert lab.power_log[-2:] == ["board-1 off", "board-1 on"]   # labgrid's power driver cycled it
    assert int(count.read_text().count("x")) >= 3                # it answered again and shipped an agent
    assert_released(lab)


def test_without_power_a_lost_board_is_dropped_and_the_run_finishes_on_the_others(tmp_path):
    lab = start_lab(tmp_path / "lab", 2, powered=())
    try:
        off = f"http://127.0.0.1:{lab.power_server.server_port}/board-2/0"
        python = board_python(tmp_path, f"""if [ "$EDGEBENCH_BOARD" = board-2 ] && [ ! -e {tmp_path}/cut ]; then
               touch {tmp_path}/cut
               (sleep 1; {sys.executable} -c "import urllib.request; urllib.request.urlopen('{off}')") &
             fi""")
        target = write(tmp_path / "lab.toml", lab.target_toml(python=str(python)).replace(
            "rejoin_timeout_s = 30", "rejoin_timeout_s = 2"))
        # the cut comes during board-2's first agent (its facts): it never runs a job
        suite = suite_file(tmp_path, window_min_s=0.3)
        code = main(bench_args(target, suite, tmp_path / "runs"))
        run_dir = run_dir_of(tmp_path / "runs")
        assert code == 0
        final = last_rows(run_dir)
        assert len(final) == JOBS and {r["status"] for r in final.values()} == {"ok"}
        assert {r["board"].split("/")[0] for r in final.values()} == {"board-1"}
        assert lab.power_log == ["board-2 off"]   # the test's cut only: no power port, no cycle
        assert_released(lab)
    finally:
        lab.stop()


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "crash"])
def test_the_places_are_released_after_ctrl_c_sigterm_and_a_crash(lab, tmp_path, how):
    target = write(tmp_path / "lab.toml", lab.target_toml())
    suite = suite_file(tmp_path, window_min_s=0.5)
    runs = tmp_path / "runs"
    if how == "crash":
        # a bug inside the run (here: writing the first row fails unexpectedly)
        from harness.core import rundir

        def broken(self, row):
            raise RuntimeError("a bug")
        original = rundir.RunStore.append
        rundir.RunStore.append = broken
        try:
            with pytest.raises(RuntimeError, match="a bug"):
                main(bench_args(target, suite, runs))
        finally:
            rundir.RunStore.append = original
    else:
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        process = subprocess.Popen([sys.executable, "-m", "harness", *bench_args(target, suite, runs)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(holder for holder, _ in lab.places().values()):
            time.sleep(0.2)
        time.sleep(3)   # jobs running on the boards
        process.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGTERM)
        output = process.communicate(timeout=120)[0].decode()
        assert process.returncode == 130, output
        assert "interrupted" in output
    assert_released(lab)


def test_two_runs_at_once_share_the_boards_without_using_one_twice(lab, tmp_path):
    # each board's agents take a lock on the board: an agent that finds it taken notes an overlap
    python = board_python(tmp_path, """exec 9>>"$HOME/agent.lock"
         if ! flock -n 9; then echo overlap >> "$HOME/overlaps"; flock 9; fi""")
    for board in lab.boards:
        (board.home / "overlaps").unlink(missing_ok=True)
    suite = suite_file(tmp_path, window_min_s=0.3)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    processes = []
    for name in ("a", "b"):
        target = write(tmp_path / f"{name}.toml", lab.target_toml(name=name, boards=2, python=str(python)))
        argv = [sys.executable, "-m", "harness", *bench_args(target, suite, tmp_path / name)]
        processes.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          cwd=PROJECT_ROOT))
    outputs = [p.communicate(timeout=300)[0].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    for name in ("a", "b"):
        final = last_rows(run_dir_of(tmp_path / name))
        assert len(final) == JOBS and {r["status"] for r in final.values()} == {"ok"}
    assert not any((b.home / "overlaps").exists() for b in lab.boards)
    assert_released(lab)


def test_replicate_runs_every_job_on_every_board_and_resumes_nothing_twice(lab, tmp_path):
    from reports.boards import board_spread_table
    from reports.load import load_run

    target = write(tmp_path / "lab.toml", lab.target_toml(farm_extra="replicate = true"))
    suite = suite_file(tmp_path, batches=(1, 2))
    assert main(bench_args(target, suite, tmp_path / "runs")) == 0
    run_dir = run_dir_of(tmp_path / "runs")
    rows = rows_of(run_dir)
    assert len(rows) == 2 * len(lab.boards) and {r["status"] for r in rows} == {"ok"}
    assert len({r["job_id"] for r in rows}) == len(rows)
    assert all(r["job_id"].endswith("__on-" + r["board"].split("/")[0]) for r in rows)
    _, table = load_run(run_dir)
    _, body = board_spread_table(table[table["status"] == "ok"])
    assert [line[2] for line in body] == ["3", "3"]
    assert main(["bench", "--resume", str(run_dir), "--quiet"]) == 0
    assert rows_of(run_dir) == rows   # every replica was trusted as finished: nothing ran again
    assert_released(lab)


@pytest.mark.parametrize("case, advice", [
    ("no-labgrid", "pip install 'edgebench[farm]'"),
    ("no-coordinator", "is labgrid-coordinator running there"),
    ("no-matching-place", "no place at"),
    ("reservation-timeout", "became free in time"),
])
def test_farm_problems_are_one_line_naming_the_target_file_before_anything_is_built(lab, tmp_path, capsys,
                                                                                   monkeypatch, case, advice):
    from sshd import free_port

    text = lab.target_toml()
    held = []
    if case == "no-labgrid":
        for module in ("labgrid", "labgrid.remote", "labgrid.remote.client"):   # imports fail as when absent
            monkeypatch.setitem(sys.modules, module, None)
    elif case == "no-coordinator":
        text = text.replace(lab.coordinator, f"127.0.0.1:{free_port()}")
    elif case == "no-matching-place":
        text = text.replace('board = "loop"', 'board = "jetson"')
    else:
        text = text.replace("reserve_timeout_s = 60", "reserve_timeout_s = 2")
        for board in lab.boards:   # someone else holds every place
            lab.client("-p", board.name, "acquire")
            held.append(board.name)
    target = write(tmp_path / "lab.toml", text)
    try:
        assert main(bench_args(target, suite_file(tmp_path), tmp_path / "runs")) == 2
    finally:
        for name in held:
            lab.client("-p", name, "release")
    error = capsys.readouterr().err.strip()
    assert str(target) in error and advice in error, error
    assert len([line for line in error.splitlines() if line.startswith("edgebench: error")]) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())   # nothing built or stored
    monkeypatch.undo()   # labgrid back, to ask the coordinator
    assert_released(lab)


def test_a_host_side_meter_belongs_to_one_place_and_board_side_sources_run_on_every_board(lab, tmp_path, capsys):
    suite = suite_file(tmp_path, batches=(1, 2, 4))
    meter = ["--power", "emulated-ina219:idle_s=0.3"]
    # a meter on this host measures one board: the target file must say which
    target = write(tmp_path / "lab.toml", lab.target_toml())
    assert main([*bench_args(target, suite, tmp_path / "unwired"), *meter]) == 2
    assert "set [farm] meter_place" in capsys.readouterr().err
    assert_released(lab)

    target = write(tmp_path / "wired.toml", lab.target_toml(farm_extra='meter_place = "board-2"'))
    assert main([*bench_args(target, suite, tmp_path / "wired"), *meter]) == 0
    for row in rows_of(run_dir_of(tmp_path / "wired")):
        on_board_2 = row["board"].startswith("board-2/")
        assert row["status"] == "ok" and (row["energy_source"] != "none") == on_board_2, row["board"]

    # a source on the boards themselves (an INA226 on hwmon, 2 W): every board's agent reads its own
    hwmon = tmp_path / "sys/class/hwmon/hwmon1"
    hwmon.mkdir(parents=True)
    for name, value in {"name": "ina226", "in1_input": 5000, "curr1_input": 400, "power1_input": 2000000}.items():
        (hwmon / name).write_text(f"{value}\n")
    target = write(tmp_path / "hwmon.toml", lab.target_toml().replace(
        'source = "none"', f'source = "hwmon"\nroot = "{tmp_path}"\nidle_s = 0.2'))
    assert main(bench_args(target, suite, tmp_path / "hwmon")) == 0
    rows = rows_of(run_dir_of(tmp_path / "hwmon"))
    assert {r["energy_source"] for r in rows} == {"hwmon (on the device)"}
    assert [float(r["avg_power_w"]) for r in rows] == pytest.approx([2.0] * len(rows))
    assert_released(lab)
