"""The build phase of a run: every artifact its jobs need, taken from the cache in this process or, when
not cached, built in worker processes at once (each with its share of the cores: threads x workers <=
cores), and how long each took.

Base models come first (a workload's variants start from its trained model); a workload's variants are
handed out as soon as its base model exists, those that train first (the longest builds). Variants that a
family expands from one entry (early exits: one per threshold) share one built artifact and go to one
worker together, so that no worker waits on another's lock.

Each artifact is said (`on_ready`) as soon as it is ready, so a failed or interrupted build has said those
that finished. A worker that dies (the OOM killer) fails the phase with an error naming what was being
built (concurrent.futures marks its pool broken; multiprocessing.Pool would lose the task and wait
forever); a failure or Ctrl-C ends every worker at once, without waiting for their builds.

`cache_states` says what a build phase would take from the cache and what it would build, by the same
look-ups into the cache (nothing built or written): for a dry run.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from harness.core.errors import ConfigError, EdgebenchError
from workloads.build import BaseModel, Progress, build_base, build_variants
from workloads.cache import NotCached, built_entries, cached_only
from workloads.spec import TRAINING_FAMILIES, WorkloadSpec
from workloads.training import set_training_threads, usable_cores
from workloads.variants import FAMILIES, single

# Each worker holds PyTorch, TensorFlow's converter and a dataset (about 1 GiB): more workers than this
# take memory a small board-side host may not have, for little gain (a workload has a handful of variants).
MAX_BUILD_WORKERS = 4
WORKERS_ENV = "EDGEBENCH_BUILD_WORKERS"  # 1: build in this process, one artifact after another
POLL_S = 0.1  # how often the waiting process shows the workers' progress
EXIT_WAIT_S = 30.0  # how long finished workers may take to exit (their libraries clean up) before they are ended
KILL_WAIT_S = 2.0   # how long ended workers (SIGTERM) may take before SIGKILL
# what a build phase would do with an artifact (cache_states)
CACHED, TO_BUILD, UNKNOWN = "cached", "to build", "unknown"

T = TypeVar("T")


class BuildWorkerDied(EdgebenchError):
    """A build worker process died (killed: the OOM killer, a signal) while it built an artifact."""

    exit_code = 1


@dataclass(frozen=True)
class BuildTime:
    """How long one artifact took in the build phase, and whether it was built or found in the cache."""

    workload: str
    variant: str | None  # None: the workload's base model (data split, training, ONNX export)
    seconds: float
    cached: bool

    @property
    def what(self) -> str:
        return artifact_name(self.workload, self.variant)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BuildPhase:
    bases: dict[str, BaseModel] = field(default_factory=dict)
    artifacts: dict[tuple[str, str], object] = field(default_factory=dict)  # (workload, variant) -> Artifact
    times: list[BuildTime] = field(default_factory=list)
    workers: int = 0  # worker processes started (0: none; what was not cached was built in this process)
    wall_s: float = 0.0
    on_ready: Callable[[BuildTime], None] = field(default=lambda record: None, repr=False, compare=False)

    def ready(self, records: list[BuildTime]) -> None:
        """Artifacts ready (built or from the cache): kept and said at once."""
        for record in records:
            self.times.append(record)
            self.on_ready(record)

    @property
    def built(self) -> int:
        return sum(not t.cached for t in self.times)

    def describe(self) -> dict:
        """run.json's record of the phase."""
        return {"wall_s": round(self.wall_s, 3), "workers": self.workers,
                "built_s": round(sum(t.seconds for t in self.times if not t.cached), 3),
                "artifacts": [{**t.to_dict(), "seconds": round(t.seconds, 3)} for t in self.times]}


def artifact_name(workload: str, variant: str | None) -> str:
    return f"{workload}/{variant}" if variant is not None else f"{workload} base model"


def from_cache(build: Callable[..., T], *args: Any, write_cheap: bool = True) -> T | None:
    """`build(*args)` when everything it needs is in the cache, else None: nothing is built (and nothing at
    all written with write_cheap=False)."""
    try:
        with cached_only(write_cheap):
            return build(*args)
    except NotCached:
        return None


def cache_states(wanted: list[tuple[WorkloadSpec, set[str]]]) -> dict[tuple[str, str | None], str]:
    """What build_phase(wanted) would do with each artifact ((workload, None): its base model): CACHED or
    TO_BUILD, by the build's own look-ups (its keys computed as it computes them), nothing built or written.
    A variant's key includes its base model's file, so the variants of a base model to build are UNKNOWN.
    A build error found on the way (a variant the base model cannot make) is raised, as the build would."""
    states: dict[tuple[str, str | None], str] = {}
    for workload, names in wanted:
        base = from_cache(build_base, workload, write_cheap=False)
        states[(workload.name, None)] = TO_BUILD if base is None else CACHED
        for name in sorted(names, key=_order(workload)):
            if base is None:
                states[(workload.name, name)] = UNKNOWN
            else:
                found = from_cache(build_variants, base, {name}, write_cheap=False)
                states[(workload.name, name)] = TO_BUILD if found is None else CACHED
    return states


