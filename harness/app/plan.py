"""`edgebench bench --dry-run`: the jobs a run would measure and how long its measuring should take under the
stopping rule, without building, opening a target, or writing a run directory or a cache entry; and per
artifact whether the build phase would take it from the cache or build it (workloads.build_pool.cache_states:
the build's own look-ups, nothing built; a variant of a base model still to build is "unknown", its key
including the base model's file).

The estimate is the protocol's floor (warm-up, and the windows' minimum durations), raised by an earlier
run's latency of the same job where runs/ has one (a window also runs window_min_iterations iterations;
the accuracy pass is then bounded by n_eval x that latency). Building, loading models and starting agents
are not counted: the cache decides the first, and none of them depends on the stopping rule.

With --resume (cli._dry_run) the run is opened as --resume opens it (RunStore.open: a run of an older
format is migrated in place, as --resume would, and its lock is held while it is read) and refused where
--resume would refuse it (its configuration's hash, resume_check.check_unchanged); its finished jobs are
left out and earlier latencies come from the runs in its own parent directory, not --runs-dir.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.app.runner import Bench, ResolvedRun, plan_jobs, wanted_artifacts
from harness.app.split_runs import LOOPBACK, PlannedLink, has_split_variants
from harness.core.errors import ConfigError
from harness.core.jobs import Job
from harness.core.measurement import MEDIAN_CI_CONFIDENCE, MIN_SAMPLES_P99, STATISTICAL, MeasurementProtocol
from harness.core.migrations import read_run
from targets.link import LinkSetting
from workloads.build_pool import TO_BUILD, UNKNOWN, artifact_name, cache_states

# at most this many of the newest runs are read for earlier latencies (a dry run stays instant)
EARLIER_RUNS_READ = 20
# the agent's accuracy pass runs batches; a batch-1 latency times n_eval bounds it from above
ACCURACY_BOUND = "<="


@dataclass(frozen=True)
class Earlier:
    """A job's row in an earlier run: what the estimate learns from it."""

    run_id: str
    status: str
    mean_latency_s: float | None
    n_eval: int | None


@dataclass(frozen=True)
class JobEstimate:
    """Seconds of one job's measuring: warm-up, the accuracy pass (None: unknown), the timed windows
    (statistical rule: where it typically stops, on a quiet machine) and, for the statistical rule, its
    ceiling. `basis` says where the figures come from."""

    warmup_s: float
    accuracy_s: float | None
    timed_s: float
    ceiling_s: float | None
    basis: str
    skipped: bool = False

    @property
    def total_s(self) -> float:
        return self.warmup_s + (self.accuracy_s or 0.0) + self.timed_s

    @property
    def total_ceiling_s(self) -> float:
        return self.total_s - self.timed_s + (self.ceiling_s if self.ceiling_s is not None else self.timed_s)


def _window_s(minimum_s: float, min_iterations: int, latency_s: float | None) -> float:
    return max(minimum_s, min_iterations * latency_s) if latency_s else minimum_s


def timed_estimate_s(protocol: MeasurementProtocol, latency_s: float | None) -> tuple[float, float | None]:
    """The timed windows' seconds under the protocol's rule, and the statistical rule's ceiling (None for
    the fixed rule). The statistical rule stops at min_windows at the earliest, later when the windows do
    not yet hold the samples p99 needs."""
    if protocol.stopping != STATISTICAL:
        return protocol.n_windows * _window_s(protocol.window_min_s, protocol.window_min_iterations,
                                              latency_s), None
    window = _window_s(protocol.statistical_window_s, protocol.window_min_iterations, latency_s)
    typical = protocol.min_windows
    if latency_s:
        per_window = max(window / latency_s, protocol.window_min_iterations)
        typical = max(typical, math.ceil(MIN_SAMPLES_P99 / per_window))
    by_time = math.ceil(protocol.max_timed_s / window) if window > 0 else protocol.max_windows
    ceiling = min(protocol.max_windows, max(protocol.min_windows, by_time))
    return min(typical, ceiling) * window, ceiling * window


def estimate(protocol: MeasurementProtocol, job: Job, earlier: Earlier | None) -> JobEstimate:
    if earlier is not None and earlier.status == "skipped":
        return JobEstimate(0.0, 0.0, 0.0, 0.0 if protocol.stopping == STATISTICAL else None,
                           f"skipped in {earlier.run_id}", skipped=True)
    latency_s = earlier.mean_latency_s if earlier is not None else None
    warmup = _window_s(protocol.warmup_min_s, protocol.warmup_min_iterations, latency_s)
    timed, ceiling = timed_estimate_s(protocol, latency_s)
    accuracy = None
    if latency_s and earlier.n_eval:
        accuracy = earlier.n_eval * latency_s / job.batch_size
    basis = f"latency from {earlier.run_id}" if latency_s else "floor (no earlier run of this job)"
    return JobEstimate(warmup, accuracy, timed, ceiling, basis)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def earlier_rows(runs_dir: Path, target: str) -> dict[str, Earlier]:
    """The newest finished row of each job on `target` among the newest runs under runs_dir (read, never
    migrated on disk); runs that cannot be read are passed over."""
    if not runs_dir.is_dir():
        return {}
    runs = sorted((d for d in runs_dir.iterdir() if d.is_dir() and not d.is_symlink()
                   and (d / "results.csv").is_file()), key=lambda d: d.name, reverse=True)
    found: dict[str, Earlier] = {}
    for run_dir in runs[:EARLIER_RUNS_READ]:
        try:
            rows = read_run(run_dir).rows
        except (ConfigError, OSError, ValueError):
            continue
        for row in rows:
            if row["target"] != target or row["status"] not in ("ok", "skipped") or row["job_id"] in found:
                continue
            mean_ms = _number(row.get("latency_mean_ms", ""))
            n_eval = _number(row.get("n_eval", ""))
            found[row["job_id"]] = Earlier(run_dir.name, row["status"], mean_ms / 1e3 if mean_ms else None,
                                           int(n_eval) if n_eval else None)
    return found


