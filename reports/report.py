"""report.html and report.md for one run: results table, validity, trade-off plots with Pareto fronts
and latency distributions per workload."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.core.rundir import load_latency
from harness.core.traces import TraceSlice
from reports import plots
from reports.load import load_run
from reports.render import markdown_table, render_html, table_cells


def run_facts(info: dict) -> list[tuple[str, str]]:
    device = info.get("device", {})
    host = info.get("host", {})
    config = info.get("config", {})
    protocol = info.get("measurement_protocol", {})
    git = host.get("git", {})
    runtimes = ", ".join(f"{k} {v}" for k, v in sorted(device.get("runtimes", {}).items()))
    board = board_line(device)
    return [
        ("run", info.get("run_id", "")),
        ("target", config.get("target", {}).get("name", "")),
        ("suite", config.get("suite", {}).get("name", "")),
        ("device", f"{device.get('cpu_model')} · {device.get('cpu_count_usable')} usable cores · "
                   f"governor {device.get('governor') or 'unreadable'} · {device.get('os')}"),
        *([("board", board)] if board else []),
        ("runtimes", runtimes),
        ("protocol", f"warm-up >= {protocol.get('warmup_min_iterations')} it and >= "
                     f"{protocol.get('warmup_min_s')} s; {protocol.get('n_windows')} windows of >= "
                     f"{protocol.get('window_min_s')} s and >= {protocol.get('window_min_iterations')} it"),
        ("edgebench", f"{host.get('edgebench')} at {(git.get('commit') or 'no git')[:12]}"
                      f"{' (dirty)' if git.get('dirty') else ''}"),
        ("started / finished", f"{info.get('started_at')} / {info.get('finished_at', 'not finished')}"),
    ]


def board_line(device: dict) -> str:
    """A board reached over SSH: what it is, how it was reached, which runtimes passed the smoke test."""
    board, transport = device.get("board"), device.get("transport")
    if not board and not transport:
        return ""
    parts = [f"{board.get('kind')}: {board.get('model') or 'model unreadable'}" if board else "",
             f"Python {device.get('python')}",
             f"over {transport['kind']} to {transport['host']}" if transport else ""]
    if board and board.get("throttled"):
        parts.append("throttled: " + (", ".join(board["throttled"]["flags"]) or "never"))
    smoke = device.get("smoke", {})
    if smoke:
        parts.append("smoke test: " + ", ".join(f"{name} {'ok' if r.get('ok') else 'FAILED'}"
                                                for name, r in sorted(smoke.items())))
    return " · ".join(p for p in parts if p)


def validity_banner(ok: pd.DataFrame) -> str:
    invalid = ok[ok["valid"].eq(False)]
    if invalid.empty:
        return ""
    return (f"Not valid for publication: {len(invalid)} of {len(ok)} results break the MLPerf Tiny "
            f"rules (windows >= 10 s, 5 windows, enough samples for p99). See 'Validity and warnings'.")


def job_name(row) -> str:
    return f"{row['workload']}/{row['variant']} {row['backend']} t{row['threads']} b{row['batch_size']}"


def emulated_suffix(rows: pd.DataFrame) -> str:
    return " (EMULATED meter)" if rows["energy_source"].str.startswith("emulated").any() else ""


def power_traces(run_dir: Path, rows: pd.DataFrame) -> dict:
    traces = {}
    for _, row in rows.iterrows():
        if row.get("power_trace_file") and row.get("raw_latency_file"):
            trace = TraceSlice.load(run_dir / row["power_trace_file"])
            _, windows = load_latency(run_dir, row["raw_latency_file"])
            traces[plots.label(row)] = (trace.t_ns, trace.power_w,
                                        [[w.start_ns, w.end_ns, w.n_iterations] for w in windows])
    return traces


def energy_banner(ok: pd.DataFrame) -> str:
    sources = sorted(set(ok["energy_source"]) - {"none", ""})
    emulated = [s for s in sources if s.startswith("emulated")]
    if emulated:
        return (f"Energy is EMULATED ({', '.join(emulated)}): modelled power, not a measurement of this "
                f"machine (run.json 'power' says how it was made).")
    return ""


def workload_sections(run_dir: Path, ok: pd.DataFrame) -> list[dict]:
    sections = []
    for workload, rows in ok.groupby("workload", sort=False):
        figures = [("accuracy vs latency", plots.tradeoff_plot(
            rows, "latency_p50_ms", "latency p50 (ms)", f"{workload}: accuracy vs latency"))]
        if rows["macs"].notna().any():
            # MACs belong to a variant, not to a backend: one point per variant
            # early exits: the expected MACs at their measured exit rate, not the worst case
            per_variant = rows.drop_duplicates("variant").assign(
                effective_macs=lambda r: r["expected_macs"].fillna(r["macs"]))
            figures.append(("accuracy vs MACs", plots.tradeoff_plot(
                per_variant, "effective_macs", "MACs per inference (early exits: expected)",
                f"{workload}: accuracy vs MACs", by_variant=True)))
        if rows["energy_per_inference_mj"].notna().any():
            figures.append(("accuracy vs energy", plots.tradeoff_plot(
                rows, "energy_per_inference_mj", "energy per inference (mJ)",
                f"{workload}: accuracy vs energy{emulated_suffix(rows)}")))
            traces = power_traces(run_dir, rows)
            if traces:
                figures.append(("power traces", plots.power_trace_plot(
                    traces, f"{workload}: power{emulated_suffix(rows)}")))
        exits = rows[rows["family"] == "early_exit"]
        if len(exits):
            for backend, group in exits.groupby("backend"):
                base = rows[(rows["family"] == "baseline") & (rows["backend"] == backend)]
                figures.append(("early-exit thresholds", plots.exit_curve_plot(
                    group, base.iloc[0] if len(base) else None, f"{workload}: early exits ({backend})")))
        samples = {}
        for _, row in rows.iterrows():
            if row.get("raw_latency_file"):
                latency_ns, _ = load_latency(run_dir, row["raw_latency_file"])
                samples[plots.label(row)] = latency_ns / 1e6
        if samples:
            figures.append(("latency distribution",
                            plots.latency_distribution_plot(samples, f"{workload}: latency distribution")))
        sections.append({"name": workload, "plots": figures})
    return sections


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
    banner = " ".join(filter(None, [validity_banner(ok), energy_banner(ok)]))
    title = f"edgebench report: {info.get('run_id', run_dir.name)}"

    html_path = run_dir / "report.html"
    html_path.write_text(render_html("report.html.j2", title=title, banner=banner, facts=facts,
                                     headers=headers, body=body, notes=notes, not_run=not_run,
                                     variants=variants,
                                     workloads=workload_sections(run_dir, ok)))
    md = [f"# {title}", ""]
    if banner:
        md += [f"> {banner}", ""]
    md += [f"- **{k}**: {v}" for k, v in facts] + ["", "## Results", "", markdown_table(headers, body), ""]
    md += ["## Variants", "", markdown_table(["workload", "variant", "family", "precision", "parameters"],
                                             [list(v) for v in variants]), ""]
    if notes:
        md += ["## Validity and warnings", "", markdown_table(["job", "invalid because", "warnings"],
                                                              [list(n) for n in notes]), ""]
    if not_run:
        md += ["## Skipped and failed jobs", "", markdown_table(["job", "status", "reason"],
                                                                [list(n) for n in not_run]), ""]
    md_path = run_dir / "report.md"
    md_path.write_text("\n".join(md))
    return html_path, md_path