def build_workers() -> int:
    """Worker processes for a build: $EDGEBENCH_BUILD_WORKERS (1 to the usable cores; 1: in this process),
    else one per usable core (at most MAX_BUILD_WORKERS)."""
    cores = usable_cores()
    given = os.environ.get(WORKERS_ENV, "").strip()
    if not given:
        return max(1, min(cores, MAX_BUILD_WORKERS))
    if not given.isdigit() or not 1 <= int(given) <= cores:
        raise ConfigError(f"{WORKERS_ENV}={given!r}: not a number of build workers; accepted: an integer from 1 "
                          f"to {cores} (the usable cores; 1 builds in this process), or unset: one per core, at "
                          f"most {MAX_BUILD_WORKERS}")
    return int(given)


def variant_groups(workload: WorkloadSpec, names: set[str]) -> list[list[str]]:
    """The variants named, in build tasks: one task per variant, but one per family that expands entries
    (they share a build); those that train first."""
    groups: dict[str, list[str]] = {}
    for variant in workload.variants:
        if variant.name in names:
            shared = FAMILIES[variant.family].expand is not single
            groups.setdefault(f"family:{variant.family}" if shared else variant.name, []).append(variant.name)
    family = {v.name: v.family for v in workload.variants}
    return sorted(groups.values(), key=lambda group: family[group[0]] not in TRAINING_FAMILIES)


def build_phase(wanted: list[tuple[WorkloadSpec, set[str]]], progress: Progress = lambda msg: None,
                on_ready: Callable[[BuildTime], None] = lambda record: None,
                phase: BuildPhase | None = None) -> BuildPhase:
    """Every (workload, variant names) in `wanted` built or taken from the cache, each artifact's time in
    the order they were ready; `on_ready(record)` as each is ready (before a failure: those that were).
    `phase`: the record to fill instead of a new one (its on_ready is called), which the caller still
    holds when the build fails: what was ready, and the seconds until the failure."""
    workers = build_workers()
    phase = phase or BuildPhase(on_ready=on_ready)
    start = time.perf_counter()
    try:
        if workers == 1:
            for workload, names in wanted:
                _build_task(workload, sorted(names, key=_order(workload)), progress, phase)
        else:
            _Parallel(phase, progress, workers).run(wanted)
    finally:
        phase.wall_s = time.perf_counter() - start
    return phase


def _order(workload: WorkloadSpec):
    names = [v.name for v in workload.variants]
    return names.index


def _build_task(workload: WorkloadSpec, names: list[str] | None, progress: Progress, phase: BuildPhase) -> None:
    """The workload's base model and then the variants `names` (None: the base model only), timed each;
    the artifacts and times go into `phase` (said as each is ready)."""
    start = time.perf_counter()
    with built_entries() as built:
        base = build_base(workload, progress)
    phase.bases[workload.name] = base
    phase.ready([BuildTime(workload.name, None, time.perf_counter() - start, cached=not built)])
    for name in names or ():
        start = time.perf_counter()
        with built_entries() as built:
            artifact = build_variants(base, {name}, progress)[name]
        phase.artifacts[(workload.name, name)] = artifact
        phase.ready([BuildTime(workload.name, name, time.perf_counter() - start, cached=not built)])


# In a worker process: where progress lines go (a queue the parent reads).
_worker_progress: Progress = lambda msg: None  # noqa: E731


def _worker_init(messages, threads: int) -> None:
    import torch

    global _worker_progress
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers
    set_training_threads(threads)
    torch.set_num_threads(threads)
    _worker_progress = messages.put


def _worker_task(workload: WorkloadSpec, names: list[str] | None) -> tuple[list[BuildTime], dict]:
    phase = BuildPhase()
    _build_task(workload, names, _worker_progress, phase)
    times = phase.times
    if names is not None:  # the base model was there already: its time is the parent's
        times = times[1:]
    return times, phase.artifacts


@dataclass
class _Task:
    future: Future
    workload: WorkloadSpec
    names: set[str]              # the workload's variants this run needs
    group: list[str] | None      # what the task builds: these variants, or (None) the base model

    @property
    def what(self) -> str:
        return f"{self.workload.name}/{', '.join(self.group)}" if self.group else f"{self.workload.name} base model"


