"""Reading run directories written by older edgebench versions: a run.json without "format_version" is
format 1; each step below brings a run one format forward, until it is RESULT_FORMAT_VERSION.

Two ways in: `read_run` migrates in memory and writes nothing (report, compare); `migrate_in_place`
rewrites run.json and results.csv, keeping the originals beside them as run.v<N>.json and
results.v<N>.csv (RunStore.open, before a resume appends rows in the current format).

Changing the result columns or a run.json key: bump schema.RESULT_FORMAT_VERSION, freeze the old
version's columns in FORMAT_COLUMNS, and add the step from the old version to STEPS.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.environment import utc_now
from harness.core.errors import ConfigError
from harness.core.schema import COLUMNS, RESULT_FORMAT_VERSION

# Format 1's columns as commit 39f6013 wrote them; earlier commits wrote a prefix-compatible subset.
FORMAT_1_COLUMNS = [
    "run_id", "job_id", "status", "reason", "workload", "variant", "target", "backend", "precision",
    "threads", "batch_size", "family", "variant_params",
    "accuracy", "accuracy_delta", "n_eval",
    "latency_mean_ms", "latency_std_ms", "latency_min_ms", "latency_max_ms",
    "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
    "throughput_ips", "n_iterations", "n_windows", "window_min_s", "warmup_iterations",
    "model_bytes", "params", "macs", "weight_sparsity", "exit_rate", "expected_macs", "peak_rss_mb",
    "clock_offset_us", "clock_uncertainty_us", "h2d_ms", "d2h_ms", "backend_info",
    "energy_per_inference_mj", "energy_per_inference_above_idle_mj", "avg_power_w", "idle_power_w",
    "energy_source", "power_samples", "power_trace_file",
    "valid", "invalid_reasons", "warnings", "raw_latency_file", "finished_at",
]
# Format 2's columns (commit a616198); format 3 added the split-computing columns and the key `link`.
FORMAT_2_COLUMNS = FORMAT_1_COLUMNS
# Format 3's columns (commit 520da4e); format 4 added `metric` and `notes` (a user's model: how it is scored,
# and why a column is empty).
FORMAT_3_COLUMNS = [
    "run_id", "job_id", "status", "reason", "workload", "variant", "target", "backend", "precision", "threads",
    "batch_size", "link", "family", "strategy", "variant_params", "accuracy", "accuracy_delta", "n_eval",
    "latency_mean_ms", "latency_std_ms", "latency_min_ms", "latency_max_ms", "latency_p50_ms",
    "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "throughput_ips", "n_iterations", "n_windows",
    "window_min_s", "warmup_iterations", "model_bytes", "params", "macs", "weight_sparsity", "exit_rate",
    "expected_macs", "split_point", "payload_dtype", "payload_bytes", "input_bytes", "head_ms", "serialize_ms",
    "transfer_ms", "tail_ms", "head_macs", "tail_macs", "head_bytes", "link_rate_mbit", "link_delay_ms",
    "link_measured_mbit", "link_rtt_ms", "link_shaping", "device_cpu_quota", "peak_rss_mb", "clock_offset_us",
    "clock_uncertainty_us", "h2d_ms", "d2h_ms", "backend_info", "energy_per_inference_mj",
    "energy_per_inference_above_idle_mj", "avg_power_w", "idle_power_w", "energy_source", "power_samples",
    "power_trace_file", "valid", "invalid_reasons", "warnings", "raw_latency_file", "finished_at",
]
# Format 4's columns (commit b00e4a9); format 5 added `board` and the noise columns (load_avg_1m,
# other_cpu_cores, cpu_steal_pct), empty in older runs: they were not measured.
FORMAT_4_COLUMNS = [
    "run_id", "job_id", "status", "reason", "workload", "variant", "target", "backend", "precision", "threads",
    "batch_size", "link", "family", "strategy", "variant_params", "accuracy", "metric", "accuracy_delta",
    "n_eval", "latency_mean_ms", "latency_std_ms", "latency_min_ms", "latency_max_ms", "latency_p50_ms",
    "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "throughput_ips", "n_iterations", "n_windows",
    "window_min_s", "warmup_iterations", "model_bytes", "params", "macs", "weight_sparsity", "exit_rate",
    "expected_macs", "split_point", "payload_dtype", "payload_bytes", "input_bytes", "head_ms", "serialize_ms",
    "transfer_ms", "tail_ms", "head_macs", "tail_macs", "head_bytes", "link_rate_mbit", "link_delay_ms",
    "link_measured_mbit", "link_rtt_ms", "link_shaping", "device_cpu_quota", "peak_rss_mb", "clock_offset_us",
    "clock_uncertainty_us", "h2d_ms", "d2h_ms", "backend_info", "energy_per_inference_mj",
    "energy_per_inference_above_idle_mj", "avg_power_w", "idle_power_w", "energy_source", "power_samples",
    "power_trace_file", "valid", "invalid_reasons", "warnings", "notes", "raw_latency_file", "finished_at",
]
# Format 5's columns (commit 770bb33); format 6 added `stopping_rule` and `latency_p50_ci_pct` (how the timed
# windows ended and how well the median is known) and the early-exit columns `exit_path` and `exit_skip_rate`,
# empty in older runs: their interval was never computed.
FORMAT_5_COLUMNS = [
    "run_id", "job_id", "status", "reason", "workload", "variant", "target", "board", "backend", "precision",
    "threads", "batch_size", "link", "family", "strategy", "variant_params", "accuracy", "metric",
    "accuracy_delta", "n_eval", "latency_mean_ms", "latency_std_ms", "latency_min_ms", "latency_max_ms",
    "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "throughput_ips", "n_iterations",
    "n_windows", "window_min_s", "warmup_iterations", "model_bytes", "params", "macs", "weight_sparsity",
    "exit_rate", "expected_macs", "split_point", "payload_dtype", "payload_bytes", "input_bytes", "head_ms",
    "serialize_ms", "transfer_ms", "tail_ms", "head_macs", "tail_macs", "head_bytes", "link_rate_mbit",
    "link_delay_ms", "link_measured_mbit", "link_rtt_ms", "link_shaping", "device_cpu_quota", "peak_rss_mb",
    "clock_offset_us", "clock_uncertainty_us", "load_avg_1m", "other_cpu_cores", "cpu_steal_pct", "h2d_ms",
    "d2h_ms", "backend_info", "energy_per_inference_mj", "energy_per_inference_above_idle_mj", "avg_power_w",
    "idle_power_w", "energy_source", "power_samples", "power_trace_file", "valid", "invalid_reasons", "warnings",
    "notes", "raw_latency_file", "finished_at",
]
# the columns every version has written: without them a row is no job (resume, baselines and compare
# need its identity)
IDENTITY_COLUMNS = ["run_id", "job_id", "status", "reason", "workload", "variant", "target", "backend",
                    "precision", "threads", "batch_size", "family"]

# the columns each format may have; the current one must be written exactly
FORMAT_COLUMNS: dict[int, list[str]] = {1: FORMAT_1_COLUMNS, 2: FORMAT_2_COLUMNS, 3: FORMAT_3_COLUMNS,
                                        4: FORMAT_4_COLUMNS, 5: FORMAT_5_COLUMNS, RESULT_FORMAT_VERSION: COLUMNS}


@dataclass
class RunData:
    """A run read into the current format: run.json's content and the rows (CSV text, keyed by COLUMNS)."""

    info: dict
    rows: list[dict]
    from_version: int
    notes: list[str] = field(default_factory=list)   # what the migration did that a reader should know


