"""Board targets through a real sshd on 127.0.0.1: the agent shipped as a zipapp, artifacts staged by
sha256, jobs run over SSH, and each SSH failure named with what to do."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from helpers import FIXTURES, PROJECT_ROOT, tiny_workload_toml, write
from sshd import SSHD, start_board

from harness.app.cli import main

EMULATED_METER = "emulated-ina219:idle_s=0.5"  # a labelled emulation, read on the host
pytestmark = pytest.mark.skipif(not os.path.exists(SSHD), reason="OpenSSH server not installed "
                                "(apt-get install openssh-server; .ci/run does)")


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    board = start_board(tmp_path_factory.mktemp("board"))
    yield board
    board.stop()


def bench(target: Path, suite: Path, runs: Path, *extra: str) -> tuple[int, Path | None]:
    code = main(["bench", "--target", str(target), "--suite", str(suite), "--runs-dir", str(runs),
                 "--quiet", *extra])
    dirs = [p for p in runs.iterdir() if p.is_dir() and not p.is_symlink()] if runs.exists() else []
    return code, (dirs[0] if dirs else None)


def rows_of(run_dir: Path) -> dict:
    with open(run_dir / "results.csv", newline="") as fh:
        return {(r["variant"], r["backend"]): r for r in csv.DictReader(fh)}


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_rpi_bench_over_ssh_ships_the_agent_and_fills_the_cpu_targets_columns(board, tiny_files, tmp_path):
    target = write(tmp_path / "rpi.toml", board.target_toml("rpi", ["onnxruntime", "torch"], 'pin_cpus = "0"'))
    code, run_dir = bench(target, tiny_files["suite"], tmp_path / "runs", "--power", EMULATED_METER)
    assert code == 0 and (run_dir / "report.html").is_file()
    row = rows_of(run_dir)[("fp32", "onnxruntime")]
    assert row["status"] == "ok" and float(row["accuracy"]) > 0.8
    assert float(row["energy_per_inference_mj"]) > 0 and row["energy_source"].startswith("emulated")
    # same machine, same monotonic clock: the measured offset is within its own uncertainty
    assert abs(float(row["clock_offset_us"])) <= float(row["clock_uncertainty_us"]) + 50
    workdir = board.root / "board-workdir"
    agents = list(workdir.glob("*-edgebench-agent-*.pyz"))
    assert len(agents) == 1
    facts = json.loads((run_dir / "run.json").read_text())["device"]
    assert facts["agent"].startswith(str(agents[0])) and facts["board"]["kind"] == "rpi"
    assert facts["transport"]["kind"] == "ssh"
    assert facts["smoke"]["onnxruntime"]["ok"] and facts["smoke"]["torch"]["ok"]
    report = (run_dir / "report.md").read_text()
    assert "**board**: rpi: model unreadable · Python 3.11" in report and "over ssh to board" in report

    cpu_code, cpu_dir = bench(Path("targets/cpu.toml"), tiny_files["suite"], tmp_path / "cpu-runs",
                              "--power", EMULATED_METER)
    with open(cpu_dir / "results.csv") as a, open(run_dir / "results.csv") as b:
        assert next(csv.reader(a)) == next(csv.reader(b))  # the same columns as the cpu target

    staged = sorted(p.name for p in workdir.iterdir())
    code, _ = bench(target, tiny_files["suite"], tmp_path / "runs-again")
    assert code == 0 and sorted(p.name for p in workdir.iterdir()) == staged  # nothing sent twice


def test_jetson_clocks_are_stored_locked_and_restored(board, tiny_files, tmp_path):
    log = tmp_path / "jetson_clocks.log"
    tool = executable(tmp_path / "jetson_clocks", f'#!/bin/sh\necho "$*" >> {log}\n')
    target = write(tmp_path / "jetson.toml", board.target_toml(
        "jetson", ["onnxruntime", "torch"], f'lock_clocks = true\nsudo = false\njetson_clocks = "{tool}"'))
    code, run_dir = bench(target, tiny_files["suite"], tmp_path / "runs", "--power", EMULATED_METER)
    assert code == 0 and (run_dir / "report.html").is_file()
    assert float(rows_of(run_dir)[("fp32", "onnxruntime")]["energy_per_inference_mj"]) > 0
    calls = log.read_text().splitlines()
    assert calls[0].startswith("--store ") and calls[1] == "" and calls[2].startswith("--restore ")
    assert calls[0].split()[1] == calls[2].split()[1] and len(calls) == 3


def test_pynq_runs_the_functional_reference_and_skips_finn_without_pynq(board, tiny_files, tmp_path):
    workload = write(tmp_path / "w.toml", tiny_workload_toml(name="tiny-fpga") + """
    [[variants]]
    name = "w4a4"
    family = "qat"
    weight_bits = 4
    activation_bits = 4
    epochs = 1
    [[variants]]
    name = "finn-w4a4"
    family = "fpga"
    reference = "w4a4"
    bitfile = "accel.bit"
    idt = "UINT8"
    odt = "UINT8"
    ishape_normal = [1, 8, 8, 1]
    ishape_folded = [1, 8, 8, 1, 1]
    oshape_normal = [1, 1]
    oshape_folded = [1, 1, 1]
    input_scale = 255.0
    """)
    (tmp_path / "accel.bit").write_bytes(b"\x00" * 64)  # never loaded: pynq is not on this "board"
    (tmp_path / "accel.hwh").write_text("<hwh/>")
    suite = tiny_files["suite"]
    suite.write_text(suite.read_text().replace(str(tiny_files["workload"]), str(workload))
                     .replace('["onnxruntime", "torch"]', '["finn", "qonnx-reference"]'))
    target = write(tmp_path / "pynq.toml", board.target_toml("pynq", ["finn", "qonnx-reference"]))
    code, run_dir = bench(target, suite, tmp_path / "runs", "--power", EMULATED_METER)
    assert code == 0 and (run_dir / "report.html").is_file()
    rows = rows_of(run_dir)
    reference = rows[("w4a4", "qonnx-reference")]
    assert reference["status"] == "ok" and "functional reference" in reference["warnings"]
    assert float(reference["energy_per_inference_mj"]) > 0
    assert rows[("finn-w4a4", "qonnx-reference")]["accuracy"] == reference["accuracy"]  # the same graph
    assert rows[("w4a4", "finn")]["status"] == "skipped"  # no bitfile
    assert "pynq is not installed on this device" in rows[("finn-w4a4", "finn")]["reason"]
    staged = {p.suffix: p.stem for p in (board.root / "board-workdir").glob("*accel.*")}
    assert staged[".bit"] == staged[".hwh"]  # PYNQ finds the .hwh beside the bitfile by its stem


@pytest.mark.parametrize("case, advice", [
    ("unknown-host-key", "host key is unknown"),
    ("changed-host-key", "host key CHANGED"),
    ("refused-auth", "refused the login"),
    ("nothing-listening", "nothing listens for SSH"),
    ("no-python", "did not run on the board"),
    ("old-python", "the agent needs 3.8+"),
    ("disk-full", "no space left on the board"),
])
def test_ssh_and_board_faults_name_the_target_file_and_what_to_do(board, tiny_files, tmp_path, capsys, case,
                                                                   advice):
    from sshd import free_port, keygen

    config = board.ssh_config.read_text()
    python = board.python
    if case == "unknown-host-key":
        config = config.replace(str(board.known_hosts), str(write(tmp_path / "empty_known_hosts", "")))
    elif case == "changed-host-key":
        keygen(tmp_path / "other")
        other = (tmp_path / "other.pub").read_text().split()
        known = write(tmp_path / "known", f"[127.0.0.1]:{board.port} {other[0]} {other[1]}\n")
        config = config.replace(str(board.known_hosts), str(known))
    elif case == "refused-auth":
        keygen(tmp_path / "stranger")
        config = config.replace(str(board.user_key), str(tmp_path / "stranger"))
    elif case == "nothing-listening":
        config = config.replace(f"Port {board.port}", f"Port {free_port()}")
    elif case == "no-python":
        python = "/nonexistent/python3"
    elif case == "old-python":
        python = str(executable(tmp_path / "python36", '#!/bin/sh\necho \'{"python": [3, 6, 9], '
                                '"workdir": "/tmp", "free_bytes": 1000000000, "present": []}\'\n'))
    elif case == "disk-full":
        python = str(executable(tmp_path / "python-full", '#!/bin/sh\necho \'{"python": [3, 11, 0], '
                                '"workdir": "/tmp", "free_bytes": 10, "present": []}\'\n'))
    ssh_config = write(tmp_path / "ssh_config", config)
    text = board.target_toml("rpi", ["onnxruntime", "torch"]).replace(str(board.ssh_config), str(ssh_config))
    target = write(tmp_path / "rpi.toml", text.replace(f'python = "{board.python}"', f'python = "{python}"'))
    assert main(["bench", "--target", str(target), "--suite", str(tiny_files["suite"]),
                 "--runs-dir", str(tmp_path / "runs"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert str(target) in error and advice in error


def test_a_killed_agent_fails_its_job_keeps_the_others_and_resumes(board, tiny_files, tmp_path):
    marker = tmp_path / "kill-agents"
    marker.touch()
    # The board's python: probes and transfers run as usual; while the marker exists, every job's agent is
    # killed 2 s in, mid-job (each job's windows take over 3 s). The session's facts agent (--smoke) is
    # spared: its smoke tests import the runtimes, which alone can take 2 s on a busy machine.
    wrapper = executable(tmp_path / "python", f"""#!/bin/sh
