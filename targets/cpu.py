"""The local CPU: each job runs in a fresh agent process on this machine.

A fresh process per job gives each job its own peak memory and keeps a crashing runtime from taking the
run down; it is the same agent and protocol a board runs over SSH.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from harness.errors import JobError, SkipJob
from harness.plan import Artifact, Job
from harness.protocol import ProtocolSettings, Window
from targets.agent_client import AgentClient, AgentProcess
from targets.base import Measurement, ProgressCallback, Session, Target

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HELLO_TIMEOUT_S = 60.0


class LocalAgent(AgentProcess):
    """An agent process on this machine."""

    def __init__(self, threads: int | None = None):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)  # keep OpenMP pools at the job's thread count
        stderr = tempfile.TemporaryFile()
        # A new session: Ctrl-C reaches the host only, which then stops the agent in order.
        super().__init__(subprocess.Popen([sys.executable, "-m", "targets.agent"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=stderr, env=env,
                                          start_new_session=True), stderr)


def measurement_from_result(message: dict, latency: np.ndarray) -> Measurement:
    return Measurement(
        accuracy=message["accuracy"], n_correct=message["n_correct"], n_eval=message["n_eval"],
        latency_ns=latency, windows=[Window(*w) for w in message["windows"]],
        warmup_iterations=message["warmup_iterations"], warmup_s=message["warmup_s"],
        peak_rss_mb=message["peak_rss_mb"], backend_info=message["backend_info"],
        extra=message.get("extra", {}))


def drive_job(client: AgentClient, request: dict, idle_timeout_s: float,
              on_progress: ProgressCallback) -> dict:
    """Send one job and follow its messages to the result. Shared by every agent transport."""
    client.send(request)
    for message in client.messages(idle_timeout_s):
        kind = message.get("type")
        if kind == "progress":
            on_progress(message["phase"], message["done"], message["total"])
        elif kind == "result":
            return message
        elif kind == "error":
            error = SkipJob if message.get("kind") == "skip" else JobError
            raise error(message.get("message", "agent error"))
    raise JobError("agent stopped without a result")


def job_request(job: Job, artifact: Artifact, protocol: ProtocolSettings, backend_options: dict,
                latency_out: str) -> dict:
    return {"type": "job", "job_id": job.job_id, "backend": job.backend, "threads": job.threads,
            "batch_size": job.batch_size, "backend_options": backend_options,
            "artifact": artifact.to_dict(), "protocol": protocol.to_dict(), "latency_out": latency_out}


class CpuSession(Session):
    def __init__(self, spec):
        self.spec = spec
        self._facts = None

    def info(self) -> dict:
        if self._facts is None:
            with LocalAgent() as agent:
                self._facts = agent.client.hello(HELLO_TIMEOUT_S)
        return self._facts

    def run(self, job: Job, artifact: Artifact, protocol: ProtocolSettings, backend_options: dict,
            on_progress: ProgressCallback) -> Measurement:
        with tempfile.TemporaryDirectory(prefix="edgebench-") as tmp, LocalAgent(job.threads) as agent:
            agent.client.hello(HELLO_TIMEOUT_S)
            latency_out = str(Path(tmp) / "latency_ns.npy")
            request = job_request(job, artifact, protocol, backend_options, latency_out)
            result = drive_job(agent.client, request, self.spec.job_timeout_s, on_progress)
            latency = np.load(latency_out, allow_pickle=False)
        return measurement_from_result(result, latency)


class CpuTarget(Target):
    def open(self) -> Session:
        return CpuSession(self.spec)
