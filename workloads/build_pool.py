"""The build phase of a run: every artifact its jobs need, taken from the cache in this process or, when
not cached, built in worker processes at once (each with its share of the cores: threads x workers <=
cores), and how long each took.

Base models come first (a workload's variants start from its trained model); a workload's variants are
handed out as soon as its base model exists, those that train first (the longest builds). Variants that a
family expands from one entry (early exits: one per threshold) share one built artifact and go to one
worker together, so that no worker waits on another's lock.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from dataclasses import asdict, dataclass, field

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


@dataclass(frozen=True)
class BuildTime:
    """How long one artifact took in the build phase, and whether it was built or found in the cache."""

    workload: str
    variant: str | None  # None: the workload's base model (data split, training, ONNX export)
    seconds: float
    cached: bool

    @property
    def what(self) -> str:
        return f"{self.workload}/{self.variant}" if self.variant is not None else f"{self.workload} base model"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BuildPhase:
    bases: dict[str, BaseModel] = field(default_factory=dict)
    artifacts: dict[tuple[str, str], object] = field(default_factory=dict)  # (workload, variant) -> Artifact
    times: list[BuildTime] = field(default_factory=list)
    workers: int = 1
    wall_s: float = 0.0

    def describe(self) -> dict:
        """run.json's record of the phase."""
        return {"wall_s": round(self.wall_s, 3), "workers": self.workers,
                "built_s": round(sum(t.seconds for t in self.times if not t.cached), 3),
                "artifacts": [{**t.to_dict(), "seconds": round(t.seconds, 3)} for t in self.times]}


def build_workers() -> int:
    """Worker processes for a build: $EDGEBENCH_BUILD_WORKERS, else one per usable core (at most
    MAX_BUILD_WORKERS)."""
    given = os.environ.get(WORKERS_ENV, "").strip()
    if given.isdigit() and int(given) >= 1:
        return int(given)
    return max(1, min(usable_cores(), MAX_BUILD_WORKERS))


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


def build_phase(wanted: list[tuple[WorkloadSpec, set[str]]], progress: Progress = lambda msg: None) -> BuildPhase:
    """Every (workload, variant names) in `wanted` built or taken from the cache, each artifact's time in
    the order they were ready."""
    phase = BuildPhase(workers=build_workers())
    start = time.perf_counter()
    if phase.workers == 1:
        for workload, names in wanted:
            phase.times += _build_task(workload, sorted(names, key=_order(workload)), progress, phase)
    else:
        _Parallel(phase, progress).run(wanted)
    phase.wall_s = time.perf_counter() - start
    return phase


def _order(workload: WorkloadSpec):
    names = [v.name for v in workload.variants]
    return names.index


def _build_task(workload: WorkloadSpec, names: list[str] | None, progress: Progress,
                phase: BuildPhase | None = None) -> list[BuildTime]:
    """The workload's base model and then the variants `names` (None: the base model only), timed each;
    the artifacts go into `phase` (in a worker: returned, see _worker_task)."""
    start = time.perf_counter()
    with built_entries() as built:
        base = build_base(workload, progress)
    times = [BuildTime(workload.name, None, time.perf_counter() - start, cached=not built)]
    if phase is not None:
        phase.bases[workload.name] = base
    for name in names or ():
        start = time.perf_counter()
        with built_entries() as built:
            artifact = build_variants(base, {name}, progress)[name]
        times.append(BuildTime(workload.name, name, time.perf_counter() - start, cached=not built))
        if phase is not None:
            phase.artifacts[(workload.name, name)] = artifact
    return times


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
    times = _build_task(workload, names, _worker_progress, phase)
    if names is not None:  # the base model was there already: its time is the parent's
        times = times[1:]
    return times, phase.artifacts


@dataclass
class _Task:
    result: object               # the pool's AsyncResult
    workload: WorkloadSpec
    names: set[str]              # the workload's variants this run needs
    group: list[str] | None      # what the task builds: these variants, or (None) the base model

    @property
    def what(self) -> str:
        return f"{self.workload.name}/{', '.join(self.group)}" if self.group else f"{self.workload.name} base model"


class _Parallel:
    """What is cached is taken here (cached_only); each base model or variant group that is not goes to a
    worker; a workload's variants are looked at once its base model exists."""

    def __init__(self, phase: BuildPhase, progress: Progress):
        self.phase, self.progress = phase, progress
        self.pool = None
        self.messages = None
        self.running: list[_Task] = []

    def run(self, wanted: list[tuple[WorkloadSpec, set[str]]]) -> None:
        try:
            for workload, names in wanted:
                self._start_workload(workload, names)
            while self.running:
                self._wait()
        except BaseException:
            if self.pool is not None:
                self.pool.terminate()  # a failure or Ctrl-C: no worker outlives the phase
            raise
        finally:
            if self.pool is not None:
                self.pool.close()  # done: the workers exit as processes do (their libraries clean up)
                self.pool.join()
                self.messages.close()
                # released now, not at exit, where multiprocessing would warn of a leaked semaphore
                self.pool = self.messages = None

    def _start_workload(self, workload: WorkloadSpec, names: set[str], timed: bool = True) -> None:
        """`timed`: False once a worker has built (and timed) the base model."""
        start = time.perf_counter()
        try:
            with cached_only():
                base = build_base(workload, self.progress)
        except NotCached:
            self._submit(workload, names, None)
            return
        self.phase.bases[workload.name] = base
        if timed:
            self.phase.times.append(BuildTime(workload.name, None, time.perf_counter() - start, cached=True))
        self._start_variants(workload, base, names)

    def _start_variants(self, workload: WorkloadSpec, base: BaseModel, names: set[str]) -> None:
        for group in variant_groups(workload, names):
            missing = []
            for name in group:
                start = time.perf_counter()
                try:
                    with cached_only():
                        artifact = build_variants(base, {name}, self.progress)[name]
                except NotCached:
                    missing.append(name)
                    continue
                self.phase.artifacts[(workload.name, name)] = artifact
                self.phase.times.append(BuildTime(workload.name, name, time.perf_counter() - start, cached=True))
            if missing:
                self._submit(workload, names, missing)

    def _submit(self, workload: WorkloadSpec, names: set[str], group: list[str] | None) -> None:
        if self.pool is None:
            context = multiprocessing.get_context("spawn")  # no forked copy of this process' thread pools
            self.messages = context.Queue()
            threads = max(1, usable_cores() // self.phase.workers)
            self.pool = context.Pool(self.phase.workers, _worker_init, (self.messages, threads))
        self.running.append(_Task(self.pool.apply_async(_worker_task, (workload, group)), workload, names, group))
        self._show_running()

    def _show_running(self) -> None:
        if self.running:
            self.progress(f"building in {self.phase.workers} processes: "
                          f"{'; '.join(task.what for task in self.running)}")

    def _wait(self) -> None:
        try:
            self.progress(self.messages.get(timeout=POLL_S))
        except queue.Empty:
            pass
        for task in [t for t in self.running if t.result.ready()]:
            self.running.remove(task)
            times, artifacts = task.result.get()  # a worker's exception is raised here
            self.phase.times += times
            self.phase.artifacts.update(artifacts)
            if task.group is None:  # the base model exists: its variants can start
                self._start_workload(task.workload, task.names, timed=False)
            self._show_running()
