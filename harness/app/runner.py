"""A benchmark run: resolve the request, build artifacts, run every job on the target, store each row
as soon as it exists. Ctrl-C or a crash keeps every finished row; `--resume` runs only what is missing.

A target with [farm] runs the jobs across the boards a labgrid coordinator lends the run (targets.farm),
one job at a time per board, every row naming its board; the places are released however the run ends."""

from __future__ import annotations

import contextlib
import platform
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from harness.app.progress import QuietReporter
from harness.app.resume_check import check_unchanged
from harness.app.rows import add_energy, job_row, measured_row
from harness.app.split_runs import (
    PlannedLink,
    SplitJobs,
    check_server,
    has_split_variants,
    plan_split,
    split_analysis,
    split_columns,
)
from harness.app.suite import SuiteSpec, find_suite, suite_files, with_stopping
from harness.core.baselines import BaselineAccuracies
from harness.core.concurrent_runs import CONCURRENT_WARNING, MeasuringRuns
from harness.core.environment import host_environment, utc_now
from harness.core.errors import ConfigError, EdgebenchError, JobError, SkipJob, suggest, unknown_name
from harness.core.hashing import content_hash
from harness.core.jobs import MAX_BATCH_SIZE, MAX_THREADS, Artifact, Job, expand
from harness.core.rundir import RunStore, replica_job_id
from harness.core.stats import ValidityRules
from power.monitor import PowerMonitor, windows_for_meter
from power.registry import parse_cli as parse_power_cli
from power.registry import power_spec
from power.spec import PowerSpec
from targets.backends import BACKENDS
from targets.base import Session
from targets.farm.board import FarmBoard, board_lost
from targets.farm.farm import BoardsLost, Farm, terminate_as_interrupt
from targets.farm.queue import QueuedJob, on_board
from targets.registry import load_adapter
from targets.spec import TargetSpec, check_backend_options, find_target
from workloads.build_pool import BuildPhase, build_phase
from workloads.models import check_params
from workloads.scoring import ScoringSpec
from workloads.spec import WorkloadSpec, find_workload, user_model_workload
from workloads.user_models import fingerprint


@dataclass
class BenchRequest:
    """What the user asked for; stored in run.json so that --resume can ask again."""

    target: str = "cpu"
    suite: str = "quick"
    workloads: list[str] = field(default_factory=list)   # overrides the suite's list
    model: str | None = None                              # a user's model file ...
    data: str | None = None                               # ... and its evaluation .npz
    output: str | None = None                             # ... the output scored
    metric: str | None = None                             # ... how (workloads/scoring.py)
    threshold: float | None = None                        # ... binary: the positive threshold
    calibration: str | None = None                        # ... a calibration .npz (static int8 variants)
    backends: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)      # "1", "all", ...
    batch_sizes: list[int] = field(default_factory=list)
    power: str | None = None                              # overrides the target's [power]
    link: str | None = None                               # "none": split jobs over loopback, unshaped
    server_address: str | None = None                     # split jobs: how the device reaches the server
    stopping: str | None = None                           # overrides the suite's [protocol] stopping


@dataclass
class ResolvedRun:
    request: BenchRequest
    target: TargetSpec
    suite: SuiteSpec
    workloads: list[WorkloadSpec]
    backends: list[str]
    power: PowerSpec         # what the run measures with: --power, or else the target's [power]
    target_power: PowerSpec  # the target file's [power], resolved (for the snapshot)
    notes: list[str] = field(default_factory=list)  # said once before the run (e.g. backends left out)

    def snapshot(self) -> dict:
        """Everything that determines the jobs and how they are measured (for run.json and resume)."""
        target = asdict(self.target)
        target.pop("power_table")  # the snapshot keeps the keys it had: the target's power as resolved
        if target.get("farm") is None:
            target.pop("farm", None)  # a run started before farms existed resumes
        return {
            "target": {**target, "file": str(self.target.file), "power": power_config(self.target_power)},
            "suite": {**asdict(self.suite), "protocol": self.suite.protocol.snapshot(), "file": str(self.suite.file)},
            "workloads": [{"name": w.name, "file": str(w.file), "spec": asdict(w)} for w in self.workloads],
            "backends": self.backends,
            "power": power_config(self.power),
            # a user's model and data are files outside the project: their content, so a resume sees a change
            **({"user_files": user_files} if (user_files := self.user_files()) else {}),
        }

    def user_files(self) -> dict:
        files = {}
        for w in self.workloads:
            if w.model.path is not None:
                paths = {"model": w.model.path, "data": w.dataset.path, "calibration": w.dataset.calibration}
                files[w.name] = {role: fingerprint(Path(p)) for role, p in paths.items()
                                 if p is not None and Path(p).exists()}
        return files