def _v1_to_v2(info: dict, rows: list[dict], notes: list[str]) -> None:
    # "protocol" was ambiguous beside the agent's wire protocol: it is the measurement protocol
    if "protocol" in info and "measurement_protocol" not in info:
        info["measurement_protocol"] = info.pop("protocol")


def _v2_to_v3(info: dict, rows: list[dict], notes: list[str]) -> None:
    # the split-computing columns are new and empty (migrate adds them); every older job ran whole on the
    # device, over no link
    for row in rows:
        row["strategy"] = "local"


def _v3_to_v4(info: dict, rows: list[dict], notes: list[str]) -> None:
    # every accuracy before format 4 was the top-1 of the first output
    for row in rows:
        row["metric"] = "top1" if row.get("accuracy") not in (None, "") else ""


# version N -> N + 1; each edits run.json's dict and the rows (dicts keyed by the CSV header) in place
def _v4_to_v5(info: dict, rows: list[dict], notes: list[str]) -> None:
    pass  # the new columns stay empty: no older run measured them


def _v5_to_v6(info: dict, rows: list[dict], notes: list[str]) -> None:
    pass  # the new columns stay empty: no older run computed the median's interval or said how it exited


STEPS: dict[int, Callable[[dict, list[dict], list[str]], None]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4,
                                                                    4: _v4_to_v5, 5: _v5_to_v6}


def format_version(info: dict, where: Path | str) -> int:
    """The run's format: 1 without "format_version"; a newer one than this code reads is refused."""
    version = info.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"{where}: format_version = {version!r}; accepted: an integer from 1 to "
                          f"{RESULT_FORMAT_VERSION}")
    if version > RESULT_FORMAT_VERSION:
        raise ConfigError(f"{where}: a run of result format {version}, newer than this edgebench's "
                          f"(format {RESULT_FORMAT_VERSION}); read it with the edgebench that wrote it, "
                          f"or a newer one")
    return version


