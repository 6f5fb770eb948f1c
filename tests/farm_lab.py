"""A board farm on this machine: a real labgrid-coordinator and labgrid-exporter on 127.0.0.1, the exporter
publishing a NetworkService (and a NetworkPowerPort) per "board", each board a throwaway sshd (tests/sshd.py)
with a home of its own, as places tagged `board=loop`.

The power port is labgrid's `simplerest` model pointed at a small HTTP server here: switching a board off
kills its sshd and every process under it (its sessions and agents, as a power cut would), switching it on
starts the same sshd again."""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sshd import SSHD, Board, free_port, launch, start_board

BIN = Path(sys.executable).parent
LABGRID = {name: BIN / name for name in ("labgrid-coordinator", "labgrid-exporter", "labgrid-client")}
TAG = "loop"
START_TIMEOUT_S = 30.0


def missing() -> str | None:
    """Why the farm tests cannot run here (None: they can)."""
    try:
        import labgrid  # noqa: F401
    except ImportError:
        return "labgrid is not installed (pip install -e '.[farm]')"
    absent = [str(p) for p in LABGRID.values() if not p.exists()]
    if absent:
        return f"labgrid's commands are missing: {', '.join(absent)}"
    if not os.path.exists(SSHD):
        return "OpenSSH server not installed (apt-get install openssh-server; .ci/run does)"
    return None


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (from /proc: no psutil here)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class LabBoard:
    name: str          # the place's name and the group in the exporter's YAML
    board: Board
    home: Path
    powered: bool = True

    def power_off(self) -> None:
        """A power cut: sshd and everything under it (sessions, agents) killed at once."""
        if not self.powered:
            return
        self.powered = False
        pids = [self.board.process.pid, *descendants(self.board.process.pid)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.board.process.wait(timeout=10)

    def power_on(self) -> None:
        if not self.powered:
            self.board.process = launch(self.board.root)
            self.powered = True


@dataclass
class Lab:
    root: Path
    coordinator: str = ""
    boards: list[LabBoard] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    power_server: http.server.ThreadingHTTPServer | None = None
    power_log: list[str] = field(default_factory=list)
    known_hosts: Path | None = None
    identity: Path | None = None

    def client(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(LABGRID["labgrid-client"]), "-x", self.coordinator, *args], capture_output=True,
                              text=True, check=check, timeout=60)

    def target_toml(self, name: str = "lab", boards="all", python: str | None = None, extra: str = "",
                    farm_extra: str = "", backends=("onnxruntime",)) -> str:
        boards_value = f'"{boards}"' if isinstance(boards, str) else boards
        return f"""
[target]
name = "{name}"
adapter = "rpi"
identity_file = "{self.identity}"
known_hosts = "{self.known_hosts}"
python = "{python or sys.executable}"
backends = {list(backends)!r}
job_timeout_s = 120
{extra}
[farm]
engine = "labgrid"
coordinator = "{self.coordinator}"
tags = {{ board = "{TAG}" }}
boards = {boards_value}
reserve_timeout_s = 60
rejoin_timeout_s = 30
{farm_extra}
[power]
source = "none"
""".replace("'", '"')

    def places(self) -> dict:
        """The coordinator's places, as it says now: name -> (acquired by, reservation)."""
        from targets.farm.coordinator import Coordinator

        coordinator = Coordinator(self.coordinator, "farm_lab")
        try:
            return {n: (p.acquired, p.reservation) for n, p in coordinator.places().items()}
        finally:
            coordinator.close()

    def reservations(self) -> str:
        return self.client("reservations").stdout

    def by_name(self, name: str) -> LabBoard:
        return next(b for b in self.boards if b.name == name)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        if self.power_server is not None:
            self.power_server.shutdown()
            self.power_server.server_close()
        for board in self.boards:
            board.power_off()


