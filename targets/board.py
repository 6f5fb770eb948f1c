"""A board reached over SSH: the agent is shipped as a hash-named zipapp, artifacts and evaluation data
are staged by sha256, and every job runs in a fresh agent on the board. Timing happens there. In a split
job the board is the device (its agent connects to the server's address) or the server (its agent serves
the tail on an address of the board); either way over the real network, with no wrapper.

[target] keys (beside name, adapter, backends, job_timeout_s):
    host                      a Host alias from ~/.ssh/config, or a name / address
    user, port, identity_file optional: what ssh would otherwise take from your ssh config
    ssh_config, known_hosts   optional: another ssh_config / known_hosts file
    strict_host_key_checking  "yes" (default) | "accept-new"
    python                    the board's Python 3.8+ (default "python3"; a venv's python for runtimes)
    workdir                   where files go on the board (default "~/.cache/edgebench")
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from harness.core.config import Table
from harness.core.errors import ConfigError, JobError
from harness.core.jobs import Artifact, Job, stage_files
from harness.core.measurement import MeasurementProtocol
from targets.agent_driver import (
    AgentProcess,
    ClockMap,
    drive_job,
    job_request,
    measurement,
    serve_request,
    serving,
)
from targets.base import Measurement, ProgressCallback, Session, SplitPlan, Target
from targets.bundle import build_bundle, bundle_name
from targets.smoke import CHECKS as SMOKE_CHECKS
from targets.ssh import STRICTNESS, SshLink, SshSettings, Stager, check_settings

MIN_PYTHON = (3, 8)


def ssh_settings(table: Table) -> SshSettings:
    """The [target] keys of an SSH board, checked as the file is read (a host like "-oProxyCommand=..."
    would be an ssh option)."""
    settings = SshSettings(
        host=table.take("host"),
        user=table.take("user", str, None),
        port=table.take("port", int, None, minimum=1, maximum=65535),
        identity_file=table.take("identity_file", str, None),
        ssh_config=table.take("ssh_config", str, None),
        known_hosts=table.take("known_hosts", str, None),
        strict_host_key_checking=table.take("strict_host_key_checking", str, "yes", choices=STRICTNESS),
    )
    check_settings(settings, table.path)
    return settings


class BoardSession(Session):
    board_kind = "generic"

    def __init__(self, spec):
        self.spec = spec
        settings, workdir = self.read_settings(spec)
        self.link = SshLink(settings, str(spec.file))
        self.stager = Stager(self.link, self.python, workdir)
        self._agent_path: str | None = None
        self._facts: dict | None = None
        self._power: dict | None = None

    def record_power_on_device(self, spec) -> bool:
        """A source that reads the device runs inside the agent: its spec goes with every job, and its
        module into the agent's bundle."""
        if spec.on_device:
            self._power = asdict(spec)
            self._agent_path = None  # an agent shipped before (info()) lacks the source: ship again
            return True
        return False

    def read_settings(self, spec) -> tuple:
        """(ssh settings, workdir) from [target]'s board keys; every key read and checked, nothing opened."""
        table = Table(dict(spec.settings), spec.file, "target")
        settings = ssh_settings(table)
        self.python = table.take("python", str, "python3")
        workdir = table.take("workdir", str, "~/.cache/edgebench")
        for key, value in (("host", settings.host), ("python", self.python), ("workdir", workdir)):
            if not value.strip():
                raise ConfigError(f"{table.where(key)} = {value!r}: expected a non-empty string")
        self.configure(table)
        table.finish()  # every key read before anything is opened
        return settings, workdir

    def configure(self, table: Table) -> None:
        """Adapter-specific [target] keys."""

    def agent_prefix(self, job: Job | None) -> list[str]:
        """Words before the agent's command on the board (e.g. taskset)."""
        return []

    def _ship_agent(self) -> str:
        if self._agent_path is None:
            power_ref = self._power.get("source_ref") if self._power else None
            data = build_bundle(extra_refs=(power_ref,) if power_ref else ())
            local = Path(tempfile.gettempdir()) / bundle_name(data)
            if not local.exists():
                part = local.with_suffix(f".{os.getpid()}.part")
                part.write_bytes(data)
                os.replace(part, local)  # another run may be writing the same bundle
            remote = self.stager.ensure([local])  # one probe: what is there, free space, the Python
            facts = self.stager.last_probe
            if tuple(facts["python"][:2]) < MIN_PYTHON:
                raise ConfigError(f"{self.spec.file}: python on {self.link.settings.host} is "
                                  f"{'.'.join(map(str, facts['python']))}; the agent needs "
                                  f"{'.'.join(map(str, MIN_PYTHON))}+: set python to a newer interpreter")
            self._agent_path = remote[local]
        return self._agent_path

    def start_agent(self, job: Job | None = None) -> AgentProcess:
        """An agent on the board (over SSH), for `job` or, without one, for the session's facts."""
        argv = [*self.agent_prefix(job)]
        if job is not None and job.threads:
            argv += ["env", f"OMP_NUM_THREADS={job.threads}"]
        argv += [self.python, self._ship_agent(), "--board", self.board_kind]
        checked = [b for b in self.spec.backends if b in SMOKE_CHECKS]
        if job is None and checked:  # the session's first agent says which runtimes really work there
            argv += ["--smoke", ",".join(checked)]
        stderr = tempfile.TemporaryFile()
        return AgentProcess(self.link.popen(argv, stderr), stderr)

    def info(self) -> dict:
        if self._facts is None:
            with self.start_agent() as agent:
                self._facts = agent.client.hello()
            self._facts["transport"] = {"kind": "ssh", "host": self.link.settings.host,
                                        "agent": Path(self._agent_path).name}
        return self._facts

    def stage(self, artifact: Artifact) -> dict:
        """The artifact as the board sees it: every file path replaced by its staged copy."""
        local = [Path(p) for p in artifact.files.values()] + [Path(artifact.eval_data)]
        local += [Path(p) for s in artifact.stages for p in stage_files(s).values()]
        try:
            remote = self.stager.ensure(local, self._paired_names(artifact))
        except ConfigError as exc:
            # the board was reachable when the run started: a rebooting board or a dropped link fails
            # this job only; the next one reconnects
            raise JobError(f"lost the board: {exc}") from None
        staged = artifact.to_dict()
        staged["files"] = {k: remote[Path(v)] for k, v in artifact.files.items()}
        staged["eval_data"] = remote[Path(artifact.eval_data)]
        staged["stages"] = [dict(s, **{fmt: remote[Path(p)] for fmt, p in stage_files(s).items()})
                            for s in artifact.stages]
        return staged

    def _paired_names(self, artifact: Artifact) -> dict[Path, str]:
        """A bitfile and its .hwh must share a stem on the board (PYNQ finds one from the other); the
        stem carries both files' hashes, so a change to either is a new pair."""
        if "bitfile" not in artifact.files or "hwh" not in artifact.files:
            return {}
        bit, hwh = Path(artifact.files["bitfile"]), Path(artifact.files["hwh"])
        stem = f"{self.stager.sha256(bit)[:16]}{self.stager.sha256(hwh)[:8]}-{bit.stem}"
        return {bit: f"{stem}.bit", hwh: f"{stem}.hwh"}

    def run(self, job: Job, staged: dict, measurement_protocol: MeasurementProtocol, backend_options: dict,
            on_progress: ProgressCallback, split: SplitPlan | None = None) -> Measurement:
        """With `split`, the board is the device: its agent connects to the server address it is given."""
        request = job_request(job, staged, measurement_protocol, backend_options, power=self._power, split=split)
        with self.start_agent(job) as agent:
            agent.client.hello()
            clock = ClockMap.measure(agent.client)
            result = drive_job(agent.client, request, self.spec.job_timeout_s, on_progress)
        return measurement(result, clock)

    @contextmanager
    def serve(self, job: Job, staged: dict, backend_options: dict, bind_host: str, port: int = 0,
              delay_ms: float = 0.0, wrapper: list[str] | tuple = ()) -> Iterator[tuple[str, int]]:
        """The board as the server: an agent there listens on bind_host (an address of the board) and
        yields what it bound; the device reaches it at the board's address on the real network."""
        self.set_agent_wrapper(list(wrapper))  # a board runs no wrapper: refused with the reason
        request = serve_request(job, staged, backend_options, bind_host, port, delay_ms)
        with serving(self.start_agent(job), request, self.spec.job_timeout_s) as address:
            yield address

    def close(self) -> None:
        self.link.close()


class BoardTarget(Target):
    session_class = BoardSession

    @classmethod
    def check_settings(cls, spec) -> None:
        """[target]'s board keys, checked when the target file is read (targets.spec)."""
        probe = cls.session_class.__new__(cls.session_class)
        probe.spec = spec
        probe.read_settings(spec)

    def open(self) -> Session:
        return self.session_class(self.spec)