case "$*" in
  *--smoke*) ;;
  *.pyz*) if [ -e {marker} ]; then exec timeout -s KILL 2 {board.python} "$@"; fi ;;
esac
exec {board.python} "$@"
""")
    suite = tiny_files["suite"]
    suite.write_text(suite.read_text().replace("n_windows = 2", "n_windows = 3")
                     .replace("window_min_s = 0.05", "window_min_s = 1.0"))
    target = write(tmp_path / "rpi.toml", board.target_toml("rpi", ["onnxruntime", "torch"]).replace(
        f'python = "{board.python}"', f'python = "{wrapper}"'))
    code, run_dir = bench(target, suite, tmp_path / "runs")
    rows = rows_of(run_dir)
    failed = rows[("fp32", "onnxruntime")]
    assert failed["status"] == "failed" and "agent exited mid-job" in failed["reason"]
    marker.unlink()
    assert main(["bench", "--resume", str(run_dir), "--quiet"]) == 0
    assert rows_of(run_dir)[("fp32", "onnxruntime")]["status"] == "ok"


def board_python(board, version: str | None) -> str:
    """This venv's Python (None), or a board environment of another version (skipped where absent)."""
    if version is None:
        return board.python
    python = PROJECT_ROOT / ".venv-boards" / f"py{version}" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no Python {version} board environment here (`make test` builds .venv-boards/py{version} "
                    f"where a python{version} exists)")
    return str(python)


