"""SSH to a board with the system's OpenSSH client: the user's ~/.ssh/config (aliases, keys, jump hosts,
agents) applies as it does on their shell, host keys are checked, and nothing prompts (BatchMode).

Remote commands are argument lists, each argument quoted for the remote shell (ssh joins its arguments
into one command line). One master connection per target is shared by every command (ControlMaster).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.errors import ConfigError, JobError
from harness.core.hashing import file_sha256

CONNECT_TIMEOUT_S = 10
STRICTNESS = ("yes", "accept-new")


@dataclass(frozen=True)
class SshSettings:
    host: str                      # a name from ~/.ssh/config, or a host name / address
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    ssh_config: str | None = None  # another ssh_config file (default: the user's)
    known_hosts: str | None = None
    strict_host_key_checking: str = "yes"
    extra_options: dict = field(default_factory=dict)   # further `-o Key=Value` options


# What OpenSSH says -> what to do about it. The first match wins.
DIAGNOSES = (
    ("REMOTE HOST IDENTIFICATION HAS CHANGED",
     "the board's host key CHANGED since it was recorded in known_hosts. If the board was reinstalled, "
     "remove the old key (ssh-keygen -R <host>) and connect once by hand to check the new one; "
     "otherwise do not connect"),
    ("Host key verification failed",
     "the board's host key is unknown: connect once by hand (ssh <host>) and check its fingerprint, or "
     "set strict_host_key_checking = \"accept-new\" in the target file"),
    ("Permission denied", "the board refused the login: check user and identity_file (or your ssh-agent) "
                          "and that your public key is in the board's ~/.ssh/authorized_keys"),
    ("Could not resolve hostname", "the host name does not resolve: check host in the target file or "
                                   "the Host entry in your ssh config"),
    ("Connection refused", "nothing listens for SSH there: is the board up and sshd running?"),
    ("timed out", "the board did not answer: is it powered, on this network, and is the address right?"),
    ("No route to host", "the board is unreachable from here: check the network"),
)


def check_settings(s: SshSettings, where: str) -> None:
    """Refuse what ssh could read as something else: a host (or user) starting with '-' would be an option
    (it stands before "--"; some OpenSSH versions accept it), whitespace or control characters would
    split or end an argument, and an option name must be a bare word. One ConfigError line each."""
    def bad(text: str) -> bool:
        return not text or text.startswith("-") or any(c.isspace() or not c.isprintable() for c in text)

    if bad(str(s.host)):
        raise ConfigError(f"{where}: key 'host' = {s.host!r}; accepted: a host name, address or ssh config "
                          f"alias, not empty, not starting with '-', without spaces or control characters")
    if s.user is not None and bad(str(s.user)):
        raise ConfigError(f"{where}: key 'user' = {s.user!r}; accepted: a user name, not starting with '-', "
                          f"without spaces or control characters")
    for key, value in s.extra_options.items():
        if not str(key).isalnum() or not str(key)[:1].isalpha():
            raise ConfigError(f"{where}: ssh option name {key!r}; accepted: an OpenSSH option name "
                              f"(letters and digits, e.g. ProxyJump)")
        if any(not c.isprintable() for c in str(value)):
            raise ConfigError(f"{where}: ssh option {key} = {value!r}; accepted: a value without control "
                              f"characters")


def remote_word(arg: str) -> str:
    if arg.startswith("~/"):
        return "~/" + shlex.quote(arg[2:])
    return shlex.quote(arg)


def diagnose(stderr: str) -> str:
    for needle, advice in DIAGNOSES:
        if needle.lower() in stderr.lower():
            return advice
    return "ssh failed"


class SshLink:
    """Commands and file transfers to one board."""

    def __init__(self, settings: SshSettings, where: str):
        check_settings(settings, where)
        self.settings = settings
        self.where = where  # the target file, named in every error
        self._control_dir = tempfile.mkdtemp(prefix="edgebench-ssh-")

    def base_command(self) -> list[str]:
        s = self.settings
        cmd = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
               "-o", f"StrictHostKeyChecking={s.strict_host_key_checking}",
               "-o", "ControlMaster=auto", "-o", f"ControlPath={self._control_dir}/%C",
               "-o", "ControlPersist=60", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if s.ssh_config:
            cmd += ["-F", s.ssh_config]
        if s.known_hosts:
            cmd += ["-o", f"UserKnownHostsFile={s.known_hosts}"]
        if s.user:
            cmd += ["-l", s.user]
        if s.port:
            cmd += ["-p", str(s.port)]
        if s.identity_file:
            cmd += ["-i", os.path.expanduser(s.identity_file), "-o", "IdentitiesOnly=yes"]
        for key, value in s.extra_options.items():
            cmd += ["-o", f"{key}={value}"]
        return cmd + [s.host, "--"]

    def command(self, argv: list[str]) -> list[str]:
        """The local argv running `argv` on the board, every remote argument quoted (a leading `~/`
        is left to the remote shell, so "~/venv/bin/python" means the board user's home)."""
        return self.base_command() + [" ".join(remote_word(a) for a in argv)]

    def run(self, argv: list[str], input_bytes: bytes | None = None, timeout_s: float = 120.0,
            what: str = "a command") -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(self.command(argv), input=input_bytes, capture_output=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise JobError(f"{self.where}: {what} on {self.settings.host} took over {timeout_s:.0f} s") from None
        if done.returncode == 255:  # ssh's own failure, not the remote command's
            raise self.connection_error(done.stderr.decode(errors="replace"))
        return done

    def connection_error(self, stderr: str) -> ConfigError:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
        return ConfigError(f"{self.where}: cannot reach {self.settings.host} over SSH: "
                           f"{diagnose(stderr)} (ssh said: {last})")

    def popen(self, argv: list[str], stderr) -> subprocess.Popen:
        # a new session: Ctrl-C reaches the host only, which then stops the remote agent in order
        return subprocess.Popen(self.command(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=stderr, start_new_session=True)

    def close(self) -> None:
        subprocess.run(self.base_command()[:-2] + ["-O", "exit", "--", self.settings.host], capture_output=True)
        for entry in Path(self._control_dir).iterdir():
            entry.unlink(missing_ok=True)
        os.rmdir(self._control_dir)


# Run by the board's Python (stdlib, 3.8 syntax). argv: workdir, JSON list of names wanted.
# Prints JSON: python version, free bytes in workdir, names already there.
PROBE = r"""
import json, os, shutil, sys
workdir = os.path.expanduser(sys.argv[1])
os.makedirs(workdir, exist_ok=True)
wanted = json.loads(sys.argv[2])
print(json.dumps({"python": list(sys.version_info[:3]), "workdir": workdir,
                  "free_bytes": shutil.disk_usage(workdir).free,
                  "present": [n for n in wanted if os.path.isfile(os.path.join(workdir, n))]}))
"""

# argv: workdir, name, sha256. Reads the file on stdin, checks its hash, then renames it into place.
RECEIVE = r"""
import hashlib, os, sys
workdir, name, want = os.path.expanduser(sys.argv[1]), sys.argv[2], sys.argv[3]
tmp = os.path.join(workdir, "." + name + ".part")
digest = hashlib.sha256()
try:
    with open(tmp, "wb") as out:
        for block in iter(lambda: sys.stdin.buffer.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
except OSError as exc:
    try:
        os.unlink(tmp)
    except OSError:
        pass
    sys.stderr.write("edgebench: cannot write %s: %s\n" % (tmp, exc))
    sys.exit(3)
if digest.hexdigest() != want:
    os.unlink(tmp)
    sys.stderr.write("edgebench: sha256 mismatch for %s\n" % name)
    sys.exit(4)
os.replace(tmp, os.path.join(workdir, name))
"""


class Stager:
    """Content-addressed files on the board: `<workdir>/<sha256[:16]>-<name>`, sent once, checked on
    arrival by sha256."""

    def __init__(self, link: SshLink, python: str, workdir: str):
        self.link, self.python, self.workdir = link, python, workdir
        self._remote_dir: str | None = None
        self._hashes: dict[str, str] = {}
        self.last_probe: dict | None = None   # the board's Python, free space and workdir, as last probed

    def probe(self, wanted: list[str]) -> dict:
        done = self.link.run([self.python, "-c", PROBE, self.workdir, json.dumps(wanted)],
                             what="the probe")
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            raise ConfigError(f"{self.link.where}: python = {self.python!r} did not run on the board "
                              f"({said[-1] if said else 'exit status ' + str(done.returncode)}); set "
                              f"python to a Python 3.8+ interpreter there")
        facts = json.loads(done.stdout.decode())
        self._remote_dir = facts["workdir"]
        self.last_probe = facts
        return facts

    def sha256(self, path: Path) -> str:
        key = str(path)
        if key not in self._hashes:
            self._hashes[key] = file_sha256(path)
        return self._hashes[key]

    def remote_name(self, path: Path) -> str:
        return f"{self.sha256(path)[:16]}-{path.name}"

    def remote_path(self, name: str) -> str:
        return f"{self._remote_dir}/{name}"

    def ensure(self, paths: list[Path], names: dict[Path, str] | None = None) -> dict[Path, str]:
        """Each local file's path on the board, sending those not there yet. `names` overrides the
        content-addressed name of some files (files that must share a stem, like a bitfile and its .hwh)."""
        names = {p: (names or {}).get(p) or self.remote_name(p) for p in paths}
        facts = self.probe(sorted(set(names.values())))
        missing = [p for p in paths if names[p] not in facts["present"]]
        needed = sum(p.stat().st_size for p in missing)
        if needed > facts["free_bytes"]:
            raise ConfigError(f"{self.link.where}: no space left on the board for {needed:,} bytes in "
                              f"{facts['workdir']} ({facts['free_bytes']:,} free); free some space or set "
                              f"workdir to a larger disk")
        for path in missing:
            self.send(path, names[path])
        return {p: self.remote_path(n) for p, n in names.items()}

    def send(self, path: Path, name: str) -> None:
        done = self.link.run([self.python, "-c", RECEIVE, self.workdir, name, self.sha256(path)],
                             input_bytes=path.read_bytes(), timeout_s=600, what=f"sending {path.name}")
        if done.returncode == 3:
            raise ConfigError(f"{self.link.where}: the board cannot store {path.name}: "
                              f"{done.stderr.decode(errors='replace').strip()} (no space left, or workdir "
                              f"not writable)")
        if done.returncode != 0:
            raise JobError(f"{self.link.where}: sending {path.name} failed: "
                           f"{done.stderr.decode(errors='replace').strip() or done.returncode}")
