"""Suites: workloads/suites/<name>.toml names the workloads to run, the protocol and the job matrix.

    [suite]     name, description, workloads = [names or paths]
    [protocol]  warmup_min_iterations, warmup_min_s, n_windows, window_min_s, window_min_iterations;
                stopping = "fixed" (MLPerf Tiny: n_windows windows) or "statistical" (until the median is
                known: statistical_window_s, min_windows, median_ci_pct, max_windows, max_timed_s)
    [matrix]    backends (default: the target's), threads = [1, "all"], batch_sizes = [1]
    [split]     split computing: server = "cpu" (the target that runs tails: a name or a file),
                server_address (where device and server are different machines: the address at which the
                device reaches the server), device_cpu_quota (emulate a slower device on this machine: CPU
                cores the device agents may use)
    [[link]]    rate_mbit (optional: unshaped without), delay_ms: each split job runs once per link
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.core.config import Table, load_toml, named_file, stems
from harness.core.errors import ConfigError
from harness.core.jobs import MAX_BATCH_SIZE, MAX_THREADS, check_name
from harness.core.measurement import ENERGY_NEEDS_FIXED_RULE, FIXED, STOPPING_RULES, MeasurementProtocol
from targets.backends import check_backend_list
from targets.link import LinkSetting, parse_links

# a device slower than one core is the point; past this many cores a quota emulates nothing
MAX_DEVICE_CPU_QUOTA = 1024.0


@dataclass(frozen=True)
class SplitSettings:
    """Where split-computing jobs put their tail and which links they run over."""

    server: str = "cpu"
    server_address: str | None = None
    device_cpu_quota: float | None = None
    links: tuple[LinkSetting, ...] = ()   # none: one unshaped loopback link

SUITES_DIR = Path(__file__).resolve().parents[2] / "workloads" / "suites"


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    file: Path | None
    description: str
    workloads: tuple[str, ...]
    protocol: MeasurementProtocol
    backends: tuple[str, ...] | None
    threads: tuple[int | str, ...]
    batch_sizes: tuple[int, ...]
    split: SplitSettings = field(default_factory=SplitSettings)


def parse_protocol(table: Table) -> MeasurementProtocol:
    default = MeasurementProtocol()
    stopping = table.data.get("stopping", default.stopping)
    if not isinstance(stopping, str):  # Table.take would say "expected str" alone
        raise ConfigError(f"{table.where('stopping')} = {stopping!r}: expected a string; accepted: "
                          f"{', '.join(STOPPING_RULES)}")
    settings = MeasurementProtocol(
        warmup_min_iterations=table.take("warmup_min_iterations", int, default.warmup_min_iterations,
                                         minimum=0),
        warmup_min_s=table.take("warmup_min_s", float, default.warmup_min_s, minimum=0.0),
        n_windows=table.take("n_windows", int, default.n_windows, minimum=1),
        window_min_s=table.take("window_min_s", float, default.window_min_s, minimum=0.0),
        window_min_iterations=table.take("window_min_iterations", int, default.window_min_iterations,
                                         minimum=1),
        stopping=table.take("stopping", str, default.stopping, choices=STOPPING_RULES),
        statistical_window_s=table.take("statistical_window_s", float, default.statistical_window_s,
                                        minimum=0.0),
        # batch means over the windows' medians need two windows at least
        min_windows=table.take("min_windows", int, default.min_windows, minimum=2),
        median_ci_pct=table.take("median_ci_pct", float, default.median_ci_pct, minimum=0.01, maximum=100.0),
        max_windows=table.take("max_windows", int, default.max_windows, minimum=2),
        max_timed_s=table.take("max_timed_s", float, default.max_timed_s, minimum=0.0),
    )
    if settings.max_windows < settings.min_windows:
        raise ConfigError(f"{table.where('max_windows')} = {settings.max_windows}: accepted: values >= "
                          f"min_windows ({settings.min_windows}), the ceiling cannot come before the floor")
    table.finish()
    return settings


def parse_suite(data: dict, file: Path) -> SuiteSpec:
    root = Table(data, file)
    head = root.table("suite", required=True)
    name = head.take("name", default=file.stem)
    description = head.take("description", default="")
    check_name(name, head.where("name"))  # it becomes part of the run id, a directory name
    workloads = head.take("workloads", list)
    if not workloads or not all(isinstance(w, str) and w.strip() for w in workloads):
        raise ConfigError(f"{head.where('workloads')}: a non-empty list of workload names")
    head.finish()
    protocol = parse_protocol(root.table("protocol"))
    matrix = root.table("matrix")
    backends = matrix.take("backends", list, None)
    if backends is not None:  # left out: every backend the target lists
        check_backend_list(backends, matrix.where("backends"))
    threads = matrix.take("threads", list, [1])
    if not threads:
        raise ConfigError(f"{matrix.where('threads')} = []: accepted: a non-empty list of integers >= 1 "
                          f"or \"all\"")
    for t in threads:
        if not (t == "all" or (isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= MAX_THREADS)):
            raise ConfigError(f"{matrix.where('threads')}: {t!r} is not a thread count; "
                              f"accepted: integers from 1 to {MAX_THREADS} or \"all\"")
    batch_sizes = matrix.take("batch_sizes", list, [1])
    if not batch_sizes or not all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= MAX_BATCH_SIZE
                                  for b in batch_sizes):
        raise ConfigError(f"{matrix.where('batch_sizes')} = {batch_sizes}: accepted: a non-empty list of "
                          f"integers from 1 to {MAX_BATCH_SIZE}")
    matrix.finish()
    split = parse_split(root.table("split"), root.tables("link"))
    root.finish()
    return SuiteSpec(name, file, description, tuple(workloads), protocol,
                     tuple(backends) if backends else None, tuple(threads), tuple(batch_sizes), split)


def parse_split(table: Table, links: list[Table]) -> SplitSettings:
    server = table.take("server", str, "cpu")
    if not server.strip():
        raise ConfigError(f"{table.where('server')} = {server!r}: accepted: a target name or a target file")
    settings = SplitSettings(
        server=server,
        server_address=table.take("server_address", str, None),
        device_cpu_quota=table.take("device_cpu_quota", float, None, minimum=0.01, maximum=MAX_DEVICE_CPU_QUOTA),
        links=tuple(parse_links(links)))
    table.finish()
    return settings


def with_stopping(suite: SuiteSpec, stopping: str | None, measures_energy: bool) -> tuple[SuiteSpec, list[str]]:
    """The suite with the stopping rule the run uses: `stopping` (--stopping) over the suite's own; a run
    that measures energy keeps the fixed rule's long windows. Notes say what was changed."""
    if stopping is not None and stopping not in STOPPING_RULES:
        raise ConfigError(f"--stopping {stopping}: accepted: {', '.join(STOPPING_RULES)}")
    protocol = replace(suite.protocol, stopping=stopping) if stopping else suite.protocol
    notes = []
    if measures_energy and protocol.stopping != FIXED:
        protocol = protocol.for_energy()
        notes.append(ENERGY_NEEDS_FIXED_RULE)
    return replace(suite, protocol=protocol), notes


def suite_files(directory: Path = SUITES_DIR) -> dict[str, Path]:
    return stems(directory)


def find_suite(name_or_path: str) -> SuiteSpec:
    """A suite by name (workloads/suites/<name>.toml) or by the path of a TOML file."""
    path = named_file(name_or_path, suite_files(), "suite", "--suite")
    return parse_suite(load_toml(path), path)
