"""report.html and report.md for one run: results table, validity, trade-off plots with Pareto fronts
and latency distributions per workload, and a split-computing section when the run has split jobs or a
split analysis."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.core.rundir import load_latency
from harness.core.traces import TraceSlice
from reports import captions, plots
from reports.boards import board_spread_table
from reports.crossover import LINKED, crossover_table, strategy_of
from reports.load import load_run
from reports.render import fmt, markdown_section, markdown_table, markdown_text, render_html, table_cells
from reports.run_facts import banners, emulated_suffix, job_name, run_facts
from reports.split_plots import split_figures


def power_traces(run_dir: Path, rows: pd.DataFrame) -> dict:
    traces = {}
    for _, row in rows.iterrows():
        if row.get("power_trace_file") and row.get("raw_latency_file"):
            trace = TraceSlice.load(run_dir / row["power_trace_file"])
            _, windows = load_latency(run_dir, row["raw_latency_file"])
            traces[plots.label(row)] = (trace.t_ns, trace.power_w,
                                        [[w.start_ns, w.end_ns, w.n_iterations] for w in windows])
    return traces


MAX_DRAWN_SAMPLES = 5000  # per job in a distribution plot: the box's quantiles need no more


def latency_samples(rows: pd.DataFrame, dir_of, name=plots.label, hue: str | None = None) -> pd.DataFrame:
    """(job, latency_ms[, hue]) of every row's raw samples (in the run directory `dir_of(row)`), evenly
    strided down to MAX_DRAWN_SAMPLES per job."""
    frames = []
    for _, row in rows.iterrows():
        if row.get("raw_latency_file"):
            latency_ns, _ = load_latency(dir_of(row), row["raw_latency_file"])
            step = max(1, len(latency_ns) // MAX_DRAWN_SAMPLES)
            frames.append(pd.DataFrame({"job": name(row), "latency_ms": latency_ns[::step] / 1e6,
                                        **({hue: row[hue]} if hue else {})}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def workload_sections(run_dir: Path, ok: pd.DataFrame, protocol: dict) -> list[dict]:
    sections = []
    for workload, rows in ok.groupby("workload", sort=False):
        # a split job's latency and energy depend on its link: they are drawn per link in the split-computing
        # section, not put on one Pareto front with the jobs that ran whole on the device
        whole = rows[~strategy_of(rows).isin(LINKED)]
        alone = " (local jobs)" if len(whole) < len(rows) else ""
        figures = []
        scored = rows["accuracy"].notna().any()  # a model without a metric has no accuracy trade-off to draw
        if scored and len(whole):
            figures.append(plots.tradeoff_plot(
                whole, "latency_p50_ms", "latency p50 (ms)", f"{workload}: accuracy vs latency{alone}",
                captions.latency_caption(whole, protocol), hue="backend"))
        if scored and rows["macs"].notna().any():
            # MACs belong to a variant, not to a backend: one point per variant
            # early exits: the expected MACs at their measured exit rate, not the worst case
            per_variant = rows.drop_duplicates("variant").assign(
                effective_macs=lambda r: r["expected_macs"].fillna(r["macs"]))
            figures.append(plots.tradeoff_plot(
                per_variant, "effective_macs", "MACs per inference (early exits: expected)",
                f"{workload}: accuracy vs MACs", captions.MACS_CAPTION, hue="family",
                point_label=lambda r: r["variant"]))
        if whole["energy_per_inference_mj"].notna().any():
            if scored:
                figures.append(plots.tradeoff_plot(
                    whole, "energy_per_inference_mj", "energy per inference (mJ)",
                    f"{workload}: accuracy vs energy{alone}{emulated_suffix(rows)}",
                    captions.energy_caption(whole, protocol), hue="backend"))
            traces = power_traces(run_dir, rows)
            if traces:
                figures.append(plots.power_trace_plot(
                    traces, f"{workload}: power{emulated_suffix(rows)}", captions.power_caption(rows)))
        exits = rows[rows["family"] == "early_exit"]
        if len(exits):
            # one curve per sweep (a [[variants]] entry: its variants are <name>-t<threshold>) and backend
            sweeps = exits["variant"].str.rsplit("-t", n=1).str[0]
            for (sweep, backend), group in exits.groupby([sweeps, "backend"]):
                base = rows[(rows["family"] == "baseline") & (rows["backend"] == backend)]
                paths = ", ".join(sorted({p for p in group["exit_path"] if isinstance(p, str) and p}))
                figures.append(plots.exit_curve_plot(
                    group, base.iloc[0] if len(base) else None,
                    f"{workload}: early exits {sweep} ({backend}{', ' + paths if paths else ''})",
                    captions.EXIT_CAPTION))
        samples = latency_samples(rows, lambda _: run_dir)
        if len(samples):
            figures.append(plots.latency_distribution_plot(
                samples, f"{workload}: latency distribution",
                captions.distribution_caption(protocol, MAX_DRAWN_SAMPLES)))
        sections.append({"name": workload, "figures": figures})
    return sections


CROSSOVER_NOTE = ("Where each contender has the lowest end-to-end latency p50, on the link's measured bandwidth; "
                  "between two measured settings latency is interpolated linearly in 1/bandwidth (transfer "
                  "time ~ bytes / bandwidth). '(edge)': the lowest or highest bandwidth measured, the range may "
                  "extend past it. 'Lower than local / offload': the largest saving over the measured settings "
                  "in the range, against the unsplit model on the device (the local baseline) and the fastest "
                  "offload variant there. Rows are compared within one backend, thread count, batch size, device "
                  "speed and link delay.")


def crossover_cells(table: pd.DataFrame, by: str) -> tuple[list[str], list[list[str]]]:
    def bound(value, edge: bool, which: str) -> str:
        return fmt(value, ".3g") + (f" (edge: {which} measured)" if edge and not pd.isna(value) else "")

    headers = ["backend", "threads", "batch", "device CPU quota", "delay ms", "strategy",
               "variants" if by == "strategy" else "variant", "lowest latency from Mbit/s", "to Mbit/s",
               "lower than local %", "at Mbit/s", "lower than offload %", "at Mbit/s", "local reference"]
    body = []
    for _, r in table.iterrows():
        never = pd.isna(r["from_mbit"])
        body.append([r["backend"], fmt(r["threads"], "d"), fmt(r["batch_size"], "d"),
                     fmt(r["device_cpu_quota"], "g") or "none", fmt(r["link_delay_ms"], "g"), r["strategy"],
                     r["variant"], "never the lowest" if never else bound(r["from_mbit"], r["from_edge"], "lowest"),
                     "" if never else bound(r["to_mbit"], r["to_edge"], "highest"),
                     fmt(r["vs_local_pct"], ".1f"), fmt(r["vs_local_at_mbit"], ".3g"),
                     fmt(r["vs_offload_pct"], ".1f"), fmt(r["vs_offload_at_mbit"], ".3g"),
                     f"{r['local_variant']} {fmt(r['local_ms'], '.4g')} ms" if r["local_variant"] else ""])
    return headers, body


STAGE_COLUMNS = [("variant", "variant", None), ("strategy", "strategy", None), ("link", "link", None),
                 ("split_point", "split at", None), ("payload_dtype", "payload", None),
                 ("payload_bytes", "payload bytes", ",.0f"), ("link_measured_mbit", "measured Mbit/s", ".3g"),
                 ("link_rtt_ms", "RTT ms", ".3g"), ("head_ms", "head ms", ".4f"),
                 ("serialize_ms", "serialise ms", ".4f"), ("transfer_ms", "transfer ms", ".4f"),
                 ("tail_ms", "tail ms", ".4f"), ("latency_p50_ms", "end-to-end p50 ms", ".4f"),
                 ("accuracy", "accuracy", ".4f"), ("energy_per_inference_mj", "device mJ/inf", ".4g")]

ANALYSIS_COLUMNS = [("index", "index", "d"), ("tensor", "tensor", None), ("op", "op", None),
                    ("shape", "shape", None), ("payload_bytes_fp32", "fp32 bytes", ",.0f"),
                    ("payload_bytes_int8", "int8 bytes", ",.0f"), ("head_macs", "head MACs", ",.0f"),
                    ("tail_macs", "tail MACs", ",.0f"), ("natural_bottleneck", "natural bottleneck", None)]


def split_sections(info: dict, ok: pd.DataFrame) -> list[dict]:
    """Per workload with split jobs or a split analysis: figures (with captions) and tables; [] when the
    run has neither, and the report then has no split-computing section."""
    analyses = info.get("split_analysis") or {}
    strategy = strategy_of(ok)
    linked = ok[strategy.isin(LINKED)]
    workloads = list(dict.fromkeys([*linked["workload"], *analyses]))
    sections = []
    for workload in workloads:
        rows = ok[ok["workload"] == workload]
        analysis = analyses.get(workload)
        tables = []
        if (strategy_of(rows).isin(LINKED)).any():
            for by, title in (("strategy", "Crossover: where each strategy is fastest"),
                              ("variant", "Crossover per variant")):
                headers, body = crossover_cells(crossover_table(rows, by=by), by)
                tables.append({"title": title, "headers": headers, "body": body,
                               "note": CROSSOVER_NOTE if body else "No crossover: no link setting of these jobs "
                               "has a bandwidth (measured, or nominal) to place it at."})
            stages = rows[strategy_of(rows).isin(LINKED)]
            shown = [c for c in STAGE_COLUMNS if c[0] in stages and stages[c[0]].notna().any()]
            headers, body = table_cells(stages, shown)
            tables.append({"title": "Stages per inference", "headers": headers, "body": body,
                           "note": "Medians per inference over every timed iteration (device clock); "
                                   "transfer = the reply's wait minus the server's tail time."})
        if analysis and analysis.get("candidates"):
            candidates = pd.DataFrame(analysis["candidates"])
            headers, body = table_cells(candidates, [c for c in ANALYSIS_COLUMNS if c[0] in candidates])
            tables.append({"title": "Split analysis: candidate cuts", "headers": headers, "body": body,
                           "note": f"From the model graph; per sample at batch 1. Raw input: "
                                   f"{fmt(analysis.get('input_bytes'), ',.0f')} bytes as fp32, "
                                   f"{fmt(analysis.get('input_bytes_uint8'), ',.0f')} as a uint8 image."})
        sections.append({"name": workload, "tables": tables, "figures": split_figures(workload, rows, analysis)})
    return sections


def split_markdown(sections: list[dict]) -> list[str]:
    if not sections:
        return []
    md = ["## Split computing", ""]
    for section in sections:
        md += markdown_section(section, 3)
    return md


BOARD_SPREAD_NOTE = ("The same job on several boards of one farm (replicate = true, or a job re-queued after a "
                     "board was lost): its latency p50 on each, and the spread (max - min) / median.")


def write_report(run_dir: Path) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    info, rows = load_run(run_dir)
    ok = rows[rows["status"] == "ok"]
    headers, body = table_cells(ok)
    notes = [(job_name(r), r["invalid_reasons"], r["warnings"]) for _, r in ok.iterrows()
             if r["invalid_reasons"] or r["warnings"]]
    not_run = [(job_name(r), r["status"], r["reason"]) for _, r in rows.iterrows() if r["status"] != "ok"]
    variants = [(r["workload"], r["variant"], r["family"], r["precision"], r.get("variant_params") or "")
                for _, r in rows.drop_duplicates(["workload", "variant"]).iterrows()]
    facts = run_facts(info)
    banner = banners(ok)
    title = f"edgebench report: {info.get('run_id', run_dir.name)}"
    split = split_sections(info, ok)
    spread_headers, spread_body = board_spread_table(ok)

    html_path = run_dir / "report.html"
    html_path.write_text(render_html("report.html.j2", title=title, banner=banner, facts=facts,
                                     headers=headers, body=body, notes=notes, not_run=not_run,
                                     variants=variants,
                                     workloads=workload_sections(run_dir, ok, info.get("measurement_protocol", {})),
                                     split=split, spread_headers=spread_headers, spread_body=spread_body,
                                     spread_note=BOARD_SPREAD_NOTE))
    # the title (the run id), the banner and the facts (target, suite, device, board) are the run's own text
    md = [f"# {markdown_text(title)}", ""]
    if banner:
        md += [f"> {markdown_text(banner)}", ""]
    md += [f"- **{markdown_text(k)}**: {markdown_text(v)}" for k, v in facts]
    md += ["", "## Results", "", markdown_table(headers, body), ""]
    md += ["## Variants", "", markdown_table(["workload", "variant", "family", "precision", "parameters"],
                                             [list(v) for v in variants]), ""]
    if notes:
        md += ["## Validity and warnings", "", markdown_table(["job", "invalid because", "warnings"],
                                                              [list(n) for n in notes]), ""]
    if not_run:
        md += ["## Skipped and failed jobs", "", markdown_table(["job", "status", "reason"],
                                                                [list(n) for n in not_run]), ""]
    if spread_body:
        md += ["## Board-to-board spread", "", markdown_table(spread_headers, spread_body), "",
               markdown_text(BOARD_SPREAD_NOTE), ""]
    md += split_markdown(split)
    md_path = run_dir / "report.md"
    md_path.write_text("\n".join(md))
    return html_path, md_path