def power_config(power: PowerSpec) -> dict:
    """[power] as configured (source_ref and on_device are the registry's reading of `source`, left out so
    that a run started before they existed resumes)."""
    return {k: v for k, v in asdict(power).items() if k not in ("source_ref", "on_device")}


def resolve(request: BenchRequest) -> ResolvedRun:
    target = find_target(request.target)
    target_power = power_spec(target.power_table, f"{target.file}: [power]")  # checked even with --power
    suite = find_suite(request.suite)
    if bool(request.model) != bool(request.data):
        raise ConfigError("--model and --data go together: a model file and its evaluation .npz "
                          "(one array per model input, and y)")
    given = [flag for flag, value in (("--output", request.output), ("--metric", request.metric),
                                      ("--threshold", request.threshold), ("--calibration", request.calibration))
             if value is not None]
    if given and not request.model:
        raise ConfigError(f"{', '.join(given)}: these describe a model given with --model; a workload file says "
                          f"the same in [model] (output, metric, threshold) and [dataset] calibration")
    if request.model:
        scoring = ScoringSpec(metric=request.metric, output=request.output, threshold=request.threshold)
        workloads = [user_model_workload(Path(request.model), Path(request.data), scoring,
                                         Path(request.calibration) if request.calibration else None)]
    else:
        names = request.workloads or list(suite.workloads)
        where = "--workload" if request.workloads else str(suite.file)
        workloads = [find_workload(name, where) for name in names]
    for workload in workloads:
        if workload.model.arch:
            check_params(workload.model.arch, workload.model.params, str(workload.file))
    check_variant_suites(workloads, suite.name)
    notes = []
    if request.backends:
        backends = list(dict.fromkeys(request.backends))
        for backend in backends:
            if backend not in target.backends:
                what = ("is not listed by target" if backend in BACKENDS
                        else f"is no backend{suggest(backend, BACKENDS)}; target")
                raise ConfigError(f"--backend {backend}: '{backend}' {what} '{target.name}' ({target.file}), "
                                  f"which lists: {', '.join(target.backends)}")
    elif suite.backends:
        # a suite names backends for every target; this one runs those it has (backend names were
        # checked against every installed backend when the suite was read)
        backends = [b for b in suite.backends if b in target.backends]
        left_out = [b for b in suite.backends if b not in target.backends]
        if not backends:
            raise ConfigError(f"{suite.file}: key 'matrix.backends' = {list(suite.backends)}: target "
                              f"'{target.name}' ({target.file}) offers none of them; it offers "
                              f"{', '.join(target.backends)} (or choose them with --backend)")
        if left_out:
            notes.append(f"suite '{suite.name}' also asks for {', '.join(left_out)}, which target "
                         f"'{target.name}' does not list ({target.file}); running {', '.join(backends)}")
    else:
        backends = list(target.backends)
    check_threads(request.threads, "--threads")
    check_batch_sizes(request.batch_sizes)
    power = parse_power_cli(request.power) if request.power else target_power
    suite, stopping_notes = with_stopping(suite, request.stopping, power.source != "none")
    notes += stopping_notes
    return ResolvedRun(request, target, suite, workloads, backends, power, target_power, notes)