def check_header(version: int, header: list[str], where: Path | str) -> None:
    """A header the claimed format could have written: the current format exactly, an older one a subset
    of its columns that keeps every job's identity."""
    if version == RESULT_FORMAT_VERSION:
        ok = header == COLUMNS
    else:
        ok = set(header) <= set(FORMAT_COLUMNS[version]) and set(IDENTITY_COLUMNS) <= set(header)
    if not ok:
        expected = set(FORMAT_COLUMNS[version])
        missing = [c for c in (COLUMNS if version == RESULT_FORMAT_VERSION else IDENTITY_COLUMNS)
                   if c not in header]
        unknown = [c for c in header if c not in expected]
        repeated = sorted({c for c in header if header.count(c) > 1})
        if missing or unknown:
            differs = f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}"
        elif repeated:
            differs = f"repeated: {', '.join(repeated)}"
        else:
            at = next(i for i, (a, b) in enumerate(zip(header, COLUMNS)) if a != b)
            differs = (f"the same columns in another order: column {at + 1} is {header[at]}, expected "
                       f"{COLUMNS[at]}")
        raise ConfigError(f"{where}: written by an edgebench with other result columns than result "
                          f"format {version} has ({differs}); it cannot be read or resumed by this "
                          f"version, start a new run")


def read_text(path: Path, what: str) -> str:
    """A run file's text (UTF-8, newlines as written); a byte that is not UTF-8 is one line naming the file."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start}); {what} as edgebench writes it expected") from None


def read_info(path: Path) -> dict:
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); a run.json as "
                          f"edgebench writes it expected") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; a run.json as edgebench writes it (a JSON object) "
                          f"expected") from None
    if not isinstance(info, dict):
        raise ConfigError(f"{path}: a JSON {type(info).__name__}; a JSON object expected")
    return info


def read_results(path: Path) -> tuple[list[str], list[dict]]:
    """results.csv's header and rows. A last line without its newline (a crash mid-write) is no finished
    job and is left out."""
    text = read_text(path, "a results.csv")
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    rows = [dict(zip(header, values + [""] * (len(header) - len(values)))) for values in reader]
    return header, rows


def migrate(info: dict, header: list[str], rows: list[dict], where: Path | str) -> RunData:
    """run.json's dict and the CSV rows in the current format (copies: the arguments are not changed).
    `where` is the run directory, named in errors."""
    version = format_version(info, Path(where) / "run.json")
    check_header(version, header, Path(where) / "results.csv")
    info = json.loads(json.dumps(info))
    rows = [dict(r) for r in rows]
    notes: list[str] = []
    for step in range(version, RESULT_FORMAT_VERSION):
        STEPS[step](info, rows, notes)
    if version < RESULT_FORMAT_VERSION:
        dropped = sorted({c for r in rows for c, v in r.items() if v != "" and c not in COLUMNS})
        if dropped:
            notes.append(f"columns no longer written, dropped: {', '.join(dropped)}")
        # columns added since are empty; the order is the current header's
        rows = [{c: r.get(c, "") for c in COLUMNS} for r in rows]
    info = {"format_version": RESULT_FORMAT_VERSION, **{k: v for k, v in info.items() if k != "format_version"}}
    return RunData(info, rows, version, notes)


def read_run(run_dir: Path) -> RunData:
    """A run directory in the current format, migrated in memory; nothing is written. A run without
    run.json (results.csv alone) is read as format 1."""
    run_dir = Path(run_dir)
    run_json = run_dir / "run.json"
    info = read_info(run_json) if run_json.is_file() else {}
    header, rows = read_results(run_dir / "results.csv")
    return migrate(info, header, rows, run_dir)


def _replace(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def migrate_in_place(run_dir: Path) -> str | None:
    """Bring an older run directory to the current format on disk, keeping the originals beside it
    (run.v<N>.json, results.v<N>.csv). None when it is current; else a sentence saying what was done."""
    run_dir = Path(run_dir)
    run_json, results_csv = run_dir / "run.json", run_dir / "results.csv"
    info = read_info(run_json)
    version = format_version(info, run_json)
    if version == RESULT_FORMAT_VERSION:
        return None
    originals = [run_dir / f"results.v{version}.csv", run_dir / f"run.v{version}.json"]
    # an attempt that stopped after rewriting results.csv (run.json still old) kept the original rows
    header, rows = read_results(originals[0] if originals[0].is_file() else results_csv)
    data = migrate(info, header, rows, run_dir)   # refuses before anything is written
    for source, kept in zip([results_csv, run_json], originals):
        # an earlier attempt that stopped half-way kept the true originals already
        if not kept.exists():
            _replace(kept, lambda tmp, source=source: shutil.copy2(source, tmp))
    data.info.setdefault("migrations", []).append({
        "from_format": version, "to_format": RESULT_FORMAT_VERSION, "at": utc_now(),
        "originals": [p.name for p in originals]})

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            writer.writerows([r[c] for c in COLUMNS] for r in data.rows)
            fh.flush()
            os.fsync(fh.fileno())

    _replace(results_csv, write_csv)
    # run.json last: its format_version says the directory is migrated
    _replace(run_json, lambda tmp: tmp.write_text(json.dumps(data.info, indent=2, default=str)))
    notes = "".join(f"; {n}" for n in data.notes)
    return (f"{run_dir}: result format {version} migrated to format {RESULT_FORMAT_VERSION} in place; "
            f"originals kept as {originals[0].name} and {originals[1].name}{notes}")
