"""A real OpenSSH server on 127.0.0.1 with throwaway host and user keys: the "board" of the board tests.

The board's Python is this venv's (it has numpy and the runtimes); the agent reaches it only as the
shipped zipapp, like on a real board.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Board:
    alias: str
    ssh_config: Path
    known_hosts: Path
    host_key: Path
    user_key: Path
    port: int
    python: str
    process: subprocess.Popen
    root: Path

    def target_toml(self, adapter: str, backends: list[str], extra: str = "") -> str:
        return f"""
[target]
name = "{adapter}-local"
adapter = "{adapter}"
host = "{self.alias}"
ssh_config = "{self.ssh_config}"
python = "{self.python}"
workdir = "{self.root / 'board-workdir'}"
backends = {backends!r}
job_timeout_s = 120
{extra}
[power]
source = "none"
""".replace("'", '"')

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def restart(self) -> None:
        """The same sshd (port, host key) again, as after a reboot."""
        if self.process.poll() is None:
            self.stop()
        self.process = launch(self.root)


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def launch(root: Path) -> subprocess.Popen:
    """sshd on root/sshd_config, once it accepts connections."""
    port = int((root / "port").read_text())
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stdout=subprocess.DEVNULL,
                               stderr=open(root / "sshd.log", "ab"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()}")


def start_board(root: Path) -> Board:
    root.mkdir(parents=True, exist_ok=True)
    host_key, user_key = root / "host_ed25519", root / "user_ed25519"
    keygen(host_key)
    keygen(user_key)
    authorized = root / "authorized_keys"
    authorized.write_text(Path(f"{user_key}.pub").read_text())
    port = free_port()
    config = root / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {root / 'sshd.pid'}
AuthorizedKeysFile {authorized}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
MaxSessions 50
MaxStartups 50
""")
    (root / "port").write_text(str(port))
    process = launch(root)
    known_hosts = root / "known_hosts"
    host_pub = Path(f"{host_key}.pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    ssh_config = root / "ssh_config"
    ssh_config.write_text(f"""Host board
    HostName 127.0.0.1
    Port {port}
    User {os.environ.get('USER') or 'root'}
    IdentityFile {user_key}
    IdentitiesOnly yes
    UserKnownHostsFile {known_hosts}
""")
    return Board("board", ssh_config, known_hosts, host_key, user_key, port, sys.executable, process, root)