@pytest.mark.parametrize("version", [None, "3.8"], ids=["host-python", "python3.8"])
def test_board_side_power_is_read_by_the_agent_on_the_boards_clock(board, tiny_files, tmp_path, version):
    hwmon = tmp_path / "sys/class/hwmon/hwmon1"  # an INA226 on the board's hwmon, at a steady 2 W
    hwmon.mkdir(parents=True)
    for name, value in {"name": "ina226", "in1_input": 5000, "curr1_input": 400, "power1_input": 2000000}.items():
        (hwmon / name).write_text(f"{value}\n")
    text = board.target_toml("jetson", ["onnxruntime", "torch"]).replace(
        'source = "none"', f'source = "hwmon"\nroot = "{tmp_path}"\nidle_s = 0.2').replace(
        f'python = "{board.python}"', f'python = "{board_python(board, version)}"')
    target = write(tmp_path / "jetson.toml", text)
    code, run_dir = bench(target, tiny_files["suite"], tmp_path / "runs")
    assert code == 0
    row = rows_of(run_dir)[("fp32", "onnxruntime")]
    assert row["energy_source"].endswith("(on the device)")
    assert float(row["avg_power_w"]) == pytest.approx(2.0, rel=1e-6)
    # 2 W over each window, shared by the inferences it held; the row takes the median over windows (with
    # two windows, their mean: not 2000 / the median throughput when the windows differ on a busy machine)
    with np.load(run_dir / row["raw_latency_file"]) as raw:
        per_window_mj = [2000.0 * (end - start) / 1e9 / n for start, end, n in raw["windows"]]
    assert float(row["energy_per_inference_mj"]) == pytest.approx(float(np.median(per_window_mj)), rel=0.02)
    assert (run_dir / row["power_trace_file"]).stat().st_size > 0