def planned_jobs(run: ResolvedRun) -> tuple[list[Job], list[str]]:
    """The run's jobs as the runner plans them, from what is known without opening the target: this
    machine's cores for the cpu target's "all" threads, the suite's links for split jobs."""
    notes = []
    if run.target.adapter == "cpu":
        facts = {"cpu_count_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count()}
    else:
        facts = {}
        if any(str(t).strip() == "all" for t in run.request.threads or run.suite.threads):
            notes.append(f"threads \"all\" is the board's usable cores, known when the run opens {run.target.name}; "
                         f"shown as 1")
    links = []
    if has_split_variants(run.workloads, run.suite.name):
        settings = run.suite.split.links if run.request.link != "none" else ()
        links = ([PlannedLink(s.name, "", s) for s in settings]
                 or [PlannedLink(LOOPBACK, LOOPBACK, LinkSetting(None, 0.0))])
        notes.append("split jobs shown over the suite's links; whether this machine can make them (root, a "
                     "server address) is checked when the run starts")
    return plan_jobs(run, facts, links), notes


def describe_rule(protocol: MeasurementProtocol) -> str:
    warmup = f"warm-up >= {protocol.warmup_min_iterations} it and >= {protocol.warmup_min_s:g} s"
    if protocol.stopping != STATISTICAL:
        return (f"fixed rule: {warmup}; {protocol.n_windows} windows of >= {protocol.window_min_s:g} s and >= "
                f"{protocol.window_min_iterations} it")
    return (f"statistical rule: {warmup}; windows of >= {protocol.statistical_window_s:g} s and >= "
            f"{protocol.window_min_iterations} it until the median's {MEDIAN_CI_CONFIDENCE:.0%} CI is within "
            f"+-{protocol.median_ci_pct:g}% (and >= {MIN_SAMPLES_P99} samples), {protocol.min_windows} windows at "
            f"least; ceiling {protocol.max_windows} windows or {protocol.max_timed_s:g} s")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


def dry_run_text(run: ResolvedRun, runs_dir: Path, finished: set[str] = frozenset(),
                 notes: Sequence[str] = ()) -> str:
    """The plan as text: the protocol, one line per pending job with its estimate, and the totals.
    `finished`: a resumed run's jobs that will not run again; `notes`: what opening it said."""
    protocol = Bench._protocol(run)  # the runner's own windows (a power meter's lengthen them)
    jobs, plan_notes = planned_jobs(run)
    pending = [j for j in jobs if j.job_id not in finished]
    earlier = earlier_rows(runs_dir, run.target.name)
    estimates = [estimate(protocol, job, earlier.get(job.job_id)) for job in pending]
    statistical = protocol.stopping == STATISTICAL
    lines = [f"dry run: target {run.target.name}, suite {run.suite.name}: nothing is built or measured",
             f"protocol: {describe_rule(protocol)}", *(f"note: {n}" for n in [*notes, *run.notes, *plan_notes])]
    links = any(job.link for job in pending)  # a column only where split jobs run over links
    header = ["workload", "variant", "backend", "threads", "batch", *(["link"] if links else []), "warm-up s",
              "accuracy s", "timed s (typical)" if statistical else "timed s",
              *(["ceiling s"] if statistical else []), "basis"]
    table = [header]
    for job, e in zip(pending, estimates):
        accuracy = "?" if e.accuracy_s is None else f"{ACCURACY_BOUND}{e.accuracy_s:.1f}"
        table.append([job.workload, job.variant, job.backend, str(job.threads), str(job.batch_size),
                      *([job.link or "-"] if links else []), f"{e.warmup_s:.1f}", accuracy, f"{e.timed_s:.1f}",
                      *([f"{e.ceiling_s:.1f}"] if statistical else []), e.basis])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    states = cache_states(wanted_artifacts(run, pending))
    counts = {state: sum(s == state for s in states.values()) for state in dict.fromkeys(states.values())}
    if states:
        lines += ["artifacts (base models included):",
                  *(f"  {state:8s}  {artifact_name(*key)}" for key, state in states.items())]
    if counts.get(UNKNOWN):
        lines.append(f"note: unknown: a variant's cache key includes its base model's file, which is {TO_BUILD}")
    total = sum(e.total_s for e in estimates)
    by_state = f" ({', '.join(f'{n} {state}' for state, n in counts.items())})" if counts else ""
    summary = (f"{len(pending)} of {len(jobs)} jobs to run ({sum(e.skipped for e in estimates)} skipped in an "
               f"earlier run), {len(states)} artifacts{by_state}; measuring ~{_duration(total)}")
    if statistical:
        fixed = protocol.for_energy()  # the same protocol under the fixed rule
        fixed_total = sum(estimate(fixed, job, earlier.get(job.job_id)).total_s for job in pending)
        summary += (f" typical, {_duration(sum(e.total_ceiling_s for e in estimates))} at the ceiling "
                    f"(the fixed rule: {_duration(fixed_total)})")
    unknown = sum(e.accuracy_s is None and not e.skipped for e in estimates)
    lines += [summary, "not counted: building (cached artifacts are reused), loading models, starting agents"
              + (f"; the accuracy pass of {unknown} jobs without an earlier run" if unknown else "")]
    return "\n".join(lines)