def power_handler(lab: Lab):
    class Power(http.server.BaseHTTPRequestHandler):
        # simplerest: GET /<board>/<1|0> switches, GET /<board> reads ("1" = on)
        def do_GET(self):
            parts = self.path.strip("/").split("/")
            board = lab.by_name(parts[0])
            if len(parts) > 1:
                lab.power_log.append(f"{parts[0]} {'on' if parts[1] == '1' else 'off'}")
                board.power_on() if parts[1] == "1" else board.power_off()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"1" if board.powered else b"0")

        def log_message(self, *args):
            pass
    return Power


def start_lab(root: Path, n_boards: int = 3, powered: tuple[str, ...] | None = None) -> Lab:
    """A coordinator, an exporter and `n_boards` sshd boards (places board-1...); `powered` names the places
    whose exporter group has a power port (default: all). Stop it with lab.stop()."""
    lab = Lab(root)
    try:
        _start(lab, root, n_boards, powered)
    except BaseException:
        lab.stop()
        raise
    return lab


def _start(lab: Lab, root: Path, n_boards: int, powered) -> None:
    user = os.environ.get("USER") or "root"
    for i in range(1, n_boards + 1):
        name = f"board-{i}"
        board = start_board(root / name)
        home = root / name / "home"
        home.mkdir()
        # a home of its own (the agent's default workdir ~/.cache/edgebench) and its name, as a real board has
        with open(board.root / "sshd_config", "a") as fh:
            fh.write(f"SetEnv HOME={home} EDGEBENCH_BOARD={name}\n")
        board.restart()
        lab.boards.append(LabBoard(name, board, home))
    # one user key for the farm (as a lab deploys one), every board's host key known
    lab.identity = lab.boards[0].board.user_key
    for b in lab.boards:
        shutil.copy(f"{lab.identity}.pub", b.board.root / "authorized_keys")
    lab.known_hosts = root / "known_hosts"
    lab.known_hosts.write_text("".join(b.board.known_hosts.read_text() for b in lab.boards))

    lab.power_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), power_handler(lab))
    threading.Thread(target=lab.power_server.serve_forever, daemon=True).start()
    power_url = f"http://127.0.0.1:{lab.power_server.server_port}"

    port = free_port()
    lab.coordinator = f"127.0.0.1:{port}"
    state = root / "coordinator"
    state.mkdir()
    lab.processes.append(subprocess.Popen([str(LABGRID["labgrid-coordinator"]), "-l", lab.coordinator], cwd=state,
                                          stdout=open(state / "log", "wb"), stderr=subprocess.STDOUT))
    _wait_for(lambda: lab.client("places", check=False).returncode == 0, "labgrid-coordinator", state / "log")

    exporter = root / "exporter.yaml"
    groups = []
    for b in lab.boards:
        group = f"""{b.name}:
  NetworkService:
    address: 127.0.0.1
    username: {user}
    port: {b.board.port}
"""
        if powered is None or b.name in powered:
            group += f"""  NetworkPowerPort:
    model: simplerest
    host: '{power_url}/{b.name}/{{value}}'
    index: 0
"""
        groups.append(group)
    exporter.write_text("".join(groups))
    lab.processes.append(subprocess.Popen([str(LABGRID["labgrid-exporter"]), "-c", lab.coordinator, "-n", "lab",
                                           str(exporter)], cwd=root, stdout=open(root / "exporter.log", "wb"),
                                          stderr=subprocess.STDOUT))
    _wait_for(lambda: all(f"lab/{b.name}/NetworkService" in lab.client("resources").stdout for b in lab.boards),
              "labgrid-exporter", root / "exporter.log")
    for b in lab.boards:
        lab.client("-p", b.name, "create")
        lab.client("-p", b.name, "add-match", f"lab/{b.name}/*")
        lab.client("-p", b.name, "set-tags", f"board={TAG}")


def _wait_for(ready, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start: {log.read_text() if log.exists() else 'no log'}")
