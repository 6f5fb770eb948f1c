"""The host side of the agent's wire contract (targets/agent/wire.py), over any pair of pipes: a local
process (the cpu target) or `ssh board python agent.pyz` (board targets). Start an agent, read its hello,
map its clock, drive one job to its result and turn that into a Measurement; or have it serve a split
job's tail until it is closed."""

from __future__ import annotations

import base64
import os
import selectors
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import numpy as np

from harness.core.errors import JobError, SkipJob
from harness.core.jobs import Job
from harness.core.measurement import MeasurementProtocol, Window
from targets.agent.wire import (
    AGENT_TO_HOST,
    SKIP,
    ClockPing,
    ClockReply,
    Hello,
    JobFailed,
    JobRequest,
    JobResult,
    Progress,
    ServeRequest,
    Serving,
    WireError,
    decode,
    encode,
)
from targets.backends import backend_ref
from targets.base import Measurement, ProgressCallback, SplitPlan

HELLO_TIMEOUT_S = 60.0
CLOCK_PINGS = 16


class AgentClient:
    """Reads the agent's stdout unbuffered (a buffered reader would hide lines from select())."""

    def __init__(self, stdin: IO[bytes], stdout: IO[bytes], describe_exit=lambda: ""):
        self.stdin = stdin
        self.fd = stdout.fileno()
        self.describe_exit = describe_exit  # what the agent said on stderr, for error messages
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)
        self.buffer = b""

    def send(self, message) -> None:
        try:
            self.stdin.write((encode(message) + "\n").encode())
            self.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise JobError(f"agent stopped before the job was sent ({exc}){self.describe_exit()}") from None

    def _line(self, idle_timeout_s: float) -> bytes:
        deadline = time.monotonic() + idle_timeout_s
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobError(f"agent silent for {idle_timeout_s:.0f} s (job_timeout_s)")
            if not self.selector.select(timeout=remaining):
                continue
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise JobError(f"agent exited mid-job{self.describe_exit()}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def messages(self, idle_timeout_s: float) -> Iterator:
        """Messages as they arrive; a silence longer than `idle_timeout_s` is an error."""
        while True:
            line = self._line(idle_timeout_s)
            try:
                yield decode(line.decode(errors="replace"), AGENT_TO_HOST)
            except WireError as exc:
                raise JobError(f"agent: {exc}") from None

    def hello(self, timeout_s: float = HELLO_TIMEOUT_S) -> dict:
        message = next(self.messages(timeout_s))
        if not isinstance(message, Hello):
            raise JobError(f"agent did not say hello: {message}")
        return message.facts


class AgentProcess:
    """An agent running as a child process (locally, or `ssh board python agent.pyz`), stopped on exit:
    closing its stdin ends it; a stuck one is killed."""

    def __init__(self, process: subprocess.Popen, stderr):
        self.process, self.stderr = process, stderr
        self.client = AgentClient(process.stdin, process.stdout, self._describe_exit)

    def _describe_exit(self) -> str:
        code = self.process.poll()
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace").strip().splitlines()[-3:]
        said = f"; it said: {' | '.join(tail)}" if tail else ""
        return f" (exit status {code}){said}" if code is not None else said

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


class ClockMap:
    """board_ns - offset_ns = host_ns, from the ping with the shortest round trip (NTP's rule: its
    midpoint is the best estimate, half its round trip the bound on the error)."""

    def __init__(self, offset_ns: int, uncertainty_ns: int):
        self.offset_ns, self.uncertainty_ns = offset_ns, uncertainty_ns

    @classmethod
    def measure(cls, client: AgentClient, pings: int = CLOCK_PINGS) -> ClockMap:
        best = None
        for _ in range(pings):
            sent = time.monotonic_ns()
            client.send(ClockPing())
            reply = next(client.messages(HELLO_TIMEOUT_S))
            received = time.monotonic_ns()
            if not isinstance(reply, ClockReply):
                raise JobError(f"agent answered a clock ping with {reply.type!r}")
            rtt = received - sent
            if best is None or rtt < best[0]:
                best = (rtt, reply.t_ns - (sent + received) // 2)
        return cls(offset_ns=best[1], uncertainty_ns=best[0] // 2)


def job_request(job: Job, artifact: dict, measurement_protocol: MeasurementProtocol, backend_options: dict,
                latency_out: str | None = None, power: dict | None = None,
                split: SplitPlan | None = None) -> JobRequest:
    """`artifact` is the artifact as the device sees it (Artifact.to_dict(), paths there)."""
    return JobRequest(job_id=job.job_id, backend=job.backend, backend_ref=backend_ref(job.backend),
                      threads=job.threads, batch_size=job.batch_size, backend_options=backend_options,
                      artifact=artifact, measurement_protocol=measurement_protocol.to_dict(),
                      latency_out=latency_out, power=power, split=split.to_dict() if split else None)


def serve_request(job: Job, artifact: dict, backend_options: dict, bind_host: str, port: int = 0,
                  delay_ms: float = 0.0) -> ServeRequest:
    """`artifact` as the server sees it: its files["tail"] is served."""
    return ServeRequest(job_id=job.job_id, backend=job.backend, backend_ref=backend_ref(job.backend),
                        threads=job.threads, backend_options=backend_options, artifact=artifact,
                        bind_host=bind_host, port=port, delay_ms=delay_ms)


def wait_serving(client: AgentClient, request: ServeRequest, timeout_s: float) -> Serving:
    """Send a serve request and wait until the agent listens; every failure names the server agent."""
    try:
        client.send(request)
        for message in client.messages(timeout_s):
            if isinstance(message, Serving):
                return message
            if isinstance(message, JobFailed):
                raise (SkipJob if message.kind == SKIP else JobError)(f"server agent: {message.message}")
            if not isinstance(message, Progress):
                raise JobError(f"server agent sent {message.type!r} where 'serving' belongs")
    except SkipJob:
        raise
    except JobError as exc:
        said = str(exc)
        raise JobError(said if said.startswith("server agent") else f"server agent: {said}") from None
    raise JobError("server agent stopped before serving")


@contextmanager
def serving(agent: AgentProcess, request: ServeRequest, timeout_s: float) -> Iterator[tuple[str, int]]:
    """(host, port) the agent serves `request`'s tail on, until the block ends (the agent is closed then)."""
    with agent:
        try:
            agent.client.hello()
        except JobError as exc:
            raise JobError(f"server agent: {exc}") from None
        listening = wait_serving(agent.client, request, timeout_s)
        yield listening.host, listening.port


def drive_job(client: AgentClient, request: JobRequest, idle_timeout_s: float,
              on_progress: ProgressCallback) -> JobResult:
    """Send one job and follow its messages to the result."""
    client.send(request)
    for message in client.messages(idle_timeout_s):
        if isinstance(message, Progress):
            on_progress(message.phase, message.done, message.total)
        elif isinstance(message, JobResult):
            if message.latency_out != request.latency_out:
                # the host reads only the file it named: a board never points it at another host file
                raise JobError(f"agent answered with samples in {message.latency_out!r}; this host asked for "
                               f"{request.latency_out!r}")
            return message
        elif isinstance(message, JobFailed):
            raise (SkipJob if message.kind == SKIP else JobError)(message.message)
        else:
            raise JobError(f"agent sent {message.type!r} in the middle of a job")
    raise JobError("agent stopped without a result")


def result_latency_ns(result: JobResult) -> np.ndarray:
    """The raw samples, from the file the agent saved them to or inline."""
    if result.latency_out:
        return np.load(result.latency_out, allow_pickle=False)
    if result.latency_ns_b64 is None:
        raise JobError("agent sent a result without latency samples")
    return np.frombuffer(base64.b64decode(result.latency_ns_b64), dtype="<i8").astype(np.int64)


def measurement(result: JobResult, clock: ClockMap | None = None) -> Measurement:
    return Measurement(
        accuracy=result.accuracy, n_correct=result.n_correct, n_eval=result.n_eval,
        latency_ns=result_latency_ns(result), windows=[Window(*w) for w in result.windows],
        warmup_iterations=result.warmup_iterations, warmup_s=result.warmup_s,
        peak_rss_mb=result.peak_rss_mb, backend_info=result.backend_info, exit_rate=result.exit_rate,
        exit_path=result.exit_path, exit_skip_rate=result.exit_skip_rate,
        h2d_ms=result.h2d_ms, d2h_ms=result.d2h_ms, machine_load=result.machine_load,
        warnings=list(result.warnings), device_energy=result.device_energy,
        clock_offset_ns=clock.offset_ns if clock else 0, clock_uncertainty_ns=clock.uncertainty_ns if clock else 0,
        split_times=result.split_times, payload_bytes=result.payload_bytes,
        link_measured_mbit=result.link_measured_mbit, link_rtt_ms=result.link_rtt_ms,
        stopping_rule=result.stopping_rule)
