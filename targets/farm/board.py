"""One acquired place as a board of the run: its NetworkService opened as the ordinary SSH board session
of the target's adapter, the hostname its agent says, its power, and how sure the run is that it lives."""

from __future__ import annotations

import time

from harness.core.errors import ConfigError, JobError
from targets.base import Session
from targets.farm.power import power_driver
from targets.spec import TargetSpec, board_spec

# How a board's loss shows in a job's error: the agent or the SSH link went away under it (a runtime's own
# failure says something else and is not the board's fault).
LOST_SIGNS = ("lost the board", "agent exited mid-job", "agent stopped", "agent silent", "agent did not say hello",
              "cannot reach")
PROBE_TIMEOUT_S = 20.0
ANSWER_POLL_S = 1.0


def board_lost(exc: Exception) -> bool:
    """True when `exc` (from staging or running a job) means the board, not the job, failed."""
    return isinstance(exc, ConfigError) or any(sign in str(exc) for sign in LOST_SIGNS)


class FarmBoard:
    def __init__(self, place: str, spec: TargetSpec, resources: dict[str, dict], power_cycle_command: str | None):
        service = resources.get("NetworkService")
        if service is None:
            raise ConfigError(f"{spec.file}: place {place} has no NetworkService resource: its exporter must "
                              f"export one (address, username, port) for edgebench to reach the board over SSH")
        self.place = place
        self.spec = board_spec(spec, service["address"], int(service.get("port") or 22), service.get("username"))
        self.power = power_driver(place, resources, power_cycle_command)
        self.session: Session | None = None
        self.facts: dict = {}
        self.failures: list[str] = []     # why the board failed, one entry per time
        self.joined = False               # its facts recorded and its worker counted by the queue

    @property
    def hostname(self) -> str:
        return str(self.facts.get("hostname") or self.spec.settings["host"])

    @property
    def label(self) -> str:
        """The `board` column: the place and the board's hostname."""
        return f"{self.place}/{self.hostname}"

    def open(self, adapter, prepare) -> dict:
        """The SSH board session (`prepare(session)` first: a board-side power source; then the agent
        shipped and the board's facts read)."""
        self.close()
        session = adapter(self.spec).open()
        try:
            prepare(session)
            self.facts = session.info()
        except BaseException:
            session.close()
            raise
        self.session = session
        return self.facts

    def answers(self) -> bool:
        """The board runs a command over SSH now."""
        link = getattr(self.session, "link", None)
        if link is None:
            return False
        try:
            return link.run(["true"], timeout_s=PROBE_TIMEOUT_S, what="a liveness probe").returncode == 0
        except (ConfigError, JobError):
            return False

    def cycle_power(self) -> None:
        self.power.cycle()

    def wait_answering(self, adapter, prepare, timeout_s: float, stopped) -> str | None:
        """Reopen the board's session until it answers (None), or the reason it did not within timeout_s."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while not stopped():
            try:
                self.open(adapter, prepare)
                return None
            except (ConfigError, JobError) as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                break
            time.sleep(ANSWER_POLL_S)
        return f"did not answer within rejoin_timeout_s = {timeout_s:g} s ({last})"

    def close(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            try:
                session.close()
            except OSError:
                pass  # its control socket went with the board
