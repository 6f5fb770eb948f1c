"""What the user sees while a run goes: a bar per job and one for the run (with ETA), or quiet lines."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from harness.core.jobs import Job
from targets.agent.wire import ACCURACY, LOAD, WARMUP, WINDOW
from workloads.build_pool import BuildTime

PHASE_LABELS = {LOAD: "loading", ACCURACY: "accuracy pass", WARMUP: "warm-up", WINDOW: "timed windows"}


def job_label(job: Job) -> str:
    return f"{job.workload}/{job.variant} {job.backend} t{job.threads} b{job.batch_size}"


def build_line(record: BuildTime) -> str:
    return f"{'cached' if record.cached else 'built':8s} {record.what}: {record.seconds:.1f} s"


class RunLog:
    """The lines worth keeping, in the run directory's log file once there is one (those said before are
    written then)."""

    def __init__(self):
        self.path: Path | None = None
        self.waiting: list[str] = []

    def keep_in(self, path: Path) -> None:
        self.path = path
        self.write(*self.waiting)
        self.waiting = []

    def write(self, *lines: str) -> None:
        if self.path is None:
            self.waiting.extend(lines)
        elif lines:
            with open(self.path, "a") as fh:
                fh.write("".join(f"{line}\n" for line in lines))


class QuietReporter:
    """One line per built artifact and per finished job on stderr: for CI logs (and the run's log file)."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self.log = RunLog()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def keep_log(self, path: Path) -> None:
        """From now on (and what was said so far) also in the file `path`."""
        self.log.keep_in(path)

    def _say(self, line: str) -> None:
        self.console.print(line, markup=False, soft_wrap=True)  # one line each, however narrow the log
        self.log.write(line)

    def note(self, message: str) -> None:
        """A line worth keeping in the log."""
        self._say(message)

    def build_finished(self, record: BuildTime) -> None:
        """One artifact of the build phase ready (said at once, not when the phase ends): how long it took,
        built or found in the cache."""
        self._say(build_line(record))

    def status(self, message: str) -> None:
        """A passing state (training epoch, export): shown live, not logged."""

    def run_started(self, total_jobs: int) -> None:
        pass

    def job_started(self, job: Job) -> None:
        pass

    def job_progress(self, phase: str, done: int, total: int) -> None:
        pass

    def job_finished(self, job: Job, row: dict) -> None:
        status = row["status"]
        accuracy = f"{float(row['accuracy']):.4f}" if row.get("accuracy") is not None else "- (no metric)"
        detail = (f"p50 {float(row['latency_p50_ms']):.3f} ms, acc {accuracy}" if status == "ok"
                  else row.get("reason", ""))
        board = f" on {row['board']}" if row.get("board") else ""  # a farm: which board finished it
        self._say(f"{status:8s} {job_label(job)}{board}: {detail}")


class RichReporter(QuietReporter):
    def __init__(self, console: Console | None = None):
        super().__init__(console)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=self.console, transient=False)
        self.run_task = None
        self.job_task = None
        self.label = ""
        self.status_task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def _say(self, line: str) -> None:
        self.progress.console.print(line, markup=False, soft_wrap=True)  # above the bars
        self.log.write(line)

    def note(self, message: str) -> None:
        self.progress.console.print(message, style="dim", markup=False, soft_wrap=True)
        self.log.write(message)

    def status(self, message: str) -> None:
        if self.status_task is None:
            self.status_task = self.progress.add_task(message, total=None)
        self.progress.update(self.status_task, description=message)

    def run_started(self, total_jobs: int) -> None:
        if self.status_task is not None:
            self.progress.remove_task(self.status_task)
            self.status_task = None
        self.run_task = self.progress.add_task("run", total=total_jobs)

    def job_started(self, job: Job) -> None:
        self.label = job_label(job)
        self.job_task = self.progress.add_task(self.label, total=None)

    def job_progress(self, phase: str, done: int, total: int) -> None:
        self.progress.update(self.job_task, completed=done, total=total,
                             description=f"{self.label}: {PHASE_LABELS.get(phase, phase)}")

    def job_finished(self, job: Job, row: dict) -> None:
        self.progress.remove_task(self.job_task)
        self.progress.advance(self.run_task)
        super().job_finished(job, row)


def make_reporter(quiet: bool) -> QuietReporter:
    return QuietReporter() if quiet or not sys.stderr.isatty() else RichReporter()


def summary_table(rows: list[dict]) -> Table:
    table = Table(title="edgebench results", show_lines=False)
    for name in ("workload", "variant", "backend", "threads", "accuracy", "p50 ms", "p99 ms",
                 "inf/s", "MACs", "valid", "status"):
        table.add_column(name, justify="right" if name not in ("workload", "variant", "backend") else "left")
    def num(r, key, fmt):
        return format(float(r[key]), fmt) if r.get(key) not in (None, "") else ""

    for r in rows:
        table.add_row(r["workload"], r["variant"], r["backend"], str(r["threads"]), num(r, "accuracy", ".4f"),
                      num(r, "latency_p50_ms", ".3f"), num(r, "latency_p99_ms", ".3f"),
                      num(r, "throughput_ips", ".0f"), num(r, "macs", ",.0f"), str(r.get("valid", "")),
                      r["status"])
    return table
