"""A run's boards: places held through labgrid (targets.farm.lease), each opened as an SSH board session,
one worker thread per board taking jobs from the shared queue (targets.farm.queue).

A board lost under a job (agent gone, SSH gone) fails that job there (the job goes back once, to another
board), is power-cycled when its place has power control, and rejoins once it answers; a board lost twice is
dropped with its reasons. Every place is released on the way out: normal end, Ctrl-C, SIGTERM, a crash."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from harness.core.errors import ConfigError, EdgebenchError, JobError
from targets.farm.board import FarmBoard
from targets.farm.coordinator import Coordinator
from targets.farm.lease import Lease
from targets.farm.power import describe
from targets.farm.queue import QueuedJob, WorkQueue
from targets.spec import TargetSpec

SUPERVISE_S = 0.2
STOP_JOIN_S = 30.0
MAX_FAILURES = 2

# measure(board, job, lost) -> True when the board was lost under the job; `lost(reason)` is called then,
# before the job's row is written, and returns what became of the job (for its row's reason)
Measure = Callable[[FarmBoard, QueuedJob, Callable[[str], str]], bool]


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI runner's cancel, `kill`) unwinds like Ctrl-C, so the places are released."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Farm:
    def __init__(self, spec: TargetSpec, adapter, prepare: Callable = lambda session: None,
                 status: Callable[[str], None] = lambda message: None,
                 note: Callable[[str], None] = lambda message: None):
        self.spec, self.farm, self.where = spec, spec.farm, str(spec.file)
        self.adapter, self.prepare, self.status, self.note = adapter, prepare, status, note
        self.boards: dict[str, FarmBoard] = {}
        self.dropped: dict[str, str] = {}     # place -> why
        self.coordinator: Coordinator | None = None
        self.lease: Lease | None = None
        self.queue = WorkQueue()
        self._threads: dict[str, threading.Thread] = {}
        self._crash: BaseException | None = None
        # places acquired by the keeper while the run builds or measures, not yet boards of the run
        self._arrived: list[str] = []
        self._arrivals = threading.Lock()
        self._closing = threading.Event()
        self._keeper: threading.Thread | None = None

    def open(self) -> FarmBoard:
        """Connect, reserve, wait for the first board and open it: every farm error before anything is built."""
        self.coordinator = Coordinator(self.farm.coordinator, self.where)
        self.lease = Lease(self.coordinator, self.farm, self.where)
        wanted = self.lease.reserve()
        for note in self.lease.notes:
            self.note(note)
        self.lease.notes.clear()
        first = self.lease.wait_first(self.status, self.note)
        self.note(f"farm {self.farm.describe()}: {len(first)} of {wanted} boards held ({', '.join(first)})"
                  + (", waiting for the others while the run goes" if len(first) < wanted else ""))
        boards = [self._board(place) for place in first]
        boards[0].open(self.adapter, self.prepare)  # the run's facts; SSH problems stop the run here, named
        # reservations still waiting are polled from now on (one not polled for 60 s expires, an allocated
        # place not acquired is lost): building the artifacts can take minutes
        self._keeper = threading.Thread(target=self._keep, daemon=True, name="labgrid-reservations")
        self._keeper.start()
        return boards[0]

    def _keep(self) -> None:
        while not self._closing.wait(SUPERVISE_S) and self.lease.waiting:
            try:
                new = self.lease.poll()
            except ConfigError as exc:  # the coordinator went away: the boards held go on
                self.note(f"farm: {exc}; no more boards join this run")
                self.lease.waiting.clear()
                return
            with self._arrivals:
                self._arrived += new

    def _board(self, place: str) -> FarmBoard:
        board = FarmBoard(place, self.spec, self.coordinator.resources(place), self.farm.power_cycle_command)
        self.boards[place] = board
        return board

    @property
    def live(self) -> list[FarmBoard]:
        return [b for p, b in self.boards.items() if p not in self.dropped]

    def run(self, measure: Measure, on_join: Callable[[FarmBoard], None]) -> None:
        """Every queued job run on the boards, in parallel; returns when the queue is done or no board is
        left. Ctrl-C stops the workers (their boards' sessions closed) and is raised again."""
        try:
            while True:
                if self._crash is not None:
                    break
                with self._arrivals:
                    arrived, self._arrived = self._arrived, []
                for place in arrived:
                    try:
                        self._board(place)
                    except ConfigError as exc:  # an exporter without its NetworkService: not a board to use
                        self.note(f"farm: place {place} cannot join: {exc}")
                        self.lease.release(place)
                        continue
                    self.note(f"farm: place {place} joins the run")
                for note in self.lease.notes:
                    self.note(f"farm: {note}")
                self.lease.notes.clear()
                # nothing left to give a late board (a board still joining may yet bring its replicas:
                # replicate queues a board's copies of the jobs when it joins), or no board left
                if (self.queue.finished() and all(b.joined for b in self.live)) or not self.live:
                    self.lease.stop_waiting()
                for board in self.live:
                    thread = self._threads.get(board.place)
                    if (thread is None or not thread.is_alive()) and (
                            not board.joined or self.queue.has_work_for(board.place)):
                        self._start(board, measure, on_join)
                running = [t for t in self._threads.values() if t.is_alive()]
                if not running and not self.lease.waiting:
                    with self._arrivals:
                        if not self._arrived:
                            break  # done, or the jobs left have no board to run on
                (running[0].join(SUPERVISE_S) if running else threading.Event().wait(SUPERVISE_S))
        except KeyboardInterrupt:
            self.stop()
            raise
        if self._crash is not None:
            self.stop()
            raise self._crash

    def _start(self, board: FarmBoard, measure: Measure, on_join) -> None:
        thread = threading.Thread(target=self._work, args=(board, measure, on_join), daemon=True,
                                  name=f"board-{board.place}")
        self._threads[board.place] = thread
        thread.start()

    def _work(self, board: FarmBoard, measure: Measure, on_join) -> None:
        try:
            if not board.joined:
                if board.session is None:
                    try:
                        board.open(self.adapter, self.prepare)
                    except (ConfigError, JobError) as exc:
                        self._drop(board, f"could not be opened: {exc}")
                        return
                on_join(board)
                board.joined = True
                self.queue.join(board.place)
            while True:
                item = self.queue.take(board.place)
                if item is None:
                    return
                outcome: list[str] = []

                def lost(reason: str, item=item, outcome=outcome) -> str:
                    outcome.append(reason)
                    if self.queue.lost(item, board.place):
                        return "the job goes to another board" if item.place is None else \
                            "the job runs once more on this board when it is back"
                    return "not run again (its board was lost under it before)"

                if not measure(board, item, lost):
                    self.queue.done(item)
                    continue
                if not self._recover(board, outcome[0] if outcome else "lost"):
                    return
        except BaseException as exc:  # a bug or a full disk: the run stops, the places are still released
            self._crash = exc
            self.queue.stop()

    def _recover(self, board: FarmBoard, reason: str) -> bool:
        """After a loss: power-cycle when possible, wait for SSH; False when the board is dropped."""
        board.failures.append(reason)
        if len(board.failures) >= MAX_FAILURES:
            self._drop(board, "; ".join(board.failures))
            return False
        if self.queue.stopped:
            return False
        if board.power is not None:
            self.note(f"farm: board {board.label} lost ({reason}); power-cycling it ({describe(board.power)})")
            try:
                board.cycle_power()
            except Exception as exc:  # labgrid's drivers raise their own errors (HTTP, subprocess)
                self._drop(board, f"{reason}; power cycle failed: {exc}")
                return False
        else:
            self.note(f"farm: board {board.label} lost ({reason}); no power control: waiting for it to answer")
        problem = board.wait_answering(self.adapter, self.prepare, self.farm.rejoin_timeout_s,
                                       lambda: self.queue.stopped)
        if problem is not None:
            self._drop(board, f"{reason}; {problem}")
            return False
        self.note(f"farm: board {board.label} answers again and rejoins the run")
        return True

    def _drop(self, board: FarmBoard, reason: str) -> None:
        self.dropped[board.place] = reason
        self.queue.leave(board.place)
        board.close()
        self.note(f"farm: board {board.label} dropped: {reason}")

    def unrun(self) -> list[QueuedJob]:
        return self.queue.remaining()

    def stop(self) -> None:
        """Stop handing out jobs and end the jobs running (their boards' sessions closed under them)."""
        self.queue.stop()
        for board in self.boards.values():
            board.close()
        for thread in self._threads.values():
            thread.join(STOP_JOIN_S)

    def close(self) -> list[str]:
        """Boards closed, places released, reservations cancelled: what could not be (one line each)."""
        problems = []
        self._closing.set()
        self.queue.stop()
        if self._keeper is not None:
            self._keeper.join(10)
        for board in self.boards.values():
            board.close()
        if self.lease is not None:
            problems += self.lease.release_all()
        if self.coordinator is not None:
            self.coordinator.close()
        return problems


class BoardsLost(EdgebenchError):
    """Jobs left unrun: every board the run held was dropped (like failed jobs, --resume runs them)."""

    exit_code = 1
