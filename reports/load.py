"""Reading a run directory into a tidy table (pandas), one row per job. A run of an older result format
is migrated in memory (nothing is written), so report and compare read every format."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from harness.core.errors import ConfigError
from harness.core.migrations import read_run
from harness.core.rundir import FINAL_STATUSES, complete_row_problem
from harness.core.schema import BOOLEAN, COLUMNS, NUMERIC


def load_run(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    """run.json and results.csv in the current format; when a job was retried (--resume after a failure)
    its last row wins. Numeric columns are floats (empty: NaN), boolean ones True/False (empty: NaN)."""
    run_dir = Path(run_dir)
    if not (run_dir / "results.csv").is_file():
        raise ConfigError(f"{run_dir}: no results.csv here; expected a run directory such as runs/latest")
    data = read_run(run_dir)
    refuse_repeated_jobs(run_dir / "results.csv", data.rows)
    rows = pd.DataFrame(data.rows, columns=COLUMNS, dtype=str)
    rows = rows.drop_duplicates("job_id", keep="last").reset_index(drop=True)
    for column in NUMERIC:
        rows[column] = pd.to_numeric(rows[column].replace("", None), errors="coerce")
    for column in BOOLEAN:
        rows[column] = rows[column].map({"True": True, "False": False})
    fill_accuracy_deltas(rows)
    return data.info, rows


def refuse_repeated_jobs(path: Path, rows: list[dict]) -> None:
    """A job edgebench finished is written once: two complete ok (or skipped) rows of one job mean the file
    was edited or merged, and neither is the job's result. (A failed row and a later one is a retry: the
    last wins.)"""
    counts = Counter(row["job_id"] for row in rows)
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=2):
        # only a job with several rows can break the rule: checking each row's cells costs half the load
        if counts[row["job_id"]] < 2 or row["status"] not in FINAL_STATUSES \
                or complete_row_problem([row[c] for c in COLUMNS]) is not None:
            continue
        if row["job_id"] in seen:
            raise ConfigError(f"{path}: lines {seen[row['job_id']]} and {number} are both finished rows of job "
                              f"{row['job_id']}, which edgebench writes once; neither is trusted (resume "
                              f"the run to measure it again: edgebench bench --resume {path.parent})")
        seen[row["job_id"]] = number


def fill_accuracy_deltas(rows: pd.DataFrame) -> None:
    """A variant measured before its baseline had an ok row (the baseline failed, then --resume ran it)
    was written without a delta: take it from the same run's baseline now, chosen as
    BaselineAccuracies.reference chooses (same workload and target; the same backend first, then the same
    threads, then the same batch size), for all such rows at once."""
    missing = (rows["status"] == "ok") & (rows["family"] != "baseline") & rows["accuracy_delta"].isna()
    baselines = rows[(rows["status"] == "ok") & (rows["family"] == "baseline") & rows["accuracy"].notna()]
    if not missing.any() or baselines.empty:
        return
    keys = ["workload", "target"]
    pairs = rows.loc[missing, keys + ["backend", "threads", "batch_size"]].reset_index().merge(
        baselines[keys + ["backend", "threads", "batch_size", "accuracy"]].reset_index(drop=True)
        .rename_axis("order").reset_index(), on=keys, suffixes=("", "_base"))
    if pairs.empty:
        return
    pairs["rank"] = (4 * pairs["backend"].ne(pairs["backend_base"]) + 2 * pairs["threads"].ne(pairs["threads_base"])
                     + pairs["batch_size"].ne(pairs["batch_size_base"]))
    best = pairs.sort_values(["index", "rank", "order"], kind="stable").drop_duplicates("index")
    rows.loc[best["index"], "accuracy_delta"] = (rows.loc[best["index"], "accuracy"].to_numpy()
                                                 - best["accuracy"].to_numpy())


def run_directories(paths: list[Path], notes: list[str]) -> list[Path]:
    """The runs among `paths` as a shell glob gives them (`runs/*`): each run once (runs/latest is a link
    to one of them), and what is not a run (a report's directory) left out, saying so."""
    runs, seen, skipped = [], set(), []
    for path in map(Path, paths):
        if not (path / "results.csv").is_file():
            skipped.append(str(path))
        elif path.resolve() not in seen:
            seen.add(path.resolve())
            runs.append(path)
    if skipped:
        notes.append(f"not runs (no results.csv), left out: {', '.join(skipped)}")
    if not runs:
        raise ConfigError(f"{', '.join(map(str, paths))}: no run directory among them (a run holds results.csv)")
    return runs
