"""The run's jobs, shared by the boards' workers: each board takes the next job it may run, one at a time.

Not a scheduler: labgrid decides which boards the run holds; this only hands the jobs out. A job whose board
was lost goes back once, to another board (to the same one only when no other is left); with `replicate`,
each board has its own copy of every job and a lost one is tried once more on its own board."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from harness.core.jobs import Job
from harness.core.rundir import replica_job_id

WAIT_S = 0.5


class ReplicaJob(Job):
    """A job measured on one board of a replicating farm: the same job (fields, key columns), its own id."""

    @property
    def job_id(self) -> str:
        return replica_job_id(Job.job_id.fget(self), self._place)


def on_board(job: Job, place: str) -> Job:
    replica = ReplicaJob(**{f: getattr(job, f) for f in job.__dataclass_fields__})
    object.__setattr__(replica, "_place", place)  # not a field: rows and the wire carry the job's fields only
    return replica


@dataclass
class QueuedJob:
    job: Job
    place: str | None = None              # replicate: the one board that runs it
    retried: bool = False
    avoid: set = field(default_factory=set)   # places it was lost on


class WorkQueue:
    def __init__(self):
        self._pending: deque[QueuedJob] = deque()
        self._busy = 0
        self._live: set[str] = set()
        self._stopped = False
        self._changed = threading.Condition()

    def add(self, items: list[QueuedJob]) -> None:
        with self._changed:
            self._pending.extend(items)
            self._changed.notify_all()

    def join(self, place: str) -> None:
        with self._changed:
            self._live.add(place)
            self._changed.notify_all()

    def leave(self, place: str) -> None:
        with self._changed:
            self._live.discard(place)
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def _first_for(self, place: str) -> QueuedJob | None:
        for item in self._pending:
            if item.place not in (None, place):
                continue
            if place in item.avoid and self._live - item.avoid:
                continue  # another board can take it
            return item
        return None

    def has_work_for(self, place: str) -> bool:
        with self._changed:
            return not self._stopped and self._first_for(place) is not None

    def take(self, place: str) -> QueuedJob | None:
        """The next job for `place`; None when there is none and none can come back (nothing in flight)."""
        with self._changed:
            while not self._stopped:
                item = self._first_for(place)
                if item is not None:
                    self._pending.remove(item)
                    self._busy += 1
                    return item
                if self._busy == 0:
                    return None
                self._changed.wait(WAIT_S)
            return None

    def done(self, item: QueuedJob) -> None:
        with self._changed:
            self._busy -= 1
            self._changed.notify_all()

    def lost(self, item: QueuedJob, place: str) -> bool:
        """`item`'s board was lost under it: back in the queue once (True), or not again (False)."""
        with self._changed:
            self._busy -= 1
            again = not item.retried and not self._stopped
            if again:
                item.retried = True
                if item.place is None:
                    item.avoid.add(place)
                self._pending.appendleft(item)
            self._changed.notify_all()
            return again

    def give_back(self, item: QueuedJob) -> None:
        """A job taken by a board that stopped before running it (the board dropped, the run stopping)."""
        with self._changed:
            self._busy -= 1
            self._pending.appendleft(item)
            self._changed.notify_all()

    def remaining(self) -> list[QueuedJob]:
        with self._changed:
            return list(self._pending)

    def finished(self) -> bool:
        with self._changed:
            return not self._pending and self._busy == 0