@pytest.mark.parametrize("version", ["3.8", "3.13"])
def test_the_shipped_agent_runs_jobs_on_old_and_new_board_pythons(board, tiny_files, tmp_path, version):
    python = board_python(board, version)
    text = board.target_toml("rpi", ["onnxruntime", "torch"]).replace(f'python = "{board.python}"',
                                                                      f'python = "{python}"')
    target = write(tmp_path / "rpi.toml", text)
    code, run_dir = bench(target, tiny_files["suite"], tmp_path / "runs")
    assert code == 0
    rows = rows_of(run_dir)
    assert rows[("fp32", "onnxruntime")]["status"] == "ok"
    assert float(rows[("fp32", "onnxruntime")]["accuracy"]) > 0.8
    # that board has numpy and onnxruntime only: torch jobs are skipped, naming what to install
    assert "torch is not installed on this device" in rows[("fp32", "torch")]["reason"]
    facts = json.loads((run_dir / "run.json").read_text())["device"]
    assert facts["python"].startswith(version + ".")


def test_tegrastats_on_the_jetson_is_read_by_the_agent(board, tiny_files, tmp_path):
    """The Jetson path with a real Orin Nano tegrastats line (JetPack 6), replayed on the 'board' by a
    stand-in tegrastats that keeps printing it: VDD_IN 17.946 W."""
    samples = FIXTURES / "power-samples"
    line = (samples / "tegrastats_orin_nano8gb_jp6_jetson_stats_issue624.txt").read_text().strip()
    tool = executable(tmp_path / "tegrastats", f'#!/bin/sh\nwhile true; do echo "{line}"; sleep 0.05; done\n')
    text = board.target_toml("jetson", ["onnxruntime"]).replace(
        'source = "none"', f'source = "tegrastats"\ncommand = "{tool}"\nrate_hz = 20.0\nidle_s = 0.3')
    suite = tiny_files["suite"]
    suite.write_text(suite.read_text().replace('["onnxruntime", "torch"]', '["onnxruntime"]'))
    code, run_dir = bench(write(tmp_path / "jetson.toml", text), suite, tmp_path / "runs")
    assert code == 0
    row = rows_of(run_dir)[("fp32", "onnxruntime")]
    assert row["energy_source"] == "tegrastats (on the device)"
    assert float(row["avg_power_w"]) == pytest.approx(17.946)


def test_a_board_that_reboots_mid_run_fails_its_jobs_keeps_the_rest_and_resumes(tiny_files, tmp_path):
    """The 'board' goes down during the second job (its sshd stops and the shared SSH connection to it is
    closed, as in a reboot): that job fails with the reason, the ones after fail fast ("lost the board"), the
    finished row stays, and --resume finishes the run once the board is back."""
    from sshd import start_board

    board = start_board(tmp_path / "board")
    starts = tmp_path / "agent-starts"
    try:
        # agent 1 gives the session's facts, agent 2 runs job 1, agent 3 (job 2) sees the board go down
        wrapper = executable(tmp_path / "python", f"""#!/bin/sh
case "$1" in
  *.pyz) echo x >> {starts}
         if [ "$(wc -l < {starts})" -eq 3 ]; then
           pkill -f "sshd -D -e -f {board.root}/sshd_config"
           for d in ${{TMPDIR:-/tmp}}/edgebench-ssh-*; do
             ssh -F {board.ssh_config} -o ControlPath="$d/%C" -O exit board 2>/dev/null
           done
           sleep 2
         fi ;;
esac
exec {board.python} "$@"
""")
        suite = tiny_files["suite"]
        suite.write_text(suite.read_text().replace('["onnxruntime", "torch"]', '["onnxruntime"]')
                         .replace("batch_sizes = [1]", "batch_sizes = [1, 2, 4]"))
        target = write(tmp_path / "rpi.toml", board.target_toml("rpi", ["onnxruntime"]).replace(
            f'python = "{board.python}"', f'python = "{wrapper}"'))
        code, run_dir = bench(target, suite, tmp_path / "runs")
        rows = {int(r["batch_size"]): r for r in rows_of_all(run_dir)}
        assert rows[1]["status"] == "ok"
        assert rows[2]["status"] == "failed" and "agent exited mid-job" in rows[2]["reason"]
        assert rows[4]["status"] == "failed" and "lost the board" in rows[4]["reason"]
        assert "nothing listens for SSH" in rows[4]["reason"]
        board.restart()
        assert main(["bench", "--resume", str(run_dir), "--quiet"]) == 0
        assert {r["status"] for r in rows_of_all(run_dir)} == {"ok"}
    finally:
        board.stop()


def rows_of_all(run_dir: Path) -> list[dict]:
    """The last row of every job (a resumed job's new row replaces its failed one)."""
    with open(run_dir / "results.csv", newline="") as fh:
        return list({r["job_id"]: r for r in csv.DictReader(fh)}.values())