def check_variant_suites(workloads: list[WorkloadSpec], current: str) -> None:
    """A variant's `suites` must name suites that exist (workloads/suites/, or the suite being run): a
    misspelt one would never run, silently."""
    known = [*suite_files(), current]
    for workload in workloads:
        for i, variant in enumerate(workload.variants):
            for name in variant.suites or ():
                if name not in known:
                    raise unknown_name("suite", name, known,
                                       f"{workload.file}: key 'variants[{i}].suites' (variant "
                                       f"'{variant.name}')")


def check_threads(values, where: str) -> None:
    for value in values:
        text = str(value).strip()
        if text != "all" and not (text.isdigit() and 1 <= int(text) <= MAX_THREADS):
            raise ConfigError(f"{where} {value}: not a thread count; accepted: integers from 1 to "
                              f"{MAX_THREADS} or 'all'")


def check_batch_sizes(values) -> None:
    for value in values:
        text = str(value).strip()
        if isinstance(value, bool) or not (text.isdigit() and 1 <= int(text) <= MAX_BATCH_SIZE):
            raise ConfigError(f"--batch-size {value}: not a batch size; accepted: integers from 1 to "
                              f"{MAX_BATCH_SIZE}")


def resolve_threads(values, usable_cores: int) -> list[int]:
    check_threads(values, "thread count")
    threads = []
    for value in values:
        n = usable_cores if str(value).strip() == "all" else int(str(value).strip())
        if n not in threads:
            threads.append(n)
    return threads


def plan_jobs(run: ResolvedRun, facts: dict, links: list[PlannedLink] = ()) -> list[Job]:
    threads = resolve_threads(run.request.threads or run.suite.threads,
                              facts.get("cpu_count_usable") or facts.get("cpu_count") or 1)
    batches = [int(b) for b in run.request.batch_sizes or run.suite.batch_sizes]
    return expand(run.workloads, run.target.name, run.backends, threads, batches, run.suite.name,
                  [link.name for link in links])


def wanted_artifacts(run: ResolvedRun, pending: list[Job]) -> list[tuple[WorkloadSpec, set[str]]]:
    """What the build phase makes for the pending jobs: each workload with the variants they run."""
    needed = {(j.workload, j.variant) for j in pending}
    return [(w, names) for w in run.workloads if (names := {v for n, v in needed if n == w.name})]


def open_server(run: ResolvedRun) -> tuple[Session, TargetSpec]:
    """The session that runs split jobs' tails ([split] server), checked before anything is built."""
    where = f"{run.suite.file}: key 'split.server'"
    spec = find_target(run.suite.split.server, where)
    check_server(run, list(spec.backends), f"{where} = {run.suite.split.server!r} ({spec.file})")
    return load_adapter(spec.adapter, str(spec.file))(spec).open(), spec


def new_run_id(runs_dir: Path, run: ResolvedRun) -> str:
    """A new run id, its (empty) directory made here: mkdir is atomic, so two runs started in the same
    second never share one."""
    stem = f"{datetime.now():%Y%m%d-%H%M%S}-{run.target.name}-{run.suite.name}"
    run_id, n = stem, 1
    while True:
        try:
            (runs_dir / run_id).mkdir(parents=True)
            return run_id
        except FileExistsError:
            n += 1
            run_id = f"{stem}-{n}"


class Interrupted(EdgebenchError):
    exit_code = 130


class PowerFault(EdgebenchError):
    """Strict mode: the meter failed during a job; finished rows are kept, the run can be resumed."""

    exit_code = 3


