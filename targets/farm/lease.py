"""The places one run holds: one reservation per board wanted (the coordinator's scheduler never gives a
place to two reservations, so two runs never share a board), each place acquired as soon as it is
allocated, and everything released and cancelled on the way out (normal end, Ctrl-C, a crash).

The run starts as soon as it holds one board; reservations still waiting keep being polled and their places
join the run while it goes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from harness.core.errors import ConfigError
from targets.farm.coordinator import Coordinator
from targets.farm.spec import FarmSpec

POLL_INTERVAL_S = 1.0


class Lease:
    def __init__(self, coordinator: Coordinator, spec: FarmSpec, where: str):
        self.coordinator, self.spec, self.where = coordinator, spec, where
        self.waiting: list[str] = []    # reservation tokens not yet given a place
        self.tokens: list[str] = []     # every reservation this run made
        self.held: list[str] = []       # places acquired, in the order they came
        self.notes: list[str] = []
        self._last_poll = 0.0
        # polled by the farm's keeper thread while the run builds and measures; stopped from the run's
        self._lock = threading.RLock()

    def matching(self) -> dict:
        places = self.coordinator.places()
        found = {n: p for n, p in places.items() if all(p.tags.get(k) == v for k, v in self.spec.tags.items())}
        if not found:
            known = "; ".join(f"{n} ({', '.join(f'{k}={v}' for k, v in sorted(p.tags.items())) or 'no tags'})"
                              for n, p in sorted(places.items())) or "none"
            raise ConfigError(f"{self.where}: key 'farm.tags': no place at {self.spec.coordinator} carries "
                              f"{self.spec.describe().split(' at ')[0]}; places there: {known} (labgrid-client "
                              f"-p <place> set-tags ...)")
        return found

    def reserve(self) -> int:
        """One reservation per board the run wants; returns how many."""
        found = self.matching()
        free = [n for n, p in found.items() if p.acquired is None and p.reservation is None]
        wanted = self.spec.boards if self.spec.boards is not None else max(1, len(free))
        if wanted > len(found):
            self.notes.append(f"{self.where}: farm.boards = {wanted} but {len(found)} places carry "
                              f"{self.spec.describe()}: using up to {len(found)}")
            wanted = len(found)
        for _ in range(wanted):
            token = self.coordinator.reserve(self.spec.tags)
            self.tokens.append(token)
            self.waiting.append(token)
        return wanted

    def poll(self, force: bool = False) -> list[str]:
        """The places acquired since the last poll (at most one poll a second unless `force`)."""
        with self._lock:
            now = time.monotonic()
            if not self.waiting or (not force and now - self._last_poll < POLL_INTERVAL_S):
                return []
            self._last_poll = now
            new = []
            for token in list(self.waiting):
                state = self.coordinator.poll(token)
                if state.state in ("expired", "invalid"):
                    self.waiting.remove(token)
                    self.notes.append(f"reservation {token} at {self.spec.coordinator} {state.state}: one board "
                                      f"fewer")
                elif state.place is not None:
                    self.waiting.remove(token)
                    try:
                        self.coordinator.acquire(state.place)
                    except ConfigError as exc:  # taken by hand under the reservation: that board is not ours
                        self.notes.append(f"place {state.place}: {exc}; one board fewer")
                        self._cancel(token)
                        continue
                    self.held.append(state.place)
                    new.append(state.place)
            return new

    def wait_first(self, status: Callable[[str], None], note: Callable[[str], None]) -> list[str]:
        """Block until the run holds a board (the places acquired), or reserve_timeout_s passes; the wait is
        said once as a line and then kept up to date on the status line."""
        deadline = time.monotonic() + self.spec.reserve_timeout_s
        said = False
        while True:
            new = self.poll(force=True)
            if new:
                return new
            taken = "; ".join(f"{n} by {p.acquired or 'a reservation'}" for n, p in sorted(self.matching().items()))
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConfigError(f"{self.where}: key 'farm.reserve_timeout_s' = {self.spec.reserve_timeout_s:g}: "
                                  f"no place carrying {self.spec.describe()} became free in time (taken: "
                                  f"{taken}); wait for them, raise the timeout, or see who holds them with "
                                  f"labgrid-client -x {self.spec.coordinator} who")
            line = f"waiting for a board ({self.spec.describe()}): taken: {taken}; {left:.0f} s left"
            (status if said else note)(line)
            said = True
            time.sleep(min(POLL_INTERVAL_S, max(left, 0.05)))

    def stop_waiting(self) -> None:
        """No more boards wanted (the jobs are all taken): the reservations still waiting are cancelled."""
        with self._lock:
            for token in list(self.waiting):
                self.waiting.remove(token)
                self._cancel(token)

    def release(self, place: str) -> None:
        if place in self.held:
            self.held.remove(place)
            self.coordinator.release(place)

    def release_all(self) -> list[str]:
        """Every place released and every reservation cancelled; what could not be (one line each)."""
        with self._lock:
            return self._release_all()

    def _release_all(self) -> list[str]:
        problems = []
        for place in list(self.held):
            try:
                self.release(place)
            except ConfigError as exc:
                problems.append(str(exc))
        self.waiting.clear()
        for token in self.tokens:
            problem = self._cancel(token)
            if problem:
                problems.append(problem)
        self.tokens.clear()
        return problems

    def _cancel(self, token: str) -> str | None:
        try:
            self.coordinator.cancel(token)
        except ConfigError as exc:
            if "does not exist" in str(exc):
                return None  # expired and removed by the coordinator: nothing to cancel
            return str(exc)
        return None
