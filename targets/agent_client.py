"""The host side of the agent's JSON-lines protocol, over any pair of pipes (a local process, SSH)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from collections.abc import Iterator
from typing import IO

from harness.errors import JobError
from targets.agent import PROTOCOL_VERSION


class AgentClient:
    """Reads the agent's stdout unbuffered (a buffered reader would hide lines from select())."""

    def __init__(self, stdin: IO[bytes], stdout: IO[bytes], describe_exit=lambda: ""):
        self.stdin = stdin
        self.fd = stdout.fileno()
        self.describe_exit = describe_exit  # what the agent said on stderr, for error messages
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.fd, selectors.EVENT_READ)
        self.buffer = b""

    def send(self, message: dict) -> None:
        try:
            self.stdin.write((json.dumps(message) + "\n").encode())
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

    def messages(self, idle_timeout_s: float) -> Iterator[dict]:
        """Messages as they arrive; a silence longer than `idle_timeout_s` is an error."""
        while True:
            line = self._line(idle_timeout_s)
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                raise JobError(f"agent sent a line that is not JSON: {line[:200]!r}") from None

    def hello(self, timeout_s: float) -> dict:
        message = next(self.messages(timeout_s))
        if message.get("type") != "hello":
            raise JobError(f"agent did not say hello: {message}")
        if message.get("protocol") != PROTOCOL_VERSION:
            raise JobError(f"agent speaks protocol {message.get('protocol')}, "
                           f"this host speaks {PROTOCOL_VERSION}: ship the same edgebench version")
        return message["facts"]


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
