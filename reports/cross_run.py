"""Several runs read as one table, typically one run per target, and what the cross-target report says about
them: each target's fp32 reference, the speed-up and energy ratio of every variant against it, the Pareto
fronts per target, and the best variant per target within an accuracy budget (Roth et al., JMLR 2024: the
best compression depends on the hardware).

Each run becomes a *series*, named by its target (with the run id when two runs share a target)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reports.crossover import LINKED, strategy_of
from reports.load import load_run, run_directories
from reports.pareto import pareto_members

# a variant is compared with the fp32 model on the same target, backend, threads and batch size
# (and on the same board: a farm run with replicate = true has one row per job and board)
REFERENCE_KEYS = ["series", "workload", "backend", "threads", "batch_size", "board"]
# where a backend cannot run the baseline (LiteRT runs .tflite only), the same network converted at fp32 is
# its reference
CONVERSION_FAMILIES = ("tflite",)
DEFAULT_BUDGET_POINTS = 1.0
RATIO_COLUMNS = ("reference_variant", "reference_p50_ms", "reference_energy_mj", "speedup", "energy_ratio")


@dataclass
class RunSet:
    infos: dict[str, dict]      # series -> run.json
    dirs: dict[str, Path]       # series -> run directory
    rows: pd.DataFrame          # ok rows that ran whole on their device, with `series` and `run_dir`
    not_ok: pd.DataFrame        # skipped and failed rows, with `series`
    shared_workloads: list[str]
    not_shared: list[str]       # sentences: what some runs have and others do not
    linked_dropped: int         # split-computing rows left out (their numbers depend on a link)


def series_names(runs: list[tuple[Path, dict, pd.DataFrame]]) -> list[str]:
    """The target's name; with the run id where two runs share a target; with the run's parent directory
    too where two copies of one run (one id) are given."""
    names = [run_target(info, rows) for _, info, rows in runs]
    for widen in (lambda path, info: info.get("run_id", path.name),
                  lambda path, info: f"{path.resolve().parent.name}/{info.get('run_id', path.name)}"):
        names = [name if names.count(name) == 1 else f"{run_target(info, rows)} ({widen(path, info)})"
                 for name, (path, info, rows) in zip(names, runs)]
    return [name if names.count(name) == 1 else f"{name} #{i + 1}" for i, name in enumerate(names)]


def run_target(info: dict, rows: pd.DataFrame) -> str:
    name = info.get("config", {}).get("target", {}).get("name")
    if name:
        return str(name)
    return str(rows["target"].iloc[0]) if len(rows) else "unknown target"


def load_runs(run_dirs: list[Path]) -> RunSet:
    notes: list[str] = []
    paths = run_directories(run_dirs, notes)  # a shell's runs/*: each run once, non-runs left out
    runs = [(path, *load_run(path)) for path in paths]
    names = series_names(runs)
    frames, not_ok, infos, dirs = [], [], {}, {}
    for name, (path, info, rows) in zip(names, runs):
        infos[name], dirs[name] = info, path
        rows = rows.assign(series=name, run_dir=str(path))
        frames.append(rows[rows["status"] == "ok"])
        not_ok.append(rows[rows["status"] != "ok"])
    rows = pd.concat(frames, ignore_index=True)
    linked = strategy_of(rows).isin(LINKED)
    whole = rows[~linked].reset_index(drop=True)
    shared, not_shared = sharing(whole, names)
    return RunSet(infos, dirs, whole, pd.concat(not_ok, ignore_index=True), shared, notes + not_shared,
                  int(linked.sum()))


def sharing(rows: pd.DataFrame, names: list[str]) -> tuple[list[str], list[str]]:
    """The workloads to compare (those two or more runs measured; one run's own), and sentences for what
    only some runs did (workloads, variants): a run that failed one workload does not hide it from the
    others."""
    have = rows.groupby("workload", sort=False)["series"].agg(lambda s: set(s))
    shared = [w for w, s in have.items() if len(s) >= min(2, len(names))]
    notes = [f"workload {w}: only in {', '.join(n for n in names if n in s)}" for w, s in have.items()
             if len(s) < len(names)]
    missing = set(names) - {n for s in have for n in s}
    notes += [f"{n}: no ok job" for n in names if n in missing]
    for workload in shared:
        here = rows[rows["workload"] == workload]
        variants = here.groupby("variant", sort=False)["series"].agg(lambda s: set(s))
        notes += [f"{workload}/{v}: only in {', '.join(n for n in names if n in s)}"
                  for v, s in variants.items() if len(s) < len(have[workload])]
    return shared, notes


def with_ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """Adds `reference_variant`, `speedup` (the reference's latency p50 / the row's) and `energy_ratio` (the
    row's energy per inference / the reference's): against the fp32 model on the same series, workload,
    backend, threads and batch size (see CONVERSION_FAMILIES)."""
    rows = rows.drop(columns=[c for c in RATIO_COLUMNS if c in rows])  # computed afresh
    is_baseline = rows["family"].eq("baseline")
    is_conversion = rows["family"].isin(CONVERSION_FAMILIES) & rows["precision"].eq("fp32")
    references = rows.assign(priority=np.where(is_baseline, 0, 1))[is_baseline | is_conversion]
    references = (references.sort_values("priority", kind="stable")
                  .drop_duplicates(REFERENCE_KEYS)[REFERENCE_KEYS + ["variant", "latency_p50_ms",
                                                                     "energy_per_inference_mj"]]
                  .rename(columns={"variant": "reference_variant", "latency_p50_ms": "reference_p50_ms",
                                   "energy_per_inference_mj": "reference_energy_mj"}))
    out = rows.merge(references, on=REFERENCE_KEYS, how="left")
    out["speedup"] = out["reference_p50_ms"] / out["latency_p50_ms"]
    out["energy_ratio"] = out["energy_per_inference_mj"] / out["reference_energy_mj"]
    return out


def column_labels(rows: pd.DataFrame) -> pd.Series:
    """A heatmap column per series and backend; threads and batch join the name where one series and
    backend ran several."""
    settings = rows.groupby(["series", "backend"])[["threads", "batch_size"]].transform("nunique").max(axis=1)
    plain = rows["series"] + " · " + rows["backend"]
    detailed = plain + " t" + rows["threads"].map("{:.0f}".format) + " b" + rows["batch_size"].map("{:.0f}".format)
    return plain.where(settings <= 1, detailed)


def ratio_matrix(rows: pd.DataFrame, value: str) -> pd.DataFrame:
    """variant x (series · backend) of `value` (speedup or energy_ratio), variants in run order."""
    data = rows.dropna(subset=[value]).assign(column=column_labels)
    if data.empty:
        return pd.DataFrame()
    matrix = data.pivot_table(index="variant", columns="column", values=value, aggfunc="median", sort=False)
    return matrix.reindex(index=list(dict.fromkeys(data["variant"])), columns=list(dict.fromkeys(data["column"])))


def reference_accuracy(rows: pd.DataFrame) -> pd.Series:
    """Per (workload, series): the accuracy of its fp32 model (the best over backends: the budget counts from
    the best fp32 accuracy measured on that target)."""
    base = rows[rows["family"].eq("baseline") | (rows["family"].isin(CONVERSION_FAMILIES)
                                                 & rows["precision"].eq("fp32"))]
    return base.groupby(["workload", "series"])["accuracy"].max()


def best_within_budget(rows: pd.DataFrame, budget_points: float = DEFAULT_BUDGET_POINTS) -> pd.DataFrame:
    """Per workload and series: the fastest job (and the most frugal, where energy was measured) whose
    accuracy is at most `budget_points` below that series' fp32 accuracy."""
    rows = with_ratios(rows)
    reference = reference_accuracy(rows)
    out = []
    for (workload, series), group in rows.groupby(["workload", "series"], sort=False):
        ref = reference.get((workload, series), np.nan)
        entry = {"workload": workload, "series": series, "reference_accuracy": ref}
        if np.isnan(ref):
            out.append({**entry, "note": "no fp32 accuracy to count the budget from"})
            continue
        within = group[group["accuracy"] >= ref - budget_points / 100 - 1e-12]
        for cost, prefix in (("latency_p50_ms", "fastest"), ("energy_per_inference_mj", "frugal")):
            candidates = within.dropna(subset=[cost])
            if len(candidates):
                best = candidates.loc[candidates[cost].idxmin()]
                entry.update({f"{prefix}_variant": best["variant"], f"{prefix}_backend": best["backend"],
                              f"{prefix}_{cost}": best[cost], f"{prefix}_accuracy": best["accuracy"],
                              f"{prefix}_ratio": best["speedup" if prefix == "fastest" else "energy_ratio"]})
        out.append(entry)
    return pd.DataFrame(out)


def fronts(rows: pd.DataFrame, cost: str) -> pd.DataFrame:
    """The rows on each series' accuracy / `cost` front, per workload, cheapest first."""
    points = rows.dropna(subset=[cost, "accuracy"]).reset_index(drop=True)
    if points.empty:
        return points
    keys = points["workload"] + "\x00" + points["series"]
    on = pareto_members(points.assign(group=keys), cost, "group")
    order = {name: i for i, name in enumerate(dict.fromkeys(points["series"]))}  # the runs' order
    return points[on].sort_values(["workload", "series", cost], key=lambda c: c.map(order) if c.name == "series"
                                  else c)