class Bench:
    def __init__(self, reporter: QuietReporter):
        self.reporter = reporter

    def start(self, request: BenchRequest, runs_dir: Path) -> RunStore:
        run = resolve(request)
        RunStore.check_writable(runs_dir)
        return self._run(run, None, runs_dir)

    def resume(self, run_dir: Path) -> RunStore:
        store = RunStore.open(run_dir)
        for note in filter(None, [store.migration_note, *store.notes]):
            self.reporter.note(note)
        info = store.run_info()
        run = resolve(BenchRequest(**info["request"]))
        check_unchanged(run_dir, run, info["config_hash"])
        return self._run(run, store, run_dir.parent)

    def _run(self, run: ResolvedRun, store: RunStore | None, runs_dir: Path) -> RunStore:
        for note in run.notes:
            self.reporter.note(note)
        # a farm's places must be released when a CI runner cancels the run too
        with terminate_as_interrupt() if run.target.farm is not None else contextlib.nullcontext():
            return self._run_on_target(run, store, runs_dir)

    def _open_farm(self, run: ResolvedRun) -> Farm:
        """The farm's first board held and opened (labgrid, the coordinator, the tags, the reservation and
        SSH each fail here, before anything is built); its places are released in _run_on_target's finally."""
        if has_split_variants(run.workloads, run.suite.name):
            raise ConfigError(f"{run.target.file}: a [farm] target runs jobs whole on its boards; split jobs "
                              f"(suite '{run.suite.name}') need a single board target")
        adapter = load_adapter(run.target.adapter, str(run.target.file))

        def prepare(session: Session) -> None:
            if run.power.source != "none":
                session.record_power_on_device(run.power)

        # the boards' threads and this one share the progress display and the baselines: one at a time
        self._farm_lock = threading.RLock()
        shared = Serialized(self.reporter, self._farm_lock)
        farm = Farm(run.target, adapter, prepare, shared.status, shared.note)
        try:
            farm.open()
        except BaseException:
            self._close_farm(farm)
            raise
        return farm

    def _close_farm(self, farm: Farm) -> None:
        for problem in farm.close():
            self.reporter.note(f"farm: {problem} (release it with labgrid-client -p <place> release)")

    def _run_on_target(self, run: ResolvedRun, store: RunStore | None, runs_dir: Path) -> RunStore:
        farm = self._open_farm(run) if run.target.farm is not None else None
        try:
            session = farm.live[0].session if farm else \
                load_adapter(run.target.adapter, str(run.target.file))(run.target).open()
        except BaseException:
            if farm is not None:
                self._close_farm(farm)
            raise
        power = server = None
        try:
            # board-side sources (tegrastats, INA3221, ...) run in the agent; the rest here, on the host
            on_device = run.power.source != "none" and session.record_power_on_device(run.power)
            if run.power.source != "none" and not on_device:
                if farm is not None and not run.target.farm.meter_place:
                    raise ConfigError(f"{run.target.file}: [power] source = {run.power.source!r} is read on this "
                                      f"host and measures one board: set [farm] meter_place to the place it is "
                                      f"wired to (its jobs get energy columns, the other boards' do not)")
                power = PowerMonitor(run.power)
                power.check()  # a wrong port fails here, before anything is built or measured
            facts = session.info()
            # runs measuring on the machine the device is (the cpu target, or a board that is this host)
            same_machine = facts.get("hostname") == platform.node()
            server_spec = None
            if has_split_variants(run.workloads, run.suite.name):
                server, server_spec = open_server(run)
            setup = plan_split(run, same_machine,
                               server is not None and server.info().get("hostname") == platform.node())
            for note in setup.notes:
                self.reporter.note(note)
            jobs = plan_jobs(run, facts, setup.links)
            finished = store.finished_job_ids() if store else set()
            pending = [j for j in jobs if j.job_id not in finished]
            if farm is not None and run.target.farm.replicate:
                pending = jobs  # which boards still need a job is known as each board joins
            if store is not None:  # resuming: the build's lines go to the run's log as they come
                self.reporter.keep_log(store.log_path)
            run_facts = facts if farm is None else {
                **facts, "farm": {"coordinator": run.target.farm.coordinator, "tags": run.target.farm.tags,
                                  "replicate": run.target.farm.replicate}}
            built = BuildPhase(on_ready=self.reporter.build_finished)
            try:
                artifacts, analyses = self._build(run, pending, built)
            except BaseException as exc:
                if store is None and isinstance(exc, ConfigError):
                    raise  # bad input: no run directory (the fixed files start a new run, not this one)
                store = store or self._create_store(run, runs_dir, run_facts)
                error = self._build_stopped(store, built, exc)
                if error is exc:
                    raise
                raise error from None
            if store is None:
                store = self._create_store(run, runs_dir, run_facts)
            try:
                self.reporter.keep_log(store.log_path)
                info = store.run_info()
                if built.times:  # one entry per (resumed) session that needed artifacts
                    info.setdefault("build_times", []).append(built.describe())
                if analyses:
                    info.setdefault("split_analysis", {}).update(analyses)
                store.write_run_info(info)
                self.reporter.note(f"run {store.dir}: {len(pending)} of {len(jobs)} jobs to run")
                if power is not None:
                    power.start(self.reporter.status)
                    info = store.run_info()
                    info.setdefault("power", []).append(power.describe())  # one entry per (resumed) session
                    store.write_run_info(info)
                split = SplitJobs(session, server, setup, server_spec.backend_options if server_spec else {})
                with MeasuringRuns(store.dir) as neighbours, split:
                    if farm is not None:
                        self._measure_farm(run, farm, store, jobs, pending, artifacts, power,
                                           neighbours if same_machine else None, split)
                    else:
                        self._measure(run, session, store, pending, artifacts, power,
                                      neighbours if same_machine else None, split, facts)
            except KeyboardInterrupt:
                raise Interrupted(f"interrupted: every finished job is kept in {store.results_csv}; "
                                  f"resume with: edgebench bench --resume {store.dir}") from None
            info = store.run_info()
            info["finished_at"] = utc_now()
            store.write_run_info(info)
        finally:
            if farm is not None:
                self._close_farm(farm)
            else:
                session.close()
            if server is not None:
                server.close()
            if power is not None:
                power.stop()
        return store

    @staticmethod
    def _create_store(run: ResolvedRun, runs_dir: Path, facts: dict) -> RunStore:
        run_id = new_run_id(runs_dir, run)
        return RunStore.create(runs_dir, run_id, {
            "run_id": run_id, "started_at": utc_now(), "request": asdict(run.request),
            "config_hash": content_hash(run.snapshot()), "config": run.snapshot(),
            "measurement_protocol": run.suite.protocol.to_dict(), "validity_rules": asdict(ValidityRules()),
            "host": host_environment(), "device": facts,
            "seeds": {w.name: {"dataset": w.dataset.seed, "training": w.training.seed}
                      for w in run.workloads},
        })

    def _build_stopped(self, store: RunStore, phase: BuildPhase, exc: BaseException) -> BaseException:
        """A build that failed or was interrupted, kept in the run directory: the lines said so far in its
        log, what was ready (and when) in run.json's build_times, and why it stopped. Returns the error to
        raise (Ctrl-C's, saying how to resume)."""
        self.reporter.keep_log(store.log_path)
        if phase.times:
            store.update_run_info(lambda info: info.setdefault("build_times", []).append(phase.describe()))
        resume = f"resume with: edgebench bench --resume {store.dir}"
        if isinstance(exc, KeyboardInterrupt):
            exc = Interrupted(f"interrupted while building artifacts, before any job of this session ran; those "
                              f"ready are in the cache and {store.log_path}; {resume}")
        elif not isinstance(exc, ConfigError):  # bad input is fixed in a file, which a resume refuses
            self.reporter.note(f"run {store.dir}: the build stopped before any job of this session ran; the "
                               f"artifacts said above are ready, in the cache; {resume}")
        # the line the command prints as it ends, kept with the run
        self.reporter.log.write(f"edgebench: error: {exc}" if isinstance(exc, EdgebenchError)
                                else f"build failed: {type(exc).__name__}: {exc}")
        return exc

    def _build(self, run: ResolvedRun, pending: list[Job], phase: BuildPhase) -> tuple[dict[tuple, Artifact], dict]:
        """Every artifact a pending job needs, built (or taken from the cache) before any job runs, so a
        bad model or data file stops the run before it measures anything; for workloads with split jobs,
        where their base model can be cut (run.json's "split_analysis"). `phase` records how long each
        artifact took (run.json's "build_times", a line each), also when the build fails."""
        split_workloads = {j.workload for j in pending if j.link}
        # a line per artifact as it is ready: a build that fails or is interrupted has said those that were
        build_phase(wanted_artifacts(run, pending), self.reporter.status, phase=phase)
        if phase.times:
            where = (f"{phase.workers} worker processes" if phase.workers else
                     "in this process" if phase.built else "no worker started")
            self.reporter.note(f"build: {phase.built} artifacts built, {len(phase.times) - phase.built} cached, "
                               f"in {phase.wall_s:.1f} s ({where})")
        workloads = {w.name: w for w in run.workloads}
        for (workload, name), artifact in phase.artifacts.items():
            for backend, options in artifact.backend_options.items():
                if backend in run.backends:
                    check_backend_options(backend, options, f"{workloads[workload].file}: variant '{name}' "
                                                            f"(its backend_options for {backend})")
        analyses = {name: split_analysis(phase.bases[name].onnx_path, phase.bases[name].data.input_shape)
                    for name in sorted(split_workloads)}
        return phase.artifacts, analyses

    @staticmethod
    def _protocol(run: ResolvedRun):
        if run.power.source != "none":
            return windows_for_meter(run.suite.protocol, run.power)
        return run.suite.protocol

    def _measure(self, run: ResolvedRun, session: Session, store: RunStore, pending: list[Job],
                 artifacts: dict, power: PowerMonitor | None, neighbours: MeasuringRuns | None,
                 split: SplitJobs, facts: dict) -> None:
        measurement_protocol = self._protocol(run)
        baselines = BaselineAccuracies(store.rows())
        # a board reached over SSH is named by the hostname its agent said; the local cpu by nothing
        board = str(facts.get("hostname") or "") if facts.get("transport", {}).get("kind") == "ssh" else ""
        self.reporter.run_started(len(pending))
        # the jobs that run whole on the device first, then those of each link setting in turn
        for link in split.run_order(pending):
            with split.over(link):
                for job in (j for j in pending if j.link == link):
                    self._measure_job(run, session, store, job, artifacts[(job.workload, job.variant)],
                                      measurement_protocol, power, neighbours, split, baselines, board)

    def _measure_farm(self, run: ResolvedRun, farm: Farm, store: RunStore, jobs: list[Job], pending: list[Job],
                      artifacts: dict, power: PowerMonitor | None, neighbours: MeasuringRuns | None,
                      split: SplitJobs) -> None:
        """The jobs across the farm's boards: each board one job at a time, rows written as they finish (one
        writer at a time), the run's shared state (baselines, the progress display) touched one board at a
        time. With replicate, each board gets every job it has no finished row of."""
        measurement_protocol = self._protocol(run)
        baselines = Serialized(BaselineAccuracies(store.rows()), self._farm_lock)
        reporter = Serialized(self.reporter, self._farm_lock)
        finished = store.finished_job_ids()
        replicate, meter_place = run.target.farm.replicate, run.target.farm.meter_place
        if not replicate:
            farm.queue.add([QueuedJob(job) for job in pending])
        self.reporter.run_started(len(pending) * (len(farm.live) if replicate else 1))

        def on_join(board: FarmBoard) -> None:
            store.update_run_info(lambda info: info.setdefault("boards", {}).update({board.label: board.facts}))
            if replicate:
                farm.queue.add([QueuedJob(on_board(job, board.place), place=board.place) for job in jobs
                                if replica_job_id(job.job_id, board.place) not in finished])
            reporter.note(f"farm: board {board.label} runs jobs ({board.spec.settings['host']}, "
                          f"{board.facts.get('cpu_model') or 'cpu unknown'})")

        def measure(board: FarmBoard, item: QueuedJob, lost) -> bool:
            job = item.job
            return self._measure_job(run, board.session, store, job, artifacts[(job.workload, job.variant)],
                                     measurement_protocol, power if board.place == meter_place else None,
                                     neighbours, split, baselines, board.label, reporter, lost,
                                     lambda: farm.queue.stopped, len(farm.live))

        farm.run(measure, on_join)
        unrun = farm.unrun()
        if unrun:
            why = "; ".join(f"{place}: {reason}" for place, reason in farm.dropped.items()) or "no board answered"
            raise BoardsLost(f"{len(unrun)} jobs did not run: no board of the farm was left to run them ({why}); "
                             f"every finished job is kept in {store.results_csv}; resume with: edgebench bench "
                             f"--resume {store.dir}")

    def _measure_job(self, run: ResolvedRun, session: Session, store: RunStore, job: Job, artifact: Artifact,
                     measurement_protocol, power: PowerMonitor | None, neighbours: MeasuringRuns | None,
                     split: SplitJobs, baselines: BaselineAccuracies, board: str = "", reporter=None,
                     lost=None, stopping=lambda: False, farm_boards: int = 0) -> bool:
        """One job measured and its row appended. On a farm board (`lost` given): True when the board was
        lost under the job (`lost(reason)` says what becomes of the job, for the row)."""
        reporter = reporter or self.reporter
        row = job_row(store.dir.name, job, artifact)
        if board:
            row["board"] = board
        reporter.job_started(job)
        power_reasons = []
        others = set(neighbours.others()) if neighbours else set()
        options = run.target.backend_options.get(job.backend, {})
        # a farm's boards run at once: one progress bar per job would flicker between them
        progress = reporter.job_progress if lost is None else (lambda phase, done, total: None)
        board_was_lost = False
        m = None
        try:
            staged = session.stage(artifact)
            with (split.serving(job, artifact) if job.link else contextlib.nullcontext()) as plan:
                # a target without split jobs need not know the keyword (plug-in targets)
                m = session.run(job, staged, measurement_protocol, options, progress,
                                **({"split": plan} if plan is not None else {}))
            if job.link:
                split.complete(job, m)
            row = measured_row(row, job, m, store, artifact, baselines, measurement_protocol)
            if power is not None or m.device_energy is not None:
                power_reasons = add_energy(row, power, job, m, store)
                if job.link and split.shares_machine:
                    row["warnings"] = "; ".join(filter(None, [row.get("warnings"), (
                        "energy covers the device and the server agent: both ran on this machine, under one "
                        "power source")]))
        except SkipJob as exc:
            row.update(status="skipped", reason=str(exc))
        except (JobError, ConfigError) as exc:
            if isinstance(exc, ConfigError) and lost is None:
                raise  # a single board's SSH problem stops the run, named, as before
            row.update(status="failed", reason=str(exc))
            if lost is not None and board_lost(exc):
                if stopping():
                    return False  # the run is stopping: its boards were closed under their jobs
                board_was_lost = True
                row["reason"] = f"board {board} lost under the job: {exc}; {lost(str(exc))}"
        row.update(split_columns(artifact, m, split.planned, split.shaping, split.quota_share))
        others |= set(neighbours.others()) if neighbours else set()
        if others:
            row["warnings"] = "; ".join(filter(None, [row.get("warnings"), (
                f"{CONCURRENT_WARNING} ({', '.join(sorted(others))}): "
                f"each disturbs the other's latencies")]))
        if neighbours is not None and farm_boards > 1:
            row["warnings"] = "; ".join(filter(None, [row.get("warnings"), (
                f"{farm_boards} boards of this farm are this machine: their jobs ran at the same time and "
                f"disturb each other's latencies")]))
        if run.power.strict and power_reasons and row.get("status") == "ok":
            # stored as failed (the measured numbers kept) so that --resume measures it again
            row.update(status="failed", reason="power (strict mode): " + "; ".join(power_reasons))
        store.append(row)
        baselines.add(row)
        reporter.job_finished(job, row)
        if run.power.strict and power_reasons:
            raise PowerFault(f"power source failed during {job.job_id} (strict mode): "
                             f"{row['invalid_reasons']}; finished rows are in {store.results_csv}; "
                             f"fix the meter and resume with: edgebench bench --resume {store.dir}")
        return board_was_lost



class Serialized:
    """`target`'s methods called one at a time: a farm's boards share the run's baselines and progress
    display from threads of their own."""

    def __init__(self, target, lock):
        self._target, self._lock = target, lock

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            with self._lock:
                return value(*args, **kwargs)
        return call
