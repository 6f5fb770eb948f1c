"""One metric of every job across many runs, in time or commit order (as asv does for a project's
benchmarks): what a CI job reads to watch a model's latency over releases. A step between two consecutive
runs of a job is a significant change when the metric moved by more than the ratio threshold AND, for
latency metrics, Mann-Whitney U on the two runs' raw samples says the shift is real (the test `compare`
uses). Other metrics have no samples to test: the threshold alone marks them, and the table says so."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.core.errors import ConfigError
from harness.core.schema import NUMERIC
from reports.compare import ACCURACY_DROP_POINTS, samples_ms, shift_p_value
from reports.load import load_run, run_directories

HIGHER_IS_BETTER = frozenset({"accuracy", "accuracy_delta", "throughput_ips", "exit_rate"})
# shares of samples: a change is a difference in points (compare's accuracy rule), not a ratio (a delta is
# signed, and 0.98 -> 0.90 is only a ratio of 0.92)
POINTS_METRICS = frozenset({"accuracy", "accuracy_delta", "exit_rate"})
ORDERS = ("time", "commit")


@dataclass
class History:
    metric: str
    runs: pd.DataFrame      # run_id, run_dir, started_at, commit, position (0 = oldest)
    points: pd.DataFrame    # job, position, value (and what a change needs: raw file, run directory)
    changes: pd.DataFrame   # job, from/to run, values, ratio, p_value, test, verdict
    notes: list[str]


def check_metric(metric: str) -> None:
    if metric not in NUMERIC:
        raise ConfigError(f"--metric {metric!r} is not a numeric result column; accepted: {', '.join(NUMERIC)}")


def run_facts(run_dir: Path, info: dict) -> dict:
    git = info.get("host", {}).get("git", {})
    return {"run_id": info.get("run_id", run_dir.name), "run_dir": str(run_dir),
            "started_at": info.get("started_at") or "", "commit": git.get("commit") or ""}


def commit_positions(commits: list[str]) -> dict[str, int] | None:
    """Each commit's place in the history of the repository here (oldest first), or None without git."""
    try:
        out = subprocess.run(["git", "rev-list", "--topo-order", "--reverse", "HEAD"], capture_output=True,
                             text=True, check=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    order = {commit: i for i, commit in enumerate(out)}
    return {c: order[c] for c in commits if c in order}


def order_runs(runs: pd.DataFrame, order: str, notes: list[str]) -> pd.DataFrame:
    by_time = runs.sort_values(["started_at", "run_id"], kind="stable")
    if order == "commit":
        positions = commit_positions(list(runs["commit"]))
        if positions is None:
            notes.append("commit order asked for, but git could not read this repository's history: runs are "
                         "in time order")
        else:
            unknown = by_time[~by_time["commit"].isin(positions)]
            if len(unknown):
                notes.append(f"{len(unknown)} run(s) at commits not in this repository's history "
                             f"({', '.join(unknown['run_id'])}) come last, in time order")
            rank = by_time["commit"].map(positions).fillna(len(positions) + 1)
            by_time = by_time.assign(rank=rank).sort_values(["rank", "started_at"], kind="stable").drop(
                columns="rank")
    return by_time.reset_index(drop=True).assign(position=lambda r: range(len(r)))


def job_names(rows: pd.DataFrame) -> pd.Series:
    """'<target>: <job id>': the job id names workload, variant, backend, threads, batch (and link)."""
    return rows["target"].astype(str) + ": " + rows["job_id"].astype(str)


def load_history(run_dirs: list[Path], metric: str, order: str = "time", ratio_threshold: float = 1.10,
                 alpha: float = 0.01) -> History:
    check_metric(metric)
    if order not in ORDERS:
        raise ConfigError(f"--order {order!r}; accepted: {', '.join(ORDERS)}")
    notes: list[str] = []
    facts, frames = [], []
    for run_dir in run_directories(run_dirs, notes):
        info, rows = load_run(run_dir)
        facts.append(run_facts(run_dir, info))
        ok = rows[rows["status"] == "ok"]
        frames.append(pd.DataFrame({"job": job_names(ok), "run_id": facts[-1]["run_id"], "value": ok[metric],
                                    "raw_latency_file": ok["raw_latency_file"], "run_dir": str(run_dir)}))
    runs = order_runs(pd.DataFrame(facts), order, notes)
    points = pd.concat(frames, ignore_index=True).dropna(subset=["value"])
    # by directory: two copies of one run (one id) are two runs
    points = points.merge(runs[["run_dir", "position"]], on="run_dir").sort_values(["job", "position"],
                                                                                  kind="stable")
    return History(metric, runs, points.reset_index(drop=True),
                   find_changes(points, metric, ratio_threshold, alpha), notes)


def find_changes(points: pd.DataFrame, metric: str, ratio_threshold: float, alpha: float) -> pd.DataFrame:
    """The steps between consecutive runs of a job beyond the threshold, tested where samples exist. The
    threshold is checked first, so that only the few steps past it pay for reading samples."""
    previous = points.groupby("job", sort=False).shift(1)
    steps = points.assign(from_run=previous["run_id"], from_value=previous["value"],
                          from_raw=previous["raw_latency_file"], from_dir=previous["run_dir"]).dropna(
        subset=["from_value"])
    ratio = steps["value"] / steps["from_value"]
    points_change = (steps["value"] - steps["from_value"]) * 100
    if metric in POINTS_METRICS:
        past = points_change.abs() > ACCURACY_DROP_POINTS
    else:
        past = (ratio >= ratio_threshold) | (ratio <= 1 / ratio_threshold)
    steps = steps.assign(ratio=ratio, change_points=points_change)[past]
    out = []
    sampled = metric.startswith("latency_")
    loaded: dict[tuple[str, str], np.ndarray] = {}  # a run's samples serve the step into it and the one out

    def samples(run_dir: str, relative: str) -> np.ndarray:
        if (run_dir, relative) not in loaded:
            loaded[run_dir, relative] = samples_ms(Path(run_dir), relative)
        return loaded[run_dir, relative]

    for _, step in steps.iterrows():
        p_value, test = np.nan, (f"difference > {ACCURACY_DROP_POINTS:g} point (no samples)"
                                 if metric in POINTS_METRICS else "ratio only (no samples for this metric)")
        if sampled and step["from_raw"] and step["raw_latency_file"]:
            p_value = shift_p_value(samples(step["from_dir"], step["from_raw"]),
                                    samples(step["run_dir"], step["raw_latency_file"]))
            test = "Mann-Whitney U"
            if p_value >= alpha:
                continue  # past the threshold, but within the runs' noise
        worse = step["value"] < step["from_value"] if metric in HIGHER_IS_BETTER \
            else step["value"] > step["from_value"]
        out.append({"job": step["job"], "from_run": step["from_run"], "to_run": step["run_id"],
                    "position": step["position"], "from_value": step["from_value"], "to_value": step["value"],
                    "ratio": step["ratio"], "p_value": p_value, "test": test,
                    "verdict": "regression" if worse else "improvement"})
    return pd.DataFrame(out, columns=["job", "from_run", "to_run", "position", "from_value", "to_value", "ratio",
                                      "p_value", "test", "verdict"])


def newest_regressions(history: History) -> pd.DataFrame:
    """The regressions into a job's newest run: what a CI job fails on (one already recovered from is
    history, not news)."""
    newest = history.points.groupby("job")["position"].max()
    changes = history.changes
    return changes[(changes["verdict"] == "regression") & changes["position"].eq(changes["job"].map(newest))]


def job_summary(history: History) -> pd.DataFrame:
    """Per job: runs seen, first and last value, and its regressions and improvements."""
    points = history.points
    summary = points.groupby("job", sort=True)["value"].agg(runs="count", first="first", last="last",
                                                             low="min", high="max")
    counts = history.changes.groupby(["job", "verdict"]).size().unstack(fill_value=0) if len(history.changes) \
        else pd.DataFrame(index=summary.index)
    for verdict in ("regression", "improvement"):
        summary[verdict + "s"] = counts[verdict] if verdict in counts else 0
    summary = summary.fillna({"regressions": 0, "improvements": 0})
    return summary.reset_index()
