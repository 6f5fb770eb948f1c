"""The local CPU: each job runs in a fresh agent process on this machine.

A fresh process per job gives each job its own peak memory and keeps a crashing runtime from taking the
run down; it is the same agent and wire contract a board runs over SSH. For split computing it is the
device, the server or both: each agent can run inside a wrapper (a network namespace, a CPU quota's cgroup).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.core.environment import PROJECT_ROOT
from harness.core.errors import ConfigError, JobError, suggest
from harness.core.jobs import Job
from harness.core.measurement import MeasurementProtocol
from targets.agent_driver import AgentProcess, drive_job, job_request, measurement, serve_request, serving
from targets.base import Measurement, ProgressCallback, Session, SplitPlan, Target

COMMON_KEYS = ("name", "adapter", "description", "backends", "job_timeout_s")


class LocalAgent(AgentProcess):
    """An agent process on this machine."""

    def __init__(self, threads: int | None = None, wrapper: list[str] | tuple = ()):
        """`wrapper`: argv words the agent's command runs under (e.g. ip netns exec NS), as a list: no shell."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)  # keep OpenMP pools at the job's thread count
        argv = [*wrapper, sys.executable, "-m", "targets.agent"]
        stderr = tempfile.TemporaryFile()
        try:
            # A new session: Ctrl-C reaches the host only, which then stops the agent in order.
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env,
                                       start_new_session=True)
        except OSError as exc:  # a wrapper's program missing
            stderr.close()
            raise JobError(f"cannot start the agent as {' '.join(argv)!r}: {exc}") from None
        super().__init__(process, stderr)


class CpuSession(Session):
    def __init__(self, spec):
        self.spec = spec
        self._facts = None
        self._wrapper: list[str] = []

    def set_agent_wrapper(self, argv: list[str]) -> None:
        self._wrapper = list(argv)

    def info(self) -> dict:
        if self._facts is None:
            with LocalAgent() as agent:
                self._facts = agent.client.hello()
        return self._facts

    def run(self, job: Job, staged: dict, measurement_protocol: MeasurementProtocol, backend_options: dict,
            on_progress: ProgressCallback, split: SplitPlan | None = None) -> Measurement:
        with tempfile.TemporaryDirectory(prefix="edgebench-") as tmp, LocalAgent(job.threads, self._wrapper) as agent:
            agent.client.hello()
            request = job_request(job, staged, measurement_protocol, backend_options,
                                  str(Path(tmp) / "latency_ns.npy"), split=split)
            return measurement(drive_job(agent.client, request, self.spec.job_timeout_s, on_progress))

    @contextmanager
    def serve(self, job: Job, staged: dict, backend_options: dict, bind_host: str, port: int = 0,
              delay_ms: float = 0.0, wrapper: list[str] | tuple = ()) -> Iterator[tuple[str, int]]:
        request = serve_request(job, staged, backend_options, bind_host, port, delay_ms)
        with serving(LocalAgent(job.threads, wrapper), request, self.spec.job_timeout_s) as address:
            yield address


class CpuTarget(Target):
    @classmethod
    def check_settings(cls, spec) -> None:
        """The local CPU takes no keys in [target] beyond the common ones."""
        if spec.settings:
            key = next(iter(spec.settings))
            raise ConfigError(f"{spec.file}: key 'target.{key}' is not a known key{suggest(key, COMMON_KEYS)}; "
                              f"known: {', '.join(COMMON_KEYS)}")

    def open(self) -> Session:
        return CpuSession(self.spec)
