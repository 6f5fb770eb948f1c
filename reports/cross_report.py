"""report.html and report.md over several runs, typically one per target: per workload, accuracy against
latency and energy with one Pareto front per target, the speed-up and energy ratio of every variant against
each target's own fp32 model (heatmaps), the best variant per target within an accuracy budget, and the
per-target facts. A single run keeps its own report (reports.report)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports import captions, plots
from reports.cross_run import (
    DEFAULT_BUDGET_POINTS,
    RunSet,
    best_within_budget,
    fronts,
    load_runs,
    ratio_matrix,
    with_ratios,
)
from reports.render import (
    default_out_dir,
    fmt,
    make_out_dir,
    markdown_section,
    markdown_table,
    markdown_text,
    render_html,
)
from reports.report import MAX_DRAWN_SAMPLES, latency_samples
from reports.run_facts import banners, job_name, run_facts

MAX_DISTRIBUTION_JOBS = 60  # per workload: more boxes than this are not read, and their samples are big


def series_label(row) -> str:
    return f"{row['series']}: {job_name(row)}"


def facts_table(runs: RunSet) -> tuple[list[str], list[list[str]]]:
    """One column per series: the run's facts (device, board, runtimes, protocol, commit) and its power."""
    facts = {name: dict(run_facts(info)) for name, info in runs.infos.items()}
    power = {name: captions.energy_sources(runs.rows[runs.rows["series"] == name]) for name in runs.infos}
    names = list(dict.fromkeys(k for f in facts.values() for k in f))
    body = [[key, *(facts[s].get(key, "") for s in runs.infos)] for key in names]
    body.append(["power source", *(power[s] for s in runs.infos)])
    return ["", *runs.infos], body


def runs_table(runs: RunSet) -> tuple[list[str], list[list[str]]]:
    headers = ["series", "run", "ok", "skipped", "failed", "directory"]
    body = []
    for name, info in runs.infos.items():
        counts = runs.not_ok[runs.not_ok["series"] == name]["status"].value_counts()
        body.append([name, info.get("run_id", runs.dirs[name].name),
                     str(int((runs.rows["series"] == name).sum())), str(int(counts.get("skipped", 0))),
                     str(int(counts.get("failed", 0))), str(runs.dirs[name])])
    return headers, body