class _Parallel:
    """What is cached is taken here (cached_only); each base model or variant group that is not goes to a
    worker; a workload's variants are looked at once its base model exists."""

    worker_task = staticmethod(_worker_task)  # what a worker runs (tests give a stand-in)

    def __init__(self, phase: BuildPhase, progress: Progress, workers: int):
        self.phase, self.progress, self.workers = phase, progress, workers
        self.pool: ProcessPoolExecutor | None = None
        self.messages = None
        self.processes: dict[int, multiprocessing.Process] = {}  # every worker the pool started
        self.running: list[_Task] = []

    def run(self, wanted: list[tuple[WorkloadSpec, set[str]]]) -> None:
        try:
            for workload, names in wanted:
                self._start_workload(workload, names)
            while self.running:
                self._wait()
        except BrokenProcessPool:
            self._end_workers()
            raise self._died() from None
        except BaseException:
            self._end_workers()  # a failure or Ctrl-C: no worker outlives the phase, none is waited for
            raise
        else:
            self._end_workers(finished=True)

    def _died(self) -> BuildWorkerDied:
        building = "; ".join(task.what for task in self.running) or "an artifact"
        killed = sorted({-p.exitcode for p in self.processes.values()
                         if p.exitcode is not None and p.exitcode < 0 and -p.exitcode != signal.SIGTERM})
        how = f" (killed by {', '.join(signal.Signals(n).name for n in killed)})" if killed else ""
        return BuildWorkerDied(f"a build worker process died{how} while building {building}: perhaps the OOM "
                               f"killer ended it, {self.workers} workers building at once take more memory than "
                               f"this machine has; try {WORKERS_ENV}=1 (one artifact after another, in this "
                               f"process); what was built before is in the cache")

    def _end_workers(self, finished: bool = False) -> None:
        """The pool shut down without waiting on its builds; its workers given EXIT_WAIT_S to exit when they
        are `finished` (else none), then ended (SIGTERM, then SIGKILL)."""
        if self.pool is None:
            return
        self.processes.update(self.pool._processes or {})
        self.pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + (EXIT_WAIT_S if finished else 0.0)
        for process in self.processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
        for ending, wait in ((multiprocessing.Process.terminate, KILL_WAIT_S), (multiprocessing.Process.kill, 1.0)):
            alive = [p for p in self.processes.values() if p.is_alive()]
            for process in alive:
                ending(process)
            deadline = time.monotonic() + wait
            for process in alive:
                process.join(max(0.0, deadline - time.monotonic()))
        self.messages.close()
        # released now, not at exit, where multiprocessing would warn of a leaked semaphore
        self.pool = self.messages = None

    def _start_workload(self, workload: WorkloadSpec, names: set[str], timed: bool = True) -> None:
        """`timed`: False once a worker has built (and timed) the base model."""
        start = time.perf_counter()
        base = from_cache(build_base, workload, self.progress)
        if base is None:
            self._submit(workload, names, None)
            return
        self.phase.bases[workload.name] = base
        if timed:
            self.phase.ready([BuildTime(workload.name, None, time.perf_counter() - start, cached=True)])
        self._start_variants(workload, base, names)

    def _start_variants(self, workload: WorkloadSpec, base: BaseModel, names: set[str]) -> None:
        for group in variant_groups(workload, names):
            missing = []
            for name in group:
                start = time.perf_counter()
                artifacts = from_cache(build_variants, base, {name}, self.progress)
                if artifacts is None:
                    missing.append(name)
                    continue
                self.phase.artifacts[(workload.name, name)] = artifacts[name]
                self.phase.ready([BuildTime(workload.name, name, time.perf_counter() - start, cached=True)])
            if missing:
                self._submit(workload, names, missing)

    def _submit(self, workload: WorkloadSpec, names: set[str], group: list[str] | None) -> None:
        if self.pool is None:
            context = multiprocessing.get_context("spawn")  # no forked copy of this process' thread pools
            self.messages = context.Queue()
            threads = max(1, usable_cores() // self.workers)
            self.pool = ProcessPoolExecutor(self.workers, context, _worker_init, (self.messages, threads))
            self.phase.workers = self.workers
        future = self.pool.submit(self.worker_task, workload, group)
        self.processes.update(self.pool._processes or {})  # started as tasks come: each is ended at the end
        self.running.append(_Task(future, workload, names, group))
        self._show_running()

    def _show_running(self) -> None:
        if self.running:
            self.progress(f"building in {self.workers} processes: "
                          f"{'; '.join(task.what for task in self.running)}")

    def _wait(self) -> None:
        try:
            self.progress(self.messages.get(timeout=POLL_S))
        except queue.Empty:
            pass
        done = [t for t in self.running if t.future.done()]
        for task in sorted(done, key=lambda t: t.future.exception() is not None):  # what finished first
            times, artifacts = task.future.result()  # a worker's exception is raised here
            self.running.remove(task)
            self.phase.artifacts.update(artifacts)
            self.phase.ready(times)
            if task.group is None:  # the base model exists: its variants can start
                self._start_workload(task.workload, task.names, timed=False)
            self._show_running()