def ratio_cells(matrix: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    headers = ["variant", *matrix.columns]
    body = [[variant, *(fmt(v, ".2f") + ("x" if v == v else "") for v in values)]
            for variant, values in matrix.iterrows()]
    return headers, body


def text(value) -> str:
    """A cell of a table built by rows: missing (NaN where another row has the column) is empty."""
    return value if isinstance(value, str) else ""


def budget_cells(best: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    headers = ["target", "fp32 accuracy", "fastest within budget", "backend", "p50 ms", "accuracy",
               "speed-up", "most frugal within budget", "backend", "mJ/inf", "accuracy", "energy ratio"]
    body = []
    for _, r in best.iterrows():
        body.append([r["series"], fmt(r["reference_accuracy"], ".4f"),
                     text(r.get("fastest_variant")) or text(r.get("note")), r.get("fastest_backend", ""),
                     fmt(r.get("fastest_latency_p50_ms"), ".4g"), fmt(r.get("fastest_accuracy"), ".4f"),
                     fmt(r.get("fastest_ratio"), ".2f"), r.get("frugal_variant", ""),
                     r.get("frugal_backend", ""), fmt(r.get("frugal_energy_per_inference_mj"), ".4g"),
                     fmt(r.get("frugal_accuracy"), ".4f"), fmt(r.get("frugal_ratio"), ".2f")])
    return headers, [[text(c) for c in row] for row in body]


def front_cells(front: pd.DataFrame, cost: str, unit: str) -> tuple[list[str], list[list[str]]]:
    headers = ["target", "on the front, cheapest first"]
    body = [[series, ", ".join(f"{r['variant']} ({r['backend']}, {fmt(r[cost], '.4g')} {unit}, "
                               f"{fmt(r['accuracy'] * 100, '.2f')} %)" for _, r in group.iterrows())]
            for series, group in front.groupby("series", sort=False)]
    return headers, body


MAX_NOTE_ROWS = 100


def notes_cells(rows: pd.DataFrame, column: str, split: bool) -> tuple[list[str], list[list[str]]]:
    """Each kind of note in `column` per target, with how many jobs gave it and one example: one line per
    kind rather than per job, so that a hundred runs stay readable. A kind is the note with its numbers
    masked ("stdev is #% of the mean"); `split`: the column holds several notes, `; `-separated."""
    notes = rows[["series", column]].assign(note=rows[column].fillna(""))
    if split:
        notes = notes.assign(note=notes["note"].str.split("; ")).explode("note")
    notes = notes[notes["note"].str.len() > 0]
    notes = notes.assign(kind=notes["note"].str.replace(r"\d+(?:[.,]\d+)*", "#", regex=True))
    counts = notes.groupby(["series", "kind"], sort=False).agg(jobs=("note", "size"), example=("note", "first"))
    counts = counts.reset_index()
    body = [[r["series"], str(r["jobs"]), r["example"] if r["kind"] == r["example"] or r["jobs"] == 1
             else f"{r['kind']} (e.g. {r['example']})"]
            for _, r in counts.head(MAX_NOTE_ROWS).iterrows()]
    if len(counts) > MAX_NOTE_ROWS:
        body.append(["", "", f"... and {len(counts) - MAX_NOTE_ROWS} more (each run's own report lists them all)"])
    return ["target", "jobs", column.replace("_", " ")], body


def workload_section(runs: RunSet, workload: str, rows: pd.DataFrame, budget_points: float) -> dict:
    protocols = {s: runs.infos[s].get("measurement_protocol", {}) for s in rows["series"].unique()}
    protocol = next(iter(protocols.values())) if len({str(p) for p in protocols.values()}) == 1 else {}
    rows = with_ratios(rows)
    figures, tables = [], []
    scored = rows["accuracy"].notna().any()
    energy = rows["energy_per_inference_mj"].notna().any()
    if scored:
        figures.append(plots.tradeoff_plot(
            rows, "latency_p50_ms", "latency p50 (ms)", f"{workload}: accuracy vs latency per target",
            captions.latency_caption(rows, protocol, "a job on one target") + " One front per target.",
            hue="series", front_by="series", point_label=lambda r: r["variant"], describe=series_label))
        if energy:
            figures.append(plots.tradeoff_plot(
                rows, "energy_per_inference_mj", "energy per inference (mJ)",
                f"{workload}: accuracy vs energy per target",
                captions.energy_caption(rows, protocol, "a job on one target") + " One front per target.",
                hue="series", front_by="series", point_label=lambda r: r["variant"], describe=series_label))
    for value, title, higher, what in (
            ("speedup", "speed-up", True, "the reference's latency p50 / the variant's: above 1 is faster"),
            ("energy_ratio", "energy ratio", False, "the variant's energy per inference / the reference's: "
                                                    "below 1 uses less")):
        matrix = ratio_matrix(rows, value)
        if matrix.empty:
            continue
        caption = (f"Each cell: {what}. The reference is the fp32 model on the same target, backend, threads "
                   f"and batch size (where a backend runs no baseline, the same network converted at fp32, "
                   f"e.g. tflite-fp32 on LiteRT). Medians where one cell holds several jobs. Empty: not run "
                   f"there, or no reference on that backend.")
        figures.append(plots.ratio_heatmap(matrix, f"{workload}: {title} vs each target's fp32", caption,
                                           higher))
        headers, body = ratio_cells(matrix)
        tables.append({"title": f"{title.capitalize()} vs each target's fp32", "headers": headers,
                       "body": body, "note": caption})
    if scored:
        headers, body = budget_cells(best_within_budget(rows, budget_points))
        tables.append({"title": f"Best variant per target within {budget_points:g} accuracy point(s) of its fp32",
                       "headers": headers, "body": body,
                       "note": f"Among the jobs whose accuracy is at most {budget_points:g} point(s) below the "
                               f"target's fp32 accuracy (the best over its backends): the lowest latency p50, "
                               f"and the lowest energy per inference where energy was measured. Ratios "
                               f"against the fp32 model on the same backend."})
        for cost, name, unit in (("latency_p50_ms", "latency", "ms"), ("energy_per_inference_mj", "energy",
                                                                       "mJ")):
            front = fronts(rows, cost)
            if len(front):
                headers, body = front_cells(front, cost, unit)
                tables.append({"title": f"Pareto front per target: accuracy vs {name}", "headers": headers,
                               "body": body, "note": "Jobs no other job on the same target beats on both "
                                                     "accuracy and " + name + "."})
    if rows["job_id"].nunique() <= MAX_DISTRIBUTION_JOBS:
        samples = latency_samples(rows, lambda r: Path(r["run_dir"]), name=lambda r: job_name(r), hue="series")
        if len(samples):
            figures.append(plots.latency_distribution_plot(
                samples, f"{workload}: latency distribution per target",
                captions.distribution_caption(protocol, MAX_DRAWN_SAMPLES), hue="series"))
    return {"name": workload, "figures": figures, "tables": tables}


def write_cross_report(run_dirs: list[Path], out_dir: Path | None = None,
                       budget_points: float = DEFAULT_BUDGET_POINTS) -> tuple[Path, Path]:
    runs = load_runs(run_dirs)
    out_dir = make_out_dir(Path(out_dir) if out_dir else default_out_dir(run_dirs, "cross"))
    ok = runs.rows
    banner = banners(ok)
    title = f"edgebench report: {len(runs.infos)} run{'s' if len(runs.infos) != 1 else ''} ({', '.join(runs.infos)})"
    sections = [workload_section(runs, w, ok[ok["workload"] == w], budget_points) for w in runs.shared_workloads]
    not_shared = list(runs.not_shared)
    if runs.linked_dropped:
        not_shared.append(f"{runs.linked_dropped} split-computing job(s) left out: their latency and energy "
                          f"depend on the link (see each run's own report)")
    notes = [(title, *notes_cells(frame, column, split)) for title, frame, column, split in (
        ("Not valid for publication", ok, "invalid_reasons", True), ("Warnings", ok, "warnings", True),
        ("Skipped and failed jobs", runs.not_ok, "reason", False))]
    notes = [(title, headers, body) for title, headers, body in notes if body]
    facts_headers, facts_body = facts_table(runs)
    runs_headers, runs_body = runs_table(runs)
    html_path = out_dir / "report.html"
    html_path.write_text(render_html("cross_report.html.j2", title=title, banner=banner,
                                     runs_headers=runs_headers, runs_body=runs_body, facts_headers=facts_headers,
                                     facts_body=facts_body, not_shared=not_shared, sections=sections,
                                     notes=notes))
    # the title names every series (the runs' target names)
    md = [f"# {markdown_text(title)}", ""] + ([f"> {markdown_text(banner)}", ""] if banner else [])
    md += ["## Runs", "", markdown_table(runs_headers, runs_body), "", "## Per-target facts", "",
           markdown_table(facts_headers, facts_body), ""]
    if not_shared:
        md += ["## Not shared", ""] + [f"- {markdown_text(n)}" for n in not_shared] + [""]
    for section in sections:
        md += markdown_section(section, 2)
    if notes:
        md += ["## Validity and warnings", ""]
        for note_title, headers, body in notes:
            md += [f"### {markdown_text(note_title)}", "", markdown_table(headers, body), ""]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md))
    return html_path, md_path
